"""Hard-label cross-entropy: the task term of every objective (the first term of survey Eq. 1)."""

from __future__ import annotations

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
        logits = student_out["logits"]
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1), ignore_index=self.ignore_index
        )
