r"""Rationale-based KD (survey 3.1): the student learns the teacher's reasoning as well as its answer.

**Distilling step-by-step** (Hsieh et al. 2023; survey Eq. 4). Rationales :math:`r_i` (gold, or written by a
teacher) become a second task next to the label :math:`y_i`:

.. math:: \mathcal{L} = \mathcal{L}_{\text{label}} + \lambda\,\mathcal{L}_{\text{rationale}},\qquad
          \mathcal{L}_{\text{rationale}} = -\frac{1}{\sum_{i,j} 1}\sum_{i,j}\log P_\theta(r_{i,j}\mid r_{i,<j}, x_i)

so the student models :math:`P_\theta(r_i, y_i \mid x_i)` of Eq. 4 through a shared encoder; the rationale decoder
is dropped at inference and export (the label path ships alone).

**KPOD** (Feng et al. 2024; survey Eq. 5) weighs rationale tokens by importance and learns the steps of a rationale
from easy to hard. The difficulty of step :math:`k` (tokens :math:`p_k..q_k`) of rationale :math:`i` under the
current student is

.. math:: d_k^{(i)} = -\sum_{j=p_k}^{q_k} \hat w_j^{(i)} \log P(r_j^{(i)} \mid r_{<j}^{(i)}, x^{(i)}, \theta_s)

with :math:`\hat w` the token weights normalised to mean 1 over each rationale (uniform weights: plain
step-by-step). At training progress :math:`p` only the :math:`\lceil f(p) K_i \rceil` easiest steps of each
rationale count, :math:`f(p) = \min(1, f_0 + (1 - f_0)\,p / \rho)`; from :math:`p = \rho` on, all of them.
KPOD learns its keypoint weights with a small network trained on the teacher's attributions; our documented cheap
proxy is each token's inverse document frequency over the training rationales (:func:`idf_weights`): content words
that single out a case weigh more than the connective tissue every rationale shares.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from suite.losses.task import token_nll
from suite.losses.term import LossTerm

IGNORE = -100


def step_difficulty(nll: Tensor, weights: Tensor, steps: Tensor, num_steps: int) -> Tensor:
    """Eq. 5: ``d[b, k] = sum_j weights[b, j] * nll[b, j]`` over the tokens of step ``k`` (``steps[b, j] == k``;
    -1 for padding). Returns ``(B, num_steps)``; a step a rationale lacks scores 0."""
    valid = steps >= 0
    d = torch.zeros(nll.shape[0], num_steps, dtype=nll.dtype, device=nll.device)
    return d.scatter_add(1, steps.clamp_min(0), (weights * nll).where(valid, 0.0))


def easiest_steps(difficulty: Tensor, steps: Tensor, fraction: float) -> Tensor:
    """``(B, T)`` mask of the tokens whose step is among the ``ceil(fraction * K_b)`` easiest steps of its
    rationale (``K_b``: the steps rationale ``b`` has)."""
    valid = (steps >= 0).long()  # scatter_add: padding, clamped onto step 0, must not erase it
    present = torch.zeros_like(difficulty, dtype=torch.long).scatter_add(1, steps.clamp_min(0), valid) > 0
    count = present.sum(1, keepdim=True)
    keep = (count.float() * fraction).ceil().long().clamp(min=1)
    ranked = difficulty.masked_fill(~present, float("inf")).argsort(1).argsort(1)  # 0 = easiest
    kept_steps = (ranked < keep) & present
    return kept_steps.gather(1, steps.clamp_min(0)) & (steps >= 0)


@dataclass
class RationaleConfig:
    """How the rationale task is learned (KPOD off by default: uniform weights, all steps)."""

    token_weights: bool = field(default=False, metadata={"help": "KPOD: weigh tokens by batch['rationale_weights']"})
    start_fraction: float = field(default=1.0, metadata={"help": "KPOD: share of each rationale's steps at first"})
    ramp: float = field(default=0.5, metadata={"help": "KPOD: training progress at which every step counts"})
    select_after_ramp: bool = field(
        default=True,
        metadata={"help": "KPOD: only checkpoints from the ramp on can be the best (or stop training early)"},
    )

    def fraction(self, progress: float) -> float:
        if self.start_fraction >= 1.0:
            return 1.0
        return min(1.0, self.start_fraction + (1.0 - self.start_fraction) * progress / max(self.ramp, 1e-9))


class RationaleCE(LossTerm):
    """The rationale task of step-by-step (Eq. 4) with KPOD's token weights and easy-to-hard steps (Eq. 5):
    ``sum_j w_j m_j nll_j / sum_j w_j m_j`` over rationale tokens, ``m`` the easiest-steps mask. Reads
    ``student_out["rationale_logits"]`` and ``batch["rationale_labels"]`` (plus ``rationale_weights`` and
    ``rationale_steps`` for KPOD). ``progress`` (0..1) is set by :class:`ProgressSchedule` during training."""

    needs_teacher = False

    def __init__(self, config: RationaleConfig | None = None):
        super().__init__()
        self.config = config or RationaleConfig()
        self.progress = 0.0

    def forward(self, student_out, teacher_out, batch):
        labels = batch["rationale_labels"]
        nll = token_nll(student_out["rationale_logits"], labels)
        weights = (labels != IGNORE).to(nll.dtype)
        if self.config.token_weights:
            weights = weights * batch["rationale_weights"].to(nll.dtype)
        fraction = self.config.fraction(self.progress)
        steps = batch.get("rationale_steps")
        # A batch may hold no rationale at all (a small budget where the filter dropped many): its loss is 0.
        if fraction < 1.0 and steps is not None and bool((steps >= 0).any()):
            difficulty = step_difficulty(nll.detach(), weights, steps, int(steps.max()) + 1)
            weights = weights * easiest_steps(difficulty, steps, fraction).to(nll.dtype)
        return (weights * nll).sum() / weights.sum().clamp_min(1e-9)


def idf_weights(rationales: Sequence[Sequence[int]], ignore: Sequence[int] = ()) -> list[list[float]]:
    """KPOD's token importance, proxied: ``idf(t) = log((1 + N) / (1 + df(t))) + 1`` over the ``N`` rationales,
    normalised to mean 1 within each rationale. ``ignore`` ids (special tokens) get the rationale's mean, 1."""
    frequency = Counter(t for ids in rationales for t in set(ids))
    n, skipped = len(rationales), set(ignore)
    out = []
    for ids in rationales:
        raw = [math.log((1 + n) / (1 + frequency[t])) + 1 for t in ids]
        scored = [w for t, w in zip(ids, raw, strict=True) if t not in skipped]
        mean = sum(scored) / len(scored) if scored else 1.0
        out.append([1.0 if t in skipped else w / mean for t, w in zip(ids, raw, strict=True)])
    return out


def rationale_steps(ids: Sequence[int], boundaries: Sequence[int]) -> list[int]:
    """Step index of each token: a new step starts after each boundary token (a full stop, a semicolon). A last
    token after a boundary (the end token) joins the step before it rather than forming one of its own."""
    marks, step, out = set(boundaries), 0, []
    for token in ids:
        out.append(step)
        step += token in marks
    if len(out) >= 2 and ids[-2] in marks:
        out[-1] = out[-2]
    return out
