"""Reductions shared by the loss families: masked means and a float upcast for low-precision logits."""

from __future__ import annotations

import torch
from torch import Tensor


def masked_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of ``values`` over the positions where ``mask`` is true (all positions when ``mask`` is None).

    ``torch.where`` rather than multiplication, so a non-finite value at an excluded position cannot make the value
    NaN (its gradient still can: zero such inputs first, as :func:`attention_transfer_loss` does).
    An all-false mask gives 0 that still carries a graph, so a batch without valid positions can be backpropagated.
    """
    if mask is None:
        return values.mean()
    if mask.shape != values.shape:
        raise ValueError(f"mask has shape {tuple(mask.shape)}, expected {tuple(values.shape)}")
    keep = mask.bool()
    total = torch.where(keep, values, torch.zeros((), dtype=values.dtype, device=values.device)).sum()
    return total / keep.sum().clamp_min(1)


def upcast(x: Tensor) -> Tensor:
    """Half-precision logits lose the tail of a softmax; compute losses in at least float32."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def check_same_shape(student: Tensor, teacher: Tensor, what: str) -> None:
    if student.shape != teacher.shape:
        raise ValueError(f"student {what} have shape {tuple(student.shape)}, teacher {what} {tuple(teacher.shape)}")


def check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
