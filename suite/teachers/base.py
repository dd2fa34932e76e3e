"""What every teacher backend returns and the small protocol it implements.

A teacher turns inputs into :class:`TeacherOutput` records. The store (:mod:`suite.teachers.store`) keys each record
by ``(teacher_id, input, settings)``, so a backend must report everything that changes its outputs in ``teacher_id``
(which weights) and ``settings()`` (how they are run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

from suite.errors import TeacherError

TENSOR_FIELDS = ("logits", "topk_ids", "topk_logprobs", "embedding")


@dataclass
class TeacherOutput:
    """One teacher answer. Unused fields stay ``None``.

    ``logits`` is ``(C,)`` for a classifier or ``(T, V)`` per generated token; ``topk_ids`` (int64) and
    ``topk_logprobs`` (float32) are ``(T, k)``; ``embedding`` is ``(D,)``. ``meta`` must be JSON-serialisable.
    """

    text: str | None = None
    label: int | None = None
    logits: torch.Tensor | None = None
    topk_ids: torch.Tensor | None = None
    topk_logprobs: torch.Tensor | None = None
    embedding: torch.Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The tensor fields that are set, by field name."""
        return {name: getattr(self, name) for name in TENSOR_FIELDS if getattr(self, name) is not None}


@runtime_checkable
class Teacher(Protocol):
    """A frozen source of :class:`TeacherOutput` records.

    ``teacher_id`` names the weights (path or served model name plus a content hash or revision); ``settings()``
    returns the inference settings that change outputs (max tokens, temperature, top-k, ...). Inputs are str prompts,
    ``{"text": ..., "text_pair": ...}`` dicts, or chat message lists, and must be JSON-serialisable (tensors are also
    accepted by the store: they are keyed by a hash of their bytes).
    """

    teacher_id: str

    def settings(self) -> dict[str, Any]: ...

    def answer(self, inputs: list[Any]) -> list[TeacherOutput]: ...


class TeacherBatchError(TeacherError):
    """Some inputs of one ``answer()`` call failed for good; the others were answered.

    ``answered`` maps batch positions to outputs and ``failures`` maps batch positions to a one-line reason (URL and
    status, never the prompt). :meth:`TeacherOutputStore.run` stores ``answered`` before it re-raises, so a rerun asks
    only the failed inputs again.
    """

    def __init__(self, answered: dict[int, TeacherOutput], failures: dict[int, str], size: int):
        self.answered, self.failures, self.size = answered, failures, size
        first = min(failures)
        super().__init__(f"{len(failures)} of {size} inputs failed; input {first}: {failures[first]}")
