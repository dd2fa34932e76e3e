r"""Symmetric-KL consistency between two heads: DSDrive's coordination of its reasoning and planning heads.

Liu et al. (2025), "DSDrive: Distilling Large Language Model for Lightweight End-to-End Autonomous Driving with
Unified Reasoning and Planning".
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from suite.losses._reduce import check_same_shape, check_temperature, upcast


def head_consistency_loss(logits_a: Tensor, logits_b: Tensor, temperature: float = 1.0) -> Tensor:
    r"""Symmetric KL between the heads' softened distributions over C classes, averaged over the batch:

    .. math:: \mathcal{L} = \frac{1}{B}\sum_b \tfrac{1}{2}\big(\mathrm{KL}(p_{a,b} \,\|\, p_{b,b})
              + \mathrm{KL}(p_{b,b} \,\|\, p_{a,b})\big), \qquad p = \mathrm{softmax}(z / \tau)

    ``logits_a``, ``logits_b``: ``(B, C)``. Both heads receive gradients: this coordinates two student heads, it is
    not a teacher -> student loss (detach one side yourself for that).
    """
    check_same_shape(logits_a, logits_b, "logits")
    if logits_a.dim() != 2:
        raise ValueError(f"logits must be (B, C), got {tuple(logits_a.shape)}")
    check_temperature(temperature)
    log_a = F.log_softmax(upcast(logits_a) / temperature, dim=-1)
    log_b = F.log_softmax(upcast(logits_b) / temperature, dim=-1)
    # (p_a - p_b)(log p_a - log p_b) summed over classes is KL(p_a||p_b) + KL(p_b||p_a).
    return 0.5 * ((log_a.exp() - log_b.exp()) * (log_a - log_b)).sum(-1).mean()
