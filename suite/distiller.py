"""The one distillation interface: a student, a frozen teacher (or precomputed teacher outputs) and named losses.

``Distiller.forward(batch)`` returns ``{"loss": total, "<name>_loss": part, ...}`` where
``total = sum(weights[name] * part)``, so logging, callbacks and the trainer need no special cases.

A batch is a mapping with
- ``"inputs"``: keyword arguments for the student (and, by default, the teacher),
- optionally ``"labels"``,
- optionally ``"teacher"``: precomputed teacher outputs (``{"logits": ...}`` read from the teacher-output store);
  with these the Distiller needs no teacher module in memory.

Loss terms are small ``nn.Module`` s taking ``(student_out, teacher_out, batch)``. Terms that own parameters
(feature projectors, alignment heads) therefore live in the Distiller, not in the student, so the exported student
stays clean.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from suite.losses import feature_distillation_loss, hinton_kd_loss, soft_label_kd_loss

Outputs = dict[str, Any]


def as_output_dict(output: Any) -> Outputs:
    """Normalise model outputs (a tensor, a dict or a transformers ModelOutput) to a plain dict."""
    if isinstance(output, torch.Tensor):
        return {"logits": output}
    if isinstance(output, Mapping):
        return dict(output)
    raise TypeError(f"model returned {type(output).__name__}; expected a tensor or a mapping of tensors")


def call_with_inputs(model: nn.Module, batch: Mapping[str, Any]) -> Outputs:
    return as_output_dict(model(**batch["inputs"]))


class FrozenTeacher(nn.Module):
    """The single place where a teacher is frozen: eval mode, no gradients, and it stays in eval under ``.train()``."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)
        self.module.eval()

    def train(self, mode: bool = True) -> FrozenTeacher:
        # Dropout or batch-norm updates in the teacher would make its targets noisy; ignore the request.
        super().train(False)
        return self

    @torch.no_grad()
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)


class LossTerm(nn.Module):
    """One named component of the objective. Subclasses implement ``forward(student_out, teacher_out, batch)``."""

    needs_teacher: bool = True

    def forward(self, student_out: Outputs, teacher_out: Outputs | None, batch: Mapping[str, Any]) -> torch.Tensor:
        raise NotImplementedError


class TaskLoss(LossTerm):
    """Hard-label cross-entropy, ``L_CE(sigma(z_S), y)``: the first term of survey Eq. 1."""

    needs_teacher = False

    def __init__(self, ignore_index: int = -100):
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, student_out, teacher_out, batch):
        logits = student_out["logits"]
        return nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1), ignore_index=self.ignore_index
        )


class SoftLabelKD(LossTerm):
    """``tau^2 * KL(sigma(z_T / tau) || sigma(z_S / tau))``: the second term of survey Eq. 1 (Hinton et al., 2015).

    With weights ``{"task": alpha, "kd": 1 - alpha}`` the Distiller's total is exactly Eq. 1.
    """

    def __init__(self, temperature: float = 2.0):
        super().__init__()
        self.temperature = temperature

    def forward(self, student_out, teacher_out, batch):
        return soft_label_kd_loss(student_out["logits"], teacher_out["logits"], temperature=self.temperature)


class HintonKD(LossTerm):
    """Survey Eq. 1 as one term, for recipes that prefer a single ``alpha`` over two weights."""

    def __init__(self, temperature: float = 2.0, alpha: float = 0.5):
        super().__init__()
        self.temperature, self.alpha = temperature, alpha

    def forward(self, student_out, teacher_out, batch):
        return hinton_kd_loss(
            student_out["logits"], teacher_out["logits"], batch["labels"], self.temperature, self.alpha
        )


class FeatureKD(LossTerm):
    """FitNets-style hint loss between a student and a teacher representation through a learnable projector."""

    def __init__(
        self,
        student_dim: int,
        teacher_dim: int,
        student_key: str = "pooled",
        teacher_key: str = "embedding",
        metric: str = "cosine",
    ):
        super().__init__()
        self.student_key, self.teacher_key, self.metric = student_key, teacher_key, metric
        self.projector = nn.Linear(student_dim, teacher_dim)

    def forward(self, student_out, teacher_out, batch):
        projected = self.projector(student_out[self.student_key])
        return feature_distillation_loss(projected, teacher_out[self.teacher_key], metric=self.metric)


class Distiller(nn.Module):
    """Student + frozen teacher + named, weighted loss terms.

    Args:
        student: the model being trained; the only module a distributed wrapper should see.
        terms: name -> LossTerm. Output keys are ``f"{name}_loss"``.
        weights: name -> weight; every term needs an explicit weight (no hidden defaults).
        teacher: optional teacher module; wrapped in :class:`FrozenTeacher`. Leave it ``None`` to train on
            precomputed teacher outputs passed as ``batch["teacher"]``.
        student_forward / teacher_forward: ``(model, batch) -> outputs``; default ``model(**batch["inputs"])``.
    """

    def __init__(
        self,
        student: nn.Module,
        terms: Mapping[str, LossTerm],
        weights: Mapping[str, float],
        teacher: nn.Module | None = None,
        student_forward: Callable[[nn.Module, Mapping[str, Any]], Outputs] = call_with_inputs,
        teacher_forward: Callable[[nn.Module, Mapping[str, Any]], Outputs] = call_with_inputs,
    ):
        super().__init__()
        missing = sorted(set(terms) - set(weights))
        extra = sorted(set(weights) - set(terms))
        if missing or extra:
            raise ValueError(f"loss weights must name every term exactly: missing {missing}, unknown {extra}")
        self.student = student
        self.teacher = FrozenTeacher(teacher) if teacher is not None else None
        self.terms = nn.ModuleDict(dict(terms))
        self.weights = dict(weights)
        self.student_forward = student_forward
        self.teacher_forward = teacher_forward

    @property
    def needs_teacher(self) -> bool:
        return any(term.needs_teacher and self.weights[name] != 0 for name, term in self.terms.items())

    def teacher_outputs(self, batch: Mapping[str, Any]) -> Outputs | None:
        if not self.needs_teacher:
            return None
        if "teacher" in batch:
            return dict(batch["teacher"])
        if self.teacher is None:
            raise ValueError("a loss needs teacher outputs: pass a teacher module or batch['teacher']")
        with torch.no_grad():
            return as_output_dict(self.teacher_forward(self.teacher, batch))

    def forward(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        student_out = as_output_dict(self.student_forward(self.student, batch))
        teacher_out = self.teacher_outputs(batch)
        parts = {f"{name}_loss": term(student_out, teacher_out, batch) for name, term in self.terms.items()}
        total = sum(self.weights[key[: -len("_loss")]] * value for key, value in parts.items())
        return {"loss": total, **parts}

    @torch.no_grad()
    def predict(self, batch: Mapping[str, Any]) -> Outputs:
        """Student outputs for evaluation (no losses, no teacher)."""
        return as_output_dict(self.student_forward(self.student, batch))

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Student parameters plus those of the loss terms (projectors); never the teacher's."""
        return [p for p in self.parameters() if p.requires_grad]
