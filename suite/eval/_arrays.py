"""Conversions shared by the metric modules: lists, numpy arrays and torch tensors in, numpy out."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def as_numpy(x: Any, dtype: type | None = np.float64) -> np.ndarray:
    """``x`` as a numpy array (``dtype=None`` keeps its own); tensors are detached and moved to the CPU first."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        # numpy has no bfloat16; float64 loses nothing from any torch float type
        x = x.double().numpy() if x.is_floating_point() else x.numpy()
    return np.asarray(x, dtype=dtype)


def check_same_length(a: Any, b: Any, what_a: str, what_b: str) -> None:
    """Paired inputs must have the same, non-zero number of items."""
    if len(a) != len(b):
        raise ValueError(f"{what_a} has {len(a)} items, {what_b} {len(b)}")
    if len(a) == 0:
        raise ValueError(f"{what_a} is empty")
