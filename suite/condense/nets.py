"""The small networks dataset distillation trains and evaluates on (DC's ConvNet family, sized for small images).

Every network maps ``(B, C, H, W)`` images to ``(B, classes)`` logits and has ``embed`` (the features before the
classifier), which distribution matching compares. Layers are plain modules so ``torch.func.functional_call`` can
run them with parameters that are themselves being optimized (MTT, the bi-level method).
"""

from __future__ import annotations

import torch
from torch import nn

from suite.errors import ConfigError


def _norm(kind: str, width: int) -> nn.Module:
    # DC's ConvNet uses instance norm: it works per image, so a batch of one class (or of one synthetic image)
    # is normalized the same as a mixed one. SRe2L's squeeze needs batch norm: its running statistics are what
    # recovery matches.
    if kind == "instance":
        return nn.GroupNorm(width, width, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(width)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"norm: choose instance, batch or none, got '{kind}'")


class ConvNet(nn.Module):
    """``depth`` blocks of conv3x3 -> norm -> ReLU -> avg-pool 2, then a linear classifier (DC's ConvNet)."""

    def __init__(
        self, channels: int, size: int, classes: int, width: int = 64, depth: int = 2, norm: str = "instance"
    ):
        super().__init__()
        if size >> depth < 1:
            raise ConfigError(f"ConvNet: {depth} poolings leave nothing of a {size}x{size} image")
        blocks: list[nn.Module] = []
        for i in range(depth):
            blocks += [nn.Conv2d(channels if i == 0 else width, width, 3, padding=1), _norm(norm, width), nn.ReLU(),
                       nn.AvgPool2d(2)]  # fmt: skip
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Linear(width * (size >> depth) ** 2, classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class MLP(nn.Module):
    """Two hidden ReLU layers on the flattened image: the cross-architecture check's non-convolutional net."""

    def __init__(self, channels: int, size: int, classes: int, width: int = 128):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(channels * size * size, width), nn.ReLU(),
                                  nn.Linear(width, width), nn.ReLU())  # fmt: skip
        self.classifier = nn.Linear(width, classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class _Residual(nn.Module):
    def __init__(self, channels: int, width: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(width)
        self.shortcut = (nn.Identity() if stride == 1 and channels == width
                         else nn.Sequential(nn.Conv2d(channels, width, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(width)))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.norm1(self.conv1(x)))
        return torch.relu(self.norm2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """A small ResNet (a stem and two residual stages, batch norm): the cross-architecture check's deeper net."""

    def __init__(self, channels: int, size: int, classes: int, width: int = 32):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU())  # fmt: skip
        self.stages = nn.Sequential(_Residual(width, width, 1), _Residual(width, 2 * width, 2))
        self.classifier = nn.Linear(2 * width, classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x)).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


NETS = ("convnet", "convnet-bn", "mlp", "resnet")


def build_net(name: str, channels: int, size: int, classes: int) -> nn.Module:
    """One of :data:`NETS` for ``channels`` x ``size`` x ``size`` images."""
    if name == "convnet":
        return ConvNet(channels, size, classes)
    if name == "convnet-bn":
        return ConvNet(channels, size, classes, norm="batch")
    if name == "mlp":
        return MLP(channels, size, classes)
    if name == "resnet":
        return ResNet(channels, size, classes)
    raise ConfigError(f"net: choose from {', '.join(NETS)}, got '{name}'")
