"""Constants and helpers shared by the export tests (fixtures live in conftest.py)."""

from __future__ import annotations

import torch
from torch import nn

CORPUS = [
    "Plants convert light energy into chemical energy through photosynthesis.",
    "The mitochondria produce energy for the cell by respiration.",
    "Water evaporates when heated and condenses when cooled.",
    "A force applied to an object changes its motion.",
    "Heat flows from warm objects to cold ones.",
    "Sound travels faster in water than in air.",
]
LABELS = ["wrong", "partial", "correct"]
TEXT_KWARGS = {"num_labels": 3, "dim": 16, "layers": 2, "heads": 2, "ffn": 32, "dropout": 0.0}
IMAGE = 32


def text_batch(tokenizer, texts: list[str]) -> dict[str, torch.Tensor]:
    return dict(tokenizer(texts, padding=True, return_tensors="pt"))


class FrozenBatch(nn.Module):
    """Adds a bias whose batch size is a Python int at trace time, so the graph only runs at the traced batch."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        bias = torch.zeros(int(images.shape[0]), 2)
        return {"logits": self.linear(images.mean(dim=(2, 3))) + bias}
