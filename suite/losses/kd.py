r"""Logit distillation: soft-label KD, Hinton's combined loss (survey Eq. 1) and KD against sparse teacher top-k.

Hinton, Vinyals & Dean (2015), "Distilling the Knowledge in a Neural Network", arXiv:1503.02531.

Shapes: logits are ``(B, V)`` (one distribution per example) or ``(B, T, V)`` (one per token); ``mask`` and
``labels`` have the logits' shape without the last axis. Teacher tensors are targets: pass them without grad (the
Distiller freezes the teacher). Causal-LM shifting of logits against labels is the caller's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from suite.config import check
from suite.losses._reduce import check_same_shape, check_temperature, masked_mean, upcast
from suite.losses.term import LossTerm


def _kl_per_position(log_p_teacher: Tensor, log_p_student: Tensor) -> Tensor:
    r""":math:`\sum_v p_T(v) (\log p_T(v) - \log p_S(v))` over the last axis; (..., V) -> (...)."""
    # Ids the teacher rules out (-inf logit, zero prob) contribute 0, not 0 * inf = NaN. A row the teacher rules out
    # entirely (a padded position: all -inf, so log_softmax gives NaN) contributes 0 too. Both factors are replaced
    # before the product, not after: torch.where passes NaN gradients through a discarded branch's product.
    p_teacher = log_p_teacher.exp()
    kept = p_teacher > 0  # False for NaN as well
    p_teacher = torch.where(kept, p_teacher, 0.0)
    log_ratio = torch.where(kept, log_p_teacher - log_p_student, 0.0)
    return (p_teacher * log_ratio).sum(-1)


def soft_label_kd_loss(
    student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0, mask: Tensor | None = None
) -> Tensor:
    r"""Soft-label KD (Hinton et al. 2015):

    .. math:: \mathcal{L} = \tau^2 \cdot \mathrm{KL}\big(\sigma(z_T/\tau) \,\|\, \sigma(z_S/\tau)\big)

    averaged over examples (``(B, V)``, i.e. ``F.kl_div(..., reduction="batchmean")``) or over unmasked token
    positions (``(B, T, V)`` with ``mask (B, T)``). The :math:`\tau^2` factor keeps gradient magnitudes comparable
    across temperatures; as :math:`\tau \to \infty` the loss tends to :math:`\|\bar z_T - \bar z_S\|^2 / (2V)` with
    row-centred logits (logit matching).
    """
    check_same_shape(student_logits, teacher_logits, "logits")
    check_temperature(temperature)
    log_p_s = F.log_softmax(upcast(student_logits) / temperature, dim=-1)
    log_p_t = F.log_softmax(upcast(teacher_logits) / temperature, dim=-1)
    return temperature**2 * masked_mean(_kl_per_position(log_p_t, log_p_s), mask)


def hinton_kd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    temperature: float = 2.0,
    alpha: float = 0.5,
    mask: Tensor | None = None,
    ignore_index: int = -100,
) -> Tensor:
    r"""Hinton KD, survey Eq. 1 (Hinton et al. 2015):

    .. math:: \mathcal{L}_{KD} = \alpha\,\mathcal{L}_{CE}(\sigma(z_S), y)
              + (1-\alpha)\,\tau^2\,\mathrm{KL}\big(\sigma(z_T/\tau) \,\|\, \sigma(z_S/\tau)\big)

    ``alpha`` weights the hard-label cross-entropy, which is taken at temperature 1. The CE term averages over
    positions that are unmasked and whose label is not ``ignore_index`` (as ``F.cross_entropy`` does); the KL term
    averages over unmasked positions only, since the teacher's distribution is defined where the label is not. Pass
    ``mask=labels != ignore_index`` to restrict both terms to labelled tokens.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if labels.shape != student_logits.shape[:-1]:
        raise ValueError(f"labels have shape {tuple(labels.shape)}, expected {tuple(student_logits.shape[:-1])}")
    labelled = labels != ignore_index
    ce_mask = labelled if mask is None else labelled & mask.bool()
    log_p_s = F.log_softmax(upcast(student_logits), dim=-1)
    nll = -log_p_s.gather(-1, labels.where(labelled, 0).unsqueeze(-1)).squeeze(-1)
    ce = masked_mean(nll, ce_mask)
    kd = soft_label_kd_loss(student_logits, teacher_logits, temperature, mask)
    return alpha * ce + (1.0 - alpha) * kd


def topk_kd_loss(
    student_logits: Tensor,
    teacher_topk_ids: Tensor,
    teacher_topk_logprobs: Tensor,
    temperature: float = 1.0,
    mask: Tensor | None = None,
) -> Tensor:
    r"""KD against a sparse teacher: its top-k ids and log-probs, as an OpenAI-compatible API returns or a store holds.

    The teacher's k log-probs are tempered and renormalised over the k ids,
    :math:`q_i = \mathrm{softmax}_i(\ell_i/\tau)` (the teacher's log-partition cancels, so this is
    :math:`\sigma(z_T/\tau)` restricted to the k ids). The student keeps its full-vocabulary normaliser,
    :math:`\log p_S = \mathrm{log\_softmax}(z_S/\tau)` gathered at the same ids:

    .. math:: \mathcal{L} = \tau^2 \sum_{i=1}^{k} q_i \,(\log q_i - \log p_S(\mathrm{id}_i))

    Keeping the full normaliser (rather than renormalising the student over the k ids too) means the loss also
    pulls the student's mass off the ids outside the teacher's top-k: it is :math:`\geq 0` and zero only when the
    student puts all its mass on the k ids in the teacher's proportions. With k = V it equals
    :func:`soft_label_kd_loss`. Shapes: logits ``(..., V)``; ids and log-probs ``(..., k)``; a padded slot can carry
    log-prob ``-inf`` and any valid id. Averaged like :func:`soft_label_kd_loss`.
    """
    check_same_shape(teacher_topk_ids, teacher_topk_logprobs, "top-k ids/log-probs")
    if teacher_topk_ids.shape[:-1] != student_logits.shape[:-1]:
        raise ValueError(
            f"teacher top-k has shape {tuple(teacher_topk_ids.shape)}, "
            f"expected {tuple(student_logits.shape[:-1])} + (k,)"
        )
    check_temperature(temperature)
    log_p_s = F.log_softmax(upcast(student_logits) / temperature, dim=-1).gather(-1, teacher_topk_ids.long())
    log_q = F.log_softmax(upcast(teacher_topk_logprobs) / temperature, dim=-1)
    return temperature**2 * masked_mean(_kl_per_position(log_q, log_p_s), mask)


@dataclass
class SoftLabelKDConfig:
    """Hinton et al. (2015) soft-label KD settings."""

    temperature: float = field(default=2.0, metadata={"help": "tau: softens both distributions (paper: 1-20)"})

    def __post_init__(self) -> None:
        check(self.temperature > 0, "temperature", f"must be > 0, got {self.temperature}")


class SoftLabelKD(LossTerm):
    """``tau^2 * KL(sigma(z_T / tau) || sigma(z_S / tau))`` on ``logits``: the second term of survey Eq. 1.

    With weights ``{"task": alpha, "kd": 1 - alpha}`` beside :class:`~suite.losses.task.TaskLoss` the Distiller's
    total is exactly Eq. 1.
    """

    def __init__(self, config: SoftLabelKDConfig | None = None):
        super().__init__()
        self.config = config or SoftLabelKDConfig()

    def forward(self, student_out, teacher_out, batch):
        return soft_label_kd_loss(student_out["logits"], teacher_out["logits"], temperature=self.config.temperature)
