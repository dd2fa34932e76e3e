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

from suite.losses.term import LossTerm, Outputs


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
