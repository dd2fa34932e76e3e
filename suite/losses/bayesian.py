r"""Bayesian KD (survey 3.2, Fang et al. 2024): the teacher as a prior over the student, and posterior sampling.

**Teacher-informed prior** (survey Eq. 6). With the teacher's class probabilities :math:`p_i` and the student's
:math:`q_i = q(x_i; \theta)`, each example contributes a Dirichlet density :math:`\mathrm{Dir}(q_i; 1_K + \lambda
p_i)`, so the negative log-posterior of the student's weights on labelled data is, up to a constant,

.. math:: U(\theta) = \sum_i \Big[ -\log q_{i, y_i} \;-\; \lambda \sum_k p_{ik} \log q_{ik} \Big]
          \;(+\; \text{a weight prior})

i.e. hard-label CE plus :math:`\lambda` times the cross-entropy to the teacher: KD, as the paper shows. With
:math:`\lambda = 0` the prior is uniform and only the labels remain.

**Posterior sampling** with stochastic gradient Langevin dynamics (Welling & Teh 2011): :class:`SGLD` adds Gaussian
noise of variance :math:`\eta T` to each gradient step :math:`-\tfrac{\eta}{2} \nabla \hat U` (:math:`\hat U` the
minibatch estimate of :math:`U` scaled to the dataset); the weights visited after burn-in are samples of the
posterior (:math:`T = 1`). :func:`predictive_moments` turns the samples' predictions into a predictive mean and
variance: the student says how unsure it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

from suite.losses._reduce import upcast
from suite.losses.term import LossTerm


def dirichlet_log_prior(student_probs: Tensor, teacher_probs: Tensor, lam: float) -> Tensor:
    r""":math:`\log \mathrm{Dir}(q; 1_K + \lambda p)` per example (the full density, normaliser included);
    ``(B, K)`` -> ``(B,)``."""
    alpha = 1.0 + lam * upcast(teacher_probs)
    norm = torch.lgamma(alpha.sum(-1)) - torch.lgamma(alpha).sum(-1)
    return norm + ((alpha - 1.0) * upcast(student_probs).clamp_min(1e-30).log()).sum(-1)


def teacher_prior_loss(student_logits: Tensor, teacher_probs: Tensor, lam: float) -> Tensor:
    r"""The teacher-informed prior's part of :math:`U(\theta)`, averaged over the batch:
    :math:`-\lambda \sum_k p_k \log q_k` (:func:`dirichlet_log_prior` without its normaliser, which does not depend
    on the student). ``lam`` = 0 gives 0: the uniform Dirichlet."""
    if lam < 0:
        raise ValueError(f"lambda must be >= 0, got {lam}")
    log_q = F.log_softmax(upcast(student_logits), dim=-1)
    return -(lam * upcast(teacher_probs) * log_q).sum(-1).mean()


def bayesian_kd_loss(student_logits: Tensor, teacher_probs: Tensor, labels: Tensor, lam: float) -> Tensor:
    r""":math:`U(\theta) / N` on a batch: hard-label CE plus the teacher-informed prior (module docstring)."""
    return F.cross_entropy(upcast(student_logits), labels) + teacher_prior_loss(student_logits, teacher_probs, lam)


class TeacherPrior(LossTerm):
    """The teacher-informed prior as a Distiller term on the teacher's (stored) ``logits``: its weight is
    :math:`\\lambda`, so ``{task: 1, prior: lambda}`` is :math:`U(\theta) / N`, the MAP objective of Bayesian KD."""

    def forward(self, student_out, teacher_out, batch):
        return teacher_prior_loss(student_out["logits"], teacher_out["logits"].float().softmax(-1), lam=1.0)


class SGLD(torch.optim.Optimizer):
    r"""Stochastic gradient Langevin dynamics on a loss that is the *mean* over a batch of the per-example energy:
    the step is :math:`\theta \leftarrow \theta - \tfrac{\eta}{2} N \nabla \bar\ell + \mathcal{N}(0, \eta T)`, with
    ``num_data`` :math:`= N` scaling the batch mean to the dataset's energy and ``temperature`` :math:`T` (1: the
    posterior; 0: plain gradient descent)."""

    def __init__(self, params: Iterable, lr: float, num_data: int, temperature: float = 1.0,
                 generator: torch.Generator | None = None):  # fmt: skip
        if lr <= 0 or num_data < 1 or temperature < 0:
            raise ValueError("SGLD needs lr > 0, num_data >= 1 and temperature >= 0")
        super().__init__(params, {"lr": lr, "num_data": num_data, "temperature": temperature})
        self.generator = generator

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 - torch's signature
        loss = None if closure is None else closure()
        for group in self.param_groups:
            lr, scale, temperature = group["lr"], group["num_data"], group["temperature"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                p.add_(p.grad, alpha=-0.5 * lr * scale)
                if temperature > 0:
                    noise = torch.randn(p.shape, generator=self.generator, dtype=p.dtype, device=p.device)
                    p.add_(noise, alpha=math.sqrt(lr * temperature))
        return loss


def predictive_moments(sample_probs: Tensor) -> tuple[Tensor, Tensor]:
    """From ``(S, B, K)`` class probabilities of S posterior samples: the predictive mean ``(B, K)`` and the variance
    across samples of the probability of the predicted class ``(B,)`` (0: every sample agrees)."""
    mean = sample_probs.mean(0)
    top = mean.argmax(-1)
    chosen = sample_probs.gather(-1, top.view(1, -1, 1).expand(sample_probs.shape[0], -1, 1)).squeeze(-1)
    return mean, chosen.var(0, unbiased=False)


def ensemble_distribution_loss(student_logits: Tensor, member_probs: Tensor, temperature: float = 1.0,
                               eps: float = 1e-8) -> Tensor:  # fmt: skip
    r"""Ensemble distribution distillation (Malinin et al. 2020, EnD^2): the student's logits give the concentration
    :math:`\alpha(x) = \exp(z / \tau)` of a Dirichlet over class distributions, fitted to the K members'
    distributions :math:`p_k(x)` by likelihood:

    .. math:: \mathcal{L} = -\frac{1}{K} \sum_{k=1}^K \log \mathrm{Dir}\big(p_k(x); \alpha(x)\big)

    averaged over the batch; ``member_probs (K, B, C)``. The predictive mean is :math:`\alpha / \alpha_0` (the
    softmax of the logits at :math:`\tau`) and a small total concentration :math:`\alpha_0` says the members
    disagree: the student keeps the ensemble's spread, not only its mean."""
    alpha = torch.exp(upcast(student_logits) / temperature).clamp(1e-4, 1e4)
    p = upcast(member_probs).clamp_min(eps)
    p = p / p.sum(-1, keepdim=True)
    log_density = (torch.lgamma(alpha.sum(-1)) - torch.lgamma(alpha).sum(-1)).unsqueeze(0) + (
        (alpha.unsqueeze(0) - 1.0) * p.log()
    ).sum(-1)
    return -log_density.mean()


class EnsembleDistributionKD(LossTerm):
    """:func:`ensemble_distribution_loss` on the batch's stacked ensemble ``logits (B, K, C)`` (an ensemble's
    teacher-output stores): the ``end2`` term."""

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        self.temperature = temperature

    def forward(self, student_out, teacher_out, batch):
        logits = teacher_out["logits"]
        if logits.dim() != 3 or logits.shape[1] < 2:
            raise ValueError("ensemble distribution distillation needs an ensemble: teacher logits (B, K >= 2, C)")
        return ensemble_distribution_loss(student_out["logits"], logits.float().softmax(-1).transpose(0, 1),
                                          self.temperature)  # fmt: skip
