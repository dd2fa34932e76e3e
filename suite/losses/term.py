"""The loss-term interface the Distiller composes: ``term(student_out, teacher_out, batch) -> scalar``.

Each adapter lives beside the loss function it wraps (``SoftLabelKD`` in ``kd.py``, ``FeatureHint`` in
``feature.py``, ...) and takes its hyperparameters from a config dataclass holding the paper's defaults, so a recipe
can name a term, weight it and override any of its settings with ``--set``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

Outputs = dict[str, Any]


class LossTerm(nn.Module):
    """One named component of the objective. Subclasses implement ``forward(student_out, teacher_out, batch)``.

    ``needs_teacher`` is False for terms that learn from labels or the input alone (the run then never asks the
    teacher for them, and a variant made only of such terms does not count as distillation).
    """

    needs_teacher: bool = True

    def forward(self, student_out: Outputs, teacher_out: Outputs | None, batch: Mapping[str, Any]) -> torch.Tensor:
        raise NotImplementedError
