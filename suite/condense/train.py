"""Training and scoring a network on a (real or synthetic) image set: how every distilled set is judged, and how
experts (MTT) and teachers (SRe2L, herding) are made."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from suite.condense.augment import DSAConfig, augment


@dataclass
class ImageSet:
    """Images ``(N, C, H, W)`` with hard ``labels`` ``(N,)`` and, optionally, ``soft_labels`` ``(N, classes)``
    (probabilities: learned ones, or a teacher's relabelling) that training uses instead of the hard ones."""

    images: torch.Tensor
    labels: torch.Tensor
    soft_labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def classes(self) -> int:
        return int(self.soft_labels.shape[1]) if self.soft_labels is not None else int(self.labels.max()) + 1

    def of_class(self, c: int) -> torch.Tensor:
        return self.images[self.labels == c]

    def detach(self) -> ImageSet:
        soft = None if self.soft_labels is None else self.soft_labels.detach().clone()
        return ImageSet(self.images.detach().clone(), self.labels.clone(), soft)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against target probabilities; equals ``F.cross_entropy`` for one-hot targets."""
    return -(targets * logits.log_softmax(-1)).sum(-1).mean()


def set_loss(logits: torch.Tensor, data: ImageSet, index: torch.Tensor | slice) -> torch.Tensor:
    if data.soft_labels is not None:
        return soft_cross_entropy(logits, data.soft_labels[index])
    return F.cross_entropy(logits, data.labels[index])


@dataclass(frozen=True)
class TrainConfig:
    """DC's evaluation recipe: SGD with momentum, the rate divided by 10 half-way, DSA augmentation on."""

    epochs: int = 300
    batch_size: int = 256
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augment: bool = True


def train_net(net: nn.Module, data: ImageSet, config: TrainConfig, seed: int) -> nn.Module:
    """Train ``net`` on ``data`` (DSA-augmented when ``config.augment``); returns it in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)  # fmt: skip
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, [config.epochs // 2], gamma=0.1)
    net.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(data), generator=generator)
        for start in range(0, len(data), config.batch_size):
            index = order[start : start + config.batch_size]
            images = data.images[index]
            if config.augment:
                images = augment(images, generator, DSAConfig())
            loss = set_loss(net(images), data, index)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
    return net.eval()


@torch.no_grad()
def accuracy(net: nn.Module, data: ImageSet, batch_size: int = 512) -> float:
    net.eval()
    correct = sum(int((net(data.images[i : i + batch_size]).argmax(-1) == data.labels[i : i + batch_size]).sum())
                  for i in range(0, len(data), batch_size))  # fmt: skip
    return correct / len(data)
