r"""Multi-teacher KD (survey 3.3): fuse K teachers' distributions into one target, then distil it.

With teacher distributions :math:`p_k(x)` at temperature :math:`\tau` and per-example weights :math:`w_k(x)` that
sum to one over teachers, the target and the loss are

.. math:: \hat p(x) = \sum_{k=1}^K w_k(x)\, p_k(x), \qquad
          \mathcal{L} = \tau^2\, D_{\mathrm{KL}}\big(\hat p(x) \,\|\, p_S(x; \theta)\big)

which with :math:`w_k = 1/K` is survey Eq. 7 and Eq. 8. Weighting strategies (:data:`WEIGHTINGS`):

- ``equal``: :math:`w_k = 1/K` (Eq. 7).
- ``ground_truth``: :math:`w_k(x) \propto p_k(y \mid x)^{1/\gamma}`, large for the teachers that give the true label
  the most probability (Zhang et al. 2022, "Confidence-Aware Multi-Teacher Knowledge Distillation").
- ``confidence``: :math:`w_k(x) \propto \exp(-H(p_k(x)) / \gamma)`, the teachers sure of this example count more.
- ``student_agreement``: :math:`w_k(x) \propto \exp(-D_{\mathrm{KL}}(p_k \| p_S) / \gamma)`, the teachers the
  student can follow count more (in the spirit of DiverseDistill's student-aware committee, Liu et al. 2024).

Conflicts (:data:`CONFLICTS`), for examples whose teachers' top classes differ: ``average`` keeps the weighted
mixture; ``vote`` keeps only the teachers that agree with the plurality (ties: every tied teacher); ``trust_label``
keeps only the teachers whose top class is the true label (none: the example keeps the mixture); ``skip`` drops the
KD term on that example (the task loss still sees it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from suite.config import check
from suite.losses._reduce import check_temperature, masked_mean, upcast
from suite.losses.kd import _kl_per_position
from suite.losses.term import LossTerm

WEIGHTINGS = ("equal", "ground_truth", "confidence", "student_agreement")
CONFLICTS = ("average", "vote", "trust_label", "skip")


@dataclass
class MultiTeacherConfig:
    """How K teachers become one target (``kd`` term of a multi-teacher run)."""

    temperature: float = 2.0
    weighting: str = "equal"  # one of WEIGHTINGS
    sharpness: float = 1.0  # gamma: lower is closer to picking the single best teacher per example
    conflicts: str = "average"  # one of CONFLICTS

    def __post_init__(self) -> None:
        check_temperature(self.temperature)
        check(self.weighting in WEIGHTINGS, "weighting", f"choose from {', '.join(WEIGHTINGS)}")
        check(self.conflicts in CONFLICTS, "conflicts", f"choose from {', '.join(CONFLICTS)}")
        check(self.sharpness > 0, "sharpness", f"must be > 0, got {self.sharpness}")


def teacher_weights(
    teacher_probs: Tensor, weighting: str = "equal", labels: Tensor | None = None,
    student_log_probs: Tensor | None = None, sharpness: float = 1.0,
) -> Tensor:  # fmt: skip
    """Per-example teacher weights ``(K, B)`` summing to one over teachers, from ``teacher_probs (K, B, C)``."""
    k, b, _ = teacher_probs.shape
    if weighting == "equal":
        return teacher_probs.new_full((k, b), 1.0 / k)
    if weighting == "ground_truth":
        if labels is None:
            raise ValueError("ground_truth weighting needs the labels")
        known = labels >= 0  # unlabelled examples (a transfer set: label -100) weigh their teachers equally
        index = labels.clamp_min(0).view(1, b, 1).expand(k, b, 1)
        score = teacher_probs.gather(-1, index).squeeze(-1).clamp_min(1e-12).log() * known
    elif weighting == "confidence":
        score = (teacher_probs * teacher_probs.clamp_min(1e-12).log()).sum(-1)  # -H(p_k)
    elif weighting == "student_agreement":
        if student_log_probs is None:
            raise ValueError("student_agreement weighting needs the student's log-probabilities")
        score = -_kl_per_position(teacher_probs.clamp_min(1e-12).log(), student_log_probs.unsqueeze(0).detach())
    else:
        raise ValueError(f"unknown weighting '{weighting}' (choose from {', '.join(WEIGHTINGS)})")
    return torch.softmax(score / sharpness, dim=0)


def resolve_conflicts(teacher_probs: Tensor, weights: Tensor, mode: str = "average",
                      labels: Tensor | None = None) -> tuple[Tensor, Tensor]:  # fmt: skip
    """``(weights (K, B), kd_mask (B,))`` after the conflict rule: weights renormalised over the teachers kept, and
    which examples keep a KD target. Examples whose teachers agree are untouched."""
    top = teacher_probs.argmax(-1)  # (K, B)
    conflict = (top != top[:1]).any(0)  # (B,)
    keep_all = torch.ones_like(conflict)
    if mode == "average" or not conflict.any():
        return weights, keep_all
    if mode == "skip":
        return weights, ~conflict
    if mode == "vote":
        votes = F.one_hot(top, teacher_probs.shape[-1]).sum(0)  # (B, C)
        winners = votes == votes.max(-1, keepdim=True).values  # ties keep every tied class
        chosen = winners.gather(-1, top.T).T  # (K, B): teacher k voted for a winning class
    elif mode == "trust_label":
        if labels is None:
            raise ValueError("trust_label conflict handling needs the labels")
        chosen = top == labels.unsqueeze(0)
        chosen = chosen | ~chosen.any(0, keepdim=True)  # nobody right: keep them all
    else:
        raise ValueError(f"unknown conflict rule '{mode}' (choose from {', '.join(CONFLICTS)})")
    chosen = chosen | ~conflict.unsqueeze(0)
    kept = weights * chosen
    return kept / kept.sum(0, keepdim=True), keep_all


def multi_teacher_kd_loss(
    student_logits: Tensor, teacher_logits: Tensor, config: MultiTeacherConfig | None = None,
    labels: Tensor | None = None, mask: Tensor | None = None,
) -> Tensor:  # fmt: skip
    r""":math:`\tau^2 D_{\mathrm{KL}}(\hat p \| p_S)` with :math:`\hat p` the weighted mixture of the teachers
    (module docstring); ``student_logits (B, C)``, ``teacher_logits (K, B, C)``, ``labels (B,)``, ``mask (B,)``."""
    config = config or MultiTeacherConfig()
    if teacher_logits.dim() != 3 or teacher_logits.shape[1:] != student_logits.shape:
        raise ValueError(f"teacher logits must be (K, B, C) around the student's {tuple(student_logits.shape)}, "
                         f"got {tuple(teacher_logits.shape)}")  # fmt: skip
    tau = config.temperature
    log_p_s = F.log_softmax(upcast(student_logits) / tau, dim=-1)
    probs = F.softmax(upcast(teacher_logits) / tau, dim=-1)
    weights = teacher_weights(probs, config.weighting, labels, log_p_s, config.sharpness)
    weights, keep = resolve_conflicts(probs, weights, config.conflicts, labels)
    target = (weights.unsqueeze(-1) * probs).sum(0)
    keep = keep if mask is None else keep & mask.bool()  # every example skipped: 0, with a graph
    return tau**2 * masked_mean(_kl_per_position(target.log(), log_p_s), keep)


class MultiTeacherKD(LossTerm):
    """:func:`multi_teacher_kd_loss` on the batch's stacked teacher ``logits (B, K, C)`` and its ``labels``: the
    ``kd`` term of a student distilled from an ensemble."""

    def __init__(self, config: MultiTeacherConfig | None = None):
        super().__init__()
        self.config = config or MultiTeacherConfig()

    def forward(self, student_out, teacher_out, batch):
        teachers = teacher_out["logits"].transpose(0, 1)  # (K, B, C)
        return multi_teacher_kd_loss(student_out["logits"], teachers, self.config, labels=batch.get("labels"))
