"""Image students. Both return ``{"logits": (B, C), "features": (B, D)}``, ``features`` being the pooled vector the
classifier reads, so feature losses can pair any vision student with any teacher through a projection."""

from __future__ import annotations

import torch
from torch import nn

from suite import hub


def _conv_bn_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class TinyConvNet(nn.Module):
    """A small CNN backbone for planners and image classifiers: four stride-2 conv-BN-ReLU stages.

    Channels ``w, 2w, 4w, 4w`` (16x downsampling), global average pooling, linear head; about 60k parameters at
    ``width=16``. Only standard ops, so it exports to ONNX and quantises without special cases.
    """

    def __init__(self, num_classes: int, in_ch: int = 3, width: int = 16):
        super().__init__()
        channels = [in_ch, width, 2 * width, 4 * width, 4 * width]
        self.backbone = nn.Sequential(*(_conv_bn_relu(a, b) for a, b in zip(channels, channels[1:], strict=False)))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels[-1], num_classes)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.pool(self.backbone(images)).flatten(1)  # (B, 4w)
        return {"logits": self.head(features), "features": features}


class TimmClassifier(nn.Module):
    """A timm classifier behind the vision contract; ``features`` are timm's pre-logits (after pooling/dropout)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.model.forward_head(self.model.forward_features(images), pre_logits=True)  # (B, D)
        return {"logits": self.model.get_classifier()(features), "features": features}


def efficientnet_lite0_student(num_classes: int = 1000, pretrained: bool = True) -> TimmClassifier:
    """EfficientNet-Lite0 (4.7M params) with the packaged ImageNet weights; a new head when ``num_classes != 1000``.

    Expects images normalised with mean = std = 0.5 (see :func:`suite.hub.load_efficientnet_lite0`).
    """
    return TimmClassifier(hub.load_efficientnet_lite0(num_classes=num_classes, pretrained=pretrained))
