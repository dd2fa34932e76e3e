"""Differentiable Siamese augmentation (DSA, Zhao & Bilen 2021).

One call draws one transform (scale, rotate, translate, cutout or colour) and one set of its parameters from a
generator, and applies that same transform to every image of the batch. Calling it with generators in the same
state on the real batch and on the synthetic batch gives both the *same* transform (the "Siamese" part), so the
matched statistics differ only by the images; every op is differentiable in the images (``grid_sample``, masks,
affine colour maps), so the synthetic images learn through it. Horizontal flips are left out: they change what a
digit means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

OPS = ("scale", "rotate", "translate", "cutout", "color")


@dataclass(frozen=True)
class DSAConfig:
    """DSA's default strengths (scale 1.2, 15 degrees, translate / cutout 1/8 and 1/2 of the side)."""

    ops: tuple[str, ...] = OPS
    scale: float = 1.2
    rotate_degrees: float = 15.0
    translate: float = 0.125
    cutout: float = 0.5
    brightness: float = 1.0
    contrast: float = 0.5


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, align_corners=True)


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def augment(x: torch.Tensor, generator: torch.Generator, config: DSAConfig = DSAConfig()) -> torch.Tensor:
    """``x`` (B, C, H, W) with one random transform of ``config.ops``, the same for the whole batch."""
    op = config.ops[int(torch.randint(len(config.ops), (), generator=generator))]
    height, width = x.shape[-2:]
    size = min(height, width)
    if op == "scale":
        sx, sy = (_uniform(generator, 1 / config.scale, config.scale) for _ in range(2))
        return _affine(x, x.new_tensor([[sx, 0.0, 0.0], [0.0, sy, 0.0]]))
    if op == "rotate":
        angle = math.radians(_uniform(generator, -config.rotate_degrees, config.rotate_degrees))
        c, s = math.cos(angle), math.sin(angle)
        return _affine(x, x.new_tensor([[c, -s, 0.0], [s, c, 0.0]]))
    if op == "translate":
        limit = max(1, round(config.translate * size))
        dx, dy = (int(torch.randint(-limit, limit + 1, (), generator=generator)) for _ in range(2))
        # whole-pixel shifts with zeros coming in: exact, and differentiable in x (a window of the padded image)
        padded = F.pad(x, (limit, limit, limit, limit))
        return padded[..., limit - dy : limit - dy + height, limit - dx : limit - dx + width]
    if op == "cutout":
        side = max(1, round(config.cutout * size))
        top = int(torch.randint(0, height - side + 1, (), generator=generator))
        left = int(torch.randint(0, width - side + 1, (), generator=generator))
        mask = torch.ones_like(x[:1, :1])
        mask[..., top : top + side, left : left + side] = 0
        return x * mask
    brightness = _uniform(generator, -0.5, 0.5) * config.brightness
    contrast = 1 + _uniform(generator, -config.contrast, config.contrast)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * contrast + mean + brightness


def siamese(seed: int) -> tuple[torch.Generator, torch.Generator]:
    """Two generators in the same state: one for the real batch, one for the synthetic batch."""
    return torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
