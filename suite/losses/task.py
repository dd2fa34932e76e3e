"""Hard-label cross-entropy: the task term of every objective (the first term of survey Eq. 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from suite.losses.term import LossTerm


class TaskLoss(LossTerm):
    r""":math:`\mathcal{L}_{CE}(\sigma(z_S), y)` over ``logits (..., C)`` and ``labels (...)``; ``ignore_index``
    positions (HF convention: -100) are left out."""

    needs_teacher = False

    def __init__(self, ignore_index: int = -100):
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, student_out, teacher_out, batch):
        logits, labels = student_out["logits"], batch["labels"].reshape(-1)
        if not (labels != self.ignore_index).any():  # a batch of unlabelled inputs (a transfer set): no CE, not NaN
            return logits.sum() * 0.0
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels, ignore_index=self.ignore_index)


def token_nll(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Per-token negative log-likelihood ``(B, T)`` of ``labels`` under ``logits (B, T, V)`` (float32); 0 where
    ``labels`` is ``ignore_index``. Sequence losses, perplexity and rationale weights all start from it."""
    nll = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=ignore_index, reduction="none")
    return nll.view(labels.shape)
