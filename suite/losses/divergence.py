r"""Token-level divergences for generative KD: forward / reverse KL, generalized JSD, skew KL, total variation, BiLD.

Notation: at each token position the teacher's next-token distribution is :math:`p` and the student's is
:math:`q_\theta`; both over the vocabulary, tempered by :math:`\tau` (:math:`\sigma(z/\tau)`).

- forward KL :math:`\mathrm{KL}(p\,\|\,q_\theta)` (mode covering; Hinton et al. 2015, word-level KD);
- reverse KL :math:`\mathrm{KL}(q_\theta\,\|\,p)` (mode seeking; MiniLLM, Gu et al. 2024);
- generalized JSD (GKD, Agarwal et al. 2024), with :math:`m = \beta p + (1-\beta) q_\theta`:
  :math:`\mathrm{JSD}(\beta) = \beta\,\mathrm{KL}(p\,\|\,m) + (1-\beta)\,\mathrm{KL}(q_\theta\,\|\,m)`.
  It tends to :math:`\beta\,\mathrm{KL}(p\|q_\theta)` as :math:`\beta \to 0` and to
  :math:`(1-\beta)\,\mathrm{KL}(q_\theta\|p)` as :math:`\beta \to 1`; at exactly 0 and 1 (where it would vanish)
  it is defined as forward and reverse KL, as GKD's implementation does;
- skew forward KL (DistiLLM, Ko et al. 2024): :math:`\mathrm{KL}(p\,\|\,\alpha p + (1-\alpha) q_\theta)`;
  skew reverse KL: :math:`\mathrm{KL}(q_\theta\,\|\,\alpha q_\theta + (1-\alpha) p)`; :math:`\alpha = 0` gives the
  plain KLs, and DistiLLM's :math:`\alpha = 0.1` keeps the gradient bounded where :math:`q_\theta \to 0`;
- total variation :math:`\tfrac12 \sum_v |p(v) - q_\theta(v)|` (bounded, symmetric).

Every divergence is computed per position, multiplied by :math:`\tau^2` (as soft-label KD is, so gradients stay
comparable across temperatures) and averaged over the positions where ``mask`` is true (padding and prompt tokens
contribute nothing).

**Sparse teachers.** An endpoint's ``top_logprobs`` or a compact teacher-output store give the teacher's top-k ids and
their log-probs under the *full* distribution. :class:`TopK` keeps the rest explicitly as one tail bucket with mass
:math:`1 - \sum_{i \le k} p_i`, and the student's distribution is folded onto the same k + 1 buckets (its own
probabilities at the k ids, and everything else in its tail bucket), so the divergence compares two proper
distributions. With k = V the tail is empty and the result equals the full-distribution divergence. At
:math:`\tau \neq 1` the teacher's tail is tempered as if it were one token (its inner shape is unknown); the k ids
are tempered exactly.

**BiLD** (survey Eq. 9; Li et al. 2024, "BiLD: Bi-directional Logits Difference Loss for Large Language Model
Distillation") compares the pairwise differences of the top-k logits instead of the distributions:
:func:`bild_loss`.

**Causal shift.** Decoder-only models predict token t + 1 at position t: :func:`shift_causal` aligns logits with
labels; encoder-decoder decoders are already aligned (their labels are the decoder targets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from suite.config import check
from suite.losses._reduce import check_temperature, masked_mean, upcast
from suite.losses.term import LossTerm

DIVERGENCES = ("fkl", "rkl", "jsd", "skl", "srkl", "tvd")


@dataclass
class TopK:
    """A sparse teacher distribution: ``ids`` (..., k) and their ``logprobs`` (..., k) under the full distribution
    (not renormalised over the k). A padded slot carries log-prob ``-inf`` and any valid id."""

    ids: Tensor
    logprobs: Tensor

    def __post_init__(self) -> None:
        if self.ids.shape != self.logprobs.shape:
            raise ValueError(f"top-k ids have shape {tuple(self.ids.shape)}, log-probs {tuple(self.logprobs.shape)}")


def shift_causal(logits: Tensor, labels: Tensor, ignore_index: int = -100) -> tuple[Tensor, Tensor, Tensor]:
    """Decoder-only alignment: the logits at position t score the label at t + 1. Returns ``(logits[:, :-1],
    labels[:, 1:], mask)`` with ``mask`` true where the shifted label is not ``ignore_index``."""
    shifted = labels[:, 1:]
    return logits[:, :-1], shifted, shifted != ignore_index


TAIL_FLOOR = 1e-6  # a teacher tail lighter than this is float32 round-off of a distribution the k ids cover
MASKED = -1e4  # a finite log-prob for "not in the tail" (-inf would give NaN gradients through logsumexp)


def _teacher_tail(logprobs: Tensor) -> Tensor:
    """log(1 - sum exp(logprobs)) over the last axis, keepdim; -inf when the k ids hold all the mass."""
    covered = torch.logsumexp(logprobs, dim=-1, keepdim=True).clamp(max=0.0)
    tail = -torch.expm1(covered)  # 1 - e^c, precise when the tail is tiny
    return torch.where(tail > TAIL_FLOOR, tail, 0.0).log()


def _student_tail(log_q: Tensor, ids: Tensor, real: Tensor) -> Tensor:
    """log of the student's mass outside the teacher's (real, non-padded) top-k ids, summed exactly over the
    vocabulary rather than as 1 - sum (whose round-off would give the tail a spurious mass)."""
    covered = torch.zeros_like(log_q).scatter_add(-1, ids.long(), real.to(log_q.dtype)) > 0
    return torch.logsumexp(log_q.masked_fill(covered, MASKED), dim=-1, keepdim=True)


def _log_probs(student_logits: Tensor, teacher: Tensor | TopK, temperature: float) -> tuple[Tensor, Tensor]:
    """(teacher log p, student log q) over the same buckets: the vocabulary, or the k ids + one tail bucket."""
    log_q = F.log_softmax(upcast(student_logits) / temperature, dim=-1)
    if isinstance(teacher, Tensor):
        if teacher.shape != student_logits.shape:
            raise ValueError(
                f"student logits have shape {tuple(student_logits.shape)}, teacher {tuple(teacher.shape)}"
            )
        return _usable(F.log_softmax(upcast(teacher) / temperature, dim=-1), log_q), log_q
    if teacher.ids.shape[:-1] != student_logits.shape[:-1]:
        raise ValueError(
            f"teacher top-k has shape {tuple(teacher.ids.shape)}, expected {tuple(student_logits.shape[:-1])} + (k,)"
        )
    teacher_log = upcast(teacher.logprobs)
    teacher_buckets = torch.cat([teacher_log, _teacher_tail(teacher_log)], dim=-1)
    if temperature != 1.0:
        teacher_buckets = F.log_softmax(teacher_buckets / temperature, dim=-1)
    real = ~torch.isneginf(teacher_log)  # a padded slot leaves the student's mass at its id in the tail
    student_at_ids = torch.where(real, log_q.gather(-1, teacher.ids.long()), MASKED)
    student_buckets = torch.cat([student_at_ids, _student_tail(log_q, teacher.ids, real)], dim=-1)
    return _usable(teacher_buckets, student_buckets), student_buckets


def _usable(log_p: Tensor, log_q: Tensor) -> Tensor:
    """Teacher log-probs every divergence can take, with finite gradients.

    A position the teacher rules out entirely (a padded position with all-``-inf`` logits: NaN after the softmax)
    becomes the student's own distribution, so it contributes 0. Reverse KL is infinite where the teacher rules out
    a token the student still gives mass to; the floor keeps that large but finite, so one such token cannot turn
    a batch's gradient into NaN."""
    dead = torch.isnan(log_p).any(-1, keepdim=True)
    return torch.where(dead, log_q.detach(), log_p).clamp(min=MASKED)


def _kl(log_a: Tensor, log_b: Tensor) -> Tensor:
    r""":math:`\sum_v a(v) (\log a(v) - \log b(v))`; buckets where :math:`a = 0` (or a whole NaN row, a padded
    position) contribute 0, with finite gradients (both factors are replaced before the product)."""
    a = log_a.exp()
    kept = a > 0
    return (torch.where(kept, a, 0.0) * torch.where(kept, log_a - log_b, 0.0)).sum(-1)


def _mix(log_a: Tensor, log_b: Tensor, weight_a: float) -> Tensor:
    """log(w a + (1 - w) b), stably."""
    return torch.logaddexp(log_a + math.log(weight_a), log_b + math.log1p(-weight_a))


def divergence_per_position(log_p: Tensor, log_q: Tensor, kind: str, beta: float = 0.5, alpha: float = 0.1) -> Tensor:
    """The divergence ``kind`` between teacher ``log_p`` and student ``log_q`` at every position: (..., V) -> (...)."""
    if kind == "fkl" or (kind == "jsd" and beta == 0.0) or (kind == "skl" and alpha == 0.0):
        return _kl(log_p, log_q)
    if kind == "rkl" or (kind == "jsd" and beta == 1.0) or (kind == "srkl" and alpha == 0.0):
        return _kl(log_q, log_p)
    if kind == "jsd":
        mixture = _mix(log_p, log_q, beta)
        return beta * _kl(log_p, mixture) + (1.0 - beta) * _kl(log_q, mixture)
    if kind == "skl":
        return _kl(log_p, _mix(log_p, log_q, alpha))
    if kind == "srkl":
        return _kl(log_q, _mix(log_q, log_p, alpha))
    if kind == "tvd":
        difference = torch.nan_to_num(log_p.exp(), nan=0.0) - torch.nan_to_num(log_q.exp(), nan=0.0)
        return 0.5 * difference.abs().sum(-1)
    raise ValueError(f"unknown divergence '{kind}'; choose from {', '.join(DIVERGENCES)}")


def token_divergence(
    student_logits: Tensor,
    teacher: Tensor | TopK,
    kind: str = "fkl",
    temperature: float = 1.0,
    mask: Tensor | None = None,
    beta: float = 0.5,
    alpha: float = 0.1,
) -> Tensor:
    r""":math:`\tau^2 \cdot D(p, q_\theta)` averaged over unmasked positions (see the module docstring for each
    ``kind``). ``student_logits`` are ``(..., V)``; ``teacher`` is full logits of the same shape or a :class:`TopK`;
    ``mask`` has the logits' shape without the last axis."""
    check_temperature(temperature)
    if not 0.0 <= beta <= 1.0 or not 0.0 <= alpha < 1.0:
        raise ValueError(f"beta must be in [0, 1] and alpha in [0, 1), got beta={beta}, alpha={alpha}")
    log_p, log_q = _log_probs(student_logits, teacher, temperature)
    return temperature**2 * masked_mean(divergence_per_position(log_p, log_q, kind, beta, alpha), mask)


def _pairwise_differences(logits: Tensor) -> Tensor:
    """(..., k) -> (..., k (k - 1) / 2): z_i - z_j for every i < j."""
    k = logits.shape[-1]
    i, j = torch.triu_indices(k, k, offset=1, device=logits.device)
    return logits[..., i] - logits[..., j]


def _led_kl(ids: Tensor, teacher_logits: Tensor, student_logits: Tensor, tau: float) -> Tensor:
    """KL between the teacher's and the student's logit-difference distributions over ``ids`` (..., k)."""
    teacher_diff = _pairwise_differences(teacher_logits.gather(-1, ids)) / tau
    student_diff = _pairwise_differences(student_logits.gather(-1, ids)) / tau
    return _kl(F.log_softmax(teacher_diff, dim=-1), F.log_softmax(student_diff, dim=-1))


def bild_loss(
    student_logits: Tensor, teacher_logits: Tensor, k: int = 8, temperature: float = 1.0, mask: Tensor | None = None
) -> Tensor:
    r"""BiLD, survey Eq. 9: :math:`\mathcal{L} = \mathcal{L}_{t\text{-LD}} + \mathcal{L}_{s\text{-LD}}`.

    Teacher-led: take the teacher's top-k ids, form the :math:`k(k-1)/2` pairwise differences
    :math:`z_i - z_j\ (i < j)` of the teacher's logits and of the student's logits at those ids, soften each set
    into a distribution (:math:`\sigma(\cdot/\tau)`) and take
    :math:`\mathrm{KL}(p_{t\text{-LD}}\,\|\,p_{s\text{-LD}})`.
    Student-led: the same over the student's own top-k ids, so the student also answers for what it ranks highest.
    Only the top-k logits take part (the paper's results use k = 8: the long tail carries noise), and differences
    make the loss invariant to a shift of either model's logits. Averaged over unmasked positions.
    """
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)}, teacher {tuple(teacher_logits.shape)}")
    check_temperature(temperature)
    if not 2 <= k <= student_logits.shape[-1]:
        raise ValueError(f"k must be in [2, vocabulary size], got {k}")
    s, t = upcast(student_logits), upcast(teacher_logits)
    teacher_led = _led_kl(t.topk(k, dim=-1).indices, t, s, temperature)
    student_led = _led_kl(s.topk(k, dim=-1).indices, t, s, temperature)
    return masked_mean(teacher_led + student_led, mask)


def uld_loss(
    student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0, mask: Tensor | None = None
) -> Tensor:
    r"""Universal Logit Distillation (Boizard et al. 2024), for teacher and student vocabularies that differ.

    Token ids mean different things in two vocabularies, so ULD compares the two distributions sorted by
    probability: with :math:`\tilde p, \tilde q` the teacher's and student's probabilities in decreasing order
    (the shorter zero-padded to the longer vocabulary),

    .. math:: \mathcal{L} = \sum_i |\tilde p_i - \tilde q_i|

    (the closed-form Wasserstein-1 distance between the two under a rank cost). It teaches the student the
    teacher's *shape* of uncertainty, not which token: pair it with the task loss on the teacher's text.
    ``student_logits`` (..., V_S) and ``teacher_logits`` (..., V_T) must already be aligned position by position
    (ULD truncates both sequences of the same target text to the shorter); averaged over unmasked positions.
    """
    if student_logits.shape[:-1] != teacher_logits.shape[:-1]:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher {tuple(teacher_logits.shape)} must share all "
            "axes but the vocabulary"
        )
    check_temperature(temperature)
    q = F.softmax(upcast(student_logits) / temperature, dim=-1).sort(dim=-1, descending=True).values
    p = F.softmax(upcast(teacher_logits) / temperature, dim=-1).sort(dim=-1, descending=True).values
    width = max(p.shape[-1], q.shape[-1])
    p, q = F.pad(p, (0, width - p.shape[-1])), F.pad(q, (0, width - q.shape[-1]))
    return masked_mean((p - q).abs().sum(-1), mask)


def _dense(teacher: Tensor | TopK, vocab: int) -> Tensor:
    """Full teacher logits: as given, or a top-k that covers the whole vocabulary (a teacher read at a student's
    pruned vocabulary) scattered back into place; log-probs are logits up to a constant, which BiLD ignores."""
    if isinstance(teacher, Tensor):
        return teacher
    if teacher.ids.shape[-1] != vocab:
        raise ValueError("BiLD needs the teacher's full logits, not a top-k store")
    return torch.empty_like(teacher.logprobs).scatter(-1, teacher.ids.long(), teacher.logprobs)


@dataclass
class TokenKDConfig:
    """Token-level KD settings; defaults follow the papers (GKD beta 0.5, DistiLLM alpha 0.1, BiLD k 8)."""

    divergence: str = field(default="fkl", metadata={"help": f"{' | '.join(DIVERGENCES)} | bild"})
    temperature: float = field(default=1.0, metadata={"help": "tau for both distributions"})
    beta: float = field(default=0.5, metadata={"help": "generalized JSD: teacher weight in the mixture (GKD)"})
    alpha: float = field(default=0.1, metadata={"help": "skew KL: share of the skewed distribution (DistiLLM)"})
    bild_k: int = field(default=8, metadata={"help": "BiLD: top-k logits whose pairwise differences are compared"})
    causal_shift: bool = field(default=False, metadata={"help": "decoder-only students: logits at t score t + 1"})

    def __post_init__(self) -> None:
        check(self.divergence in (*DIVERGENCES, "bild"), "divergence", f"choose from {DIVERGENCES + ('bild',)}")
        check(self.temperature > 0, "temperature", "must be > 0")
        check(0 <= self.beta <= 1, "beta", "must be in [0, 1]")
        check(0 <= self.alpha < 1, "alpha", "must be in [0, 1)")
        check(self.bild_k >= 2, "bild_k", "must be >= 2")


class TokenKD(LossTerm):
    """Token-level KD on ``logits`` (B, T, V) at the positions whose ``labels`` are not -100. The teacher gives full
    ``logits`` or, from a sparse store or an endpoint, ``topk_ids`` + ``topk_logprobs``."""

    def __init__(self, config: TokenKDConfig | None = None):
        super().__init__()
        self.config = config or TokenKDConfig()

    def forward(self, student_out, teacher_out, batch):
        c, labels = self.config, batch["labels"]
        student = student_out["logits"]
        if "topk_ids" in teacher_out:
            teacher: Tensor | TopK = TopK(teacher_out["topk_ids"], teacher_out["topk_logprobs"])
        else:
            teacher = teacher_out["logits"]
        if c.causal_shift:
            student, labels, _ = shift_causal(student, labels)
            teacher = (
                TopK(teacher.ids[:, :-1], teacher.logprobs[:, :-1]) if isinstance(teacher, TopK) else teacher[:, :-1]
            )
        mask = labels != -100
        if c.divergence == "bild":
            return bild_loss(student, _dense(teacher, student.shape[-1]), c.bild_k, c.temperature, mask)
        return token_divergence(student, teacher, c.divergence, c.temperature, mask, c.beta, c.alpha)
