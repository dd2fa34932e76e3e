"""Image sets dataset distillation is benchmarked on: scikit-learn's bundled digits (1,797 8x8 images of 10 digits,
installed with scikit-learn, no download)."""

from __future__ import annotations

import torch

from suite.condense.train import ImageSet


def load_digits_split(test_fraction: float = 0.3, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """A stratified train / test split of digits, standardized with the training set's pixel mean and std."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8) in [0, 1]
    labels = torch.tensor(digits.target, dtype=torch.long)
    train_idx, test_idx = train_test_split(range(len(labels)), test_size=test_fraction, random_state=seed,
                                           stratify=labels.numpy())  # fmt: skip
    train_x, test_x = images[train_idx], images[test_idx]
    mean, std = train_x.mean(), train_x.std()
    return (ImageSet((train_x - mean) / std, labels[train_idx]), ImageSet((test_x - mean) / std, labels[test_idx]))
