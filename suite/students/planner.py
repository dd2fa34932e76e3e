"""Pixel-to-plan students with explicit perception -> prediction -> planning stages (VERDI / DiMA style).

``PixelPlanner(images, ego_speed)`` maps a stack of RGB frames ``(B, 3 * frames, H, W)`` in [0, 1] and the ego
car's own speedometer reading ``(B, 1)`` in m/s (the ego status end-to-end planners take besides the camera) to a
plan:

- ``logits`` (B, A): the discrete action; ``waypoints`` (B, K, 2): future ego positions in metres (forward, right);
- ``reasoning`` (B, D_text): the reasoning head, a vector in the teacher's text-embedding space (DSDrive's dual
  head: the nearest teacher rationale to it is what the student "says");
- for training only: ``attention`` (B, G, G), the spatial attention the perception stage pools with (Vi-LAD
  distils it); ``tokens`` (B, C, G, G), the scene tokens (DiMA masks and reconstructs them); ``perception``,
  ``prediction``, ``planning`` (B, D) stage features (VERDI aligns each with its rationale).

Two backbones: a small CNN (``tiny``) and EfficientNet-Lite0 with the packaged ImageNet weights, its stem widened
for stacked frames. Frames of ``frame_shape`` (H, W) become a token grid of (H / stride, W / stride) cells: stride 8
(both backbones; 8 x 8 tokens for 64 x 64 frames) or 4 (the tiny CNN: cells narrower than a lane on the ego camera).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from suite import hub

if TYPE_CHECKING:
    from suite.export.spec import ExportSpec

GRID = 8  # scene tokens per side for 64x64 frames at stride 8
LAYOUT_CHANNELS = 8


def _conv(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU())


class TinyBackbone(nn.Module):
    """Four 3x3 conv stages, the first three stride 2 (stride 8: 64x64 -> (4w, 8, 8)) or the first two (stride 4)."""

    def __init__(self, in_ch: int, width: int = 16, stride: int = 8):
        super().__init__()
        if stride not in (4, 8):
            raise ValueError(f"tiny planner backbone: token stride 4 or 8, not {stride}")
        w, third = width, 2 if stride == 8 else 1
        self.layers = nn.Sequential(
            _conv(in_ch, w, 2), _conv(w, 2 * w, 2), _conv(2 * w, 4 * w, third), _conv(4 * w, 4 * w, 1)
        )
        self.out_channels = 4 * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class EfficientNetLite0Backbone(nn.Module):
    """EfficientNet-Lite0's stem and first three stages (stride 8, 40 channels): 64x64 -> (40, 8, 8).

    The deeper stages would shrink 64x64 frames below the 8x8 token grid, and upsampling the frames to keep them
    made training far slower than the tiny CNN on a 2-core CPU.

    The ImageNet stem expects 3 channels; for ``in_ch = 3 * frames`` its kernel is repeated per frame and divided by
    the number of frames, so a stack of identical frames gives the pretrained activations.
    """

    def __init__(self, in_ch: int, pretrained: bool = True):
        super().__init__()
        net = hub.load_efficientnet_lite0(pretrained=pretrained)
        stem = net.conv_stem
        if in_ch != stem.in_channels:
            frames = in_ch // stem.in_channels
            widened = nn.Conv2d(in_ch, stem.out_channels, stem.kernel_size, stem.stride, stem.padding, bias=False)
            widened.weight.data.copy_(stem.weight.data.repeat(1, frames, 1, 1) / frames)
            stem = widened
        self.stem = nn.Sequential(stem, net.bn1)
        self.blocks = nn.Sequential(*net.blocks[:3])
        self.out_channels = net.blocks[2][-1].conv_pwl.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))


def _mlp(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU(), nn.Linear(out_dim, out_dim), nn.ReLU())


class PixelPlanner(nn.Module):
    """Frames -> scene tokens -> attention-pooled perception -> prediction -> planning -> plan heads."""

    def __init__(
        self,
        num_actions: int = 5,
        num_waypoints: int = 3,
        text_dim: int = 384,
        frames: int = 2,
        backbone: str = "tiny",
        width: int = 16,
        hidden: int = 128,
        pretrained: bool = True,
        speed_scale: float = 30.0,
        frame_shape: tuple[int, int] = (64, 64),
        token_stride: int = 8,
    ):
        super().__init__()
        in_ch = 3 * frames
        self.speed_scale = speed_scale
        if backbone == "tiny":
            self.backbone = TinyBackbone(in_ch, width, token_stride)
        elif backbone == "efficientnet-lite0":
            if token_stride != 8:
                raise ValueError(f"efficientnet-lite0 planner backbone: token stride 8, not {token_stride}")
            self.backbone = EfficientNetLite0Backbone(in_ch, pretrained)
        else:
            raise ValueError(f"unknown planner backbone '{backbone}' (tiny or efficientnet-lite0)")
        self.grid = token_grid(frame_shape, token_stride)
        channels = self.backbone.out_channels
        self.token_dim, self.hidden, self.num_waypoints = channels, hidden, num_waypoints
        self.attention_logits = nn.Conv2d(channels, 1, 1)
        # Where things are decides the plan (a car ahead in our lane vs in the next one), and pooling forgets it:
        # a 1x1 conv squeezes each token to a few channels and the whole grid is read in place.
        self.layout = nn.Sequential(nn.Conv2d(channels, LAYOUT_CHANNELS, 1), nn.ReLU())
        self.perception = nn.Sequential(
            nn.Linear(channels + LAYOUT_CHANNELS * self.grid[0] * self.grid[1] + 1, hidden), nn.ReLU()
        )
        self.prediction = _mlp(hidden, hidden)
        self.planning = _mlp(hidden, hidden)
        self.action_head = nn.Linear(hidden, num_actions)
        self.waypoint_head = nn.Linear(2 * hidden, 2 * num_waypoints)
        self.reasoning_head = nn.Linear(hidden, text_dim)

    def forward(self, images: torch.Tensor, ego_speed: torch.Tensor) -> dict[str, torch.Tensor]:
        tokens = self.backbone((images - 0.5) / 0.5)  # (B, C, Gh, Gw)
        b, c, h, w = tokens.shape
        attention = self.attention_logits(tokens).flatten(1).softmax(-1)  # (B, G*G)
        attended = torch.einsum("bn,bcn->bc", attention, tokens.flatten(2))  # (B, C)
        speed = ego_speed.view(b, 1) / self.speed_scale
        layout = self.layout(tokens).flatten(1)  # (B, LAYOUT_CHANNELS * G * G)
        perception = self.perception(torch.cat([attended, layout, speed], dim=1))
        prediction = self.prediction(perception)
        planning = self.planning(prediction)
        waypoints = self.waypoint_head(torch.cat([prediction, planning], dim=1)).view(b, self.num_waypoints, 2)
        return {
            "logits": self.action_head(planning),
            "waypoints": 10.0 * waypoints,  # the head works in units of 10 m
            "reasoning": self.reasoning_head(planning),
            "attention": attention.view(b, h, w),
            "tokens": tokens,
            "perception": perception,
            "prediction": prediction,
            "planning": planning,
        }


def token_grid(frame_shape: tuple[int, int], stride: int) -> tuple[int, int]:
    """(rows, columns) of scene tokens for frames of ``frame_shape`` (H, W); both sides must divide by ``stride``."""
    height, width = frame_shape
    if height % stride or width % stride:
        raise ValueError(f"planner frames {height}x{width}: both sides must be multiples of the token stride {stride}")
    return height // stride, width // stride


class PlannerExport(nn.Module):
    """What ships: ``(images, ego_speed) -> (logits, waypoints, reasoning)``; the training-only outputs are dropped."""

    def __init__(self, planner: PixelPlanner):
        super().__init__()
        self.planner = planner

    def forward(self, images: torch.Tensor, ego_speed: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.planner(images, ego_speed)
        return out["logits"], out["waypoints"], out["reasoning"]


def planner_export_spec(frames: int, frame_shape: tuple[int, int], actions: list[str]) -> ExportSpec:
    """The exported planner's contract: ``pixel_values`` (B, 3 * frames, H, W) in [0, 1] and ``ego_speed`` (B, 1)
    in m/s -> ``logits`` (B, A), ``waypoints`` (B, K, 2) and ``reasoning`` (B, D_text)."""
    import dataclasses

    from suite.export.spec import vision_spec

    outputs = ["logits", "waypoints", "reasoning"]
    return dataclasses.replace(
        vision_spec((3 * frames, *frame_shape), labels=list(actions), task="driving-plan"),
        input_names=["pixel_values", "ego_speed"],
        output_names=outputs,
        dynamic_axes={name: {0: "batch"} for name in ["pixel_values", "ego_speed", *outputs]},
        tolerance=1e-3,
    )


def export_planner(
    planner: PixelPlanner, kwargs: dict, actions: list[str], images: torch.Tensor, speed: torch.Tensor,
    target: Path, license: str,
) -> Path:  # fmt: skip
    """A planner -> ONNX (logits, waypoints, reasoning), traced on the first 2 of ``images`` (uint8 frames) and
    parity-checked on rows 2-4 and 5, which it was not traced on. ``kwargs`` rebuild the planner (spec.json)."""
    from suite.export import export_student
    from suite.export.package import ModelCardInfo

    def feeds(start: int, count: int) -> dict[str, torch.Tensor]:
        rows = slice(start, start + count)
        return {"pixel_values": images[rows].float() / 255.0, "ego_speed": speed[rows]}

    spec = planner_export_spec(kwargs["frames"], tuple(images.shape[-2:]), actions)
    card = ModelCardInfo(name=f"driving planner {target.name}", license=license)
    return export_student(
        planner.eval(), spec, feeds(0, 2), [feeds(2, 3), feeds(5, 1)], target, card=card,
        student_name="pixel-planner", student_kwargs={**kwargs, "pretrained": False},
    )  # fmt: skip
