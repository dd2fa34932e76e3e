r"""InfoNCE contrastive alignment: survey Eq. 12, as used by VLP to align BEV agent features with text prototypes.

Pan et al. (2024), "VLP: Vision Language Planning for Autonomous Driving", CVPR;
van den Oord, Li & Vinyals (2018), "Representation Learning with Contrastive Predictive Coding", arXiv:1807.03748.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from suite.losses._reduce import check_same_shape, check_temperature, upcast


def info_nce_loss(
    query: Tensor,
    positive: Tensor,
    negatives: Tensor | None = None,
    temperature: float = 0.07,
    groups: Tensor | None = None,
) -> Tensor:
    r"""InfoNCE with cosine similarity, averaged over the B queries:

    .. math:: \mathcal{L} = -\frac{1}{B}\sum_b \log
              \frac{\exp(\cos(q_b, p_b)/\tau)}{\exp(\cos(q_b, p_b)/\tau) + \sum_{n} \exp(\cos(q_b, n)/\tau)}

    The positive sits in the denominator too (the standard InfoNCE of van den Oord et al.; survey Eq. 12 writes only
    the negatives there), so the loss is a cross-entropy over [positive, negatives] with target 0 and is >= 0.

    ``query``, ``positive``: ``(B, D)``. ``negatives``: None uses in-batch negatives (the other rows of ``positive``;
    a ``(B, B)`` cross-entropy with targets on the diagonal), ``(N, D)`` shares N negatives across queries,
    ``(B, N, D)`` gives each query its own. One direction only (query -> positive); for a symmetric CLIP-style loss
    call it twice with the roles swapped. A learnable temperature is the caller's job: pass its current value.

    ``groups`` (``(B,)`` integers, in-batch negatives only): rows with the same group id share one positive (e.g.
    two agents described by the same teacher text), so they are not each other's negatives: pushing a query away
    from its own positive's twin would contradict pulling it towards the positive.
    """
    check_same_shape(query, positive, "query/positive")
    if query.dim() != 2:
        raise ValueError(f"query and positive must be (B, D), got {tuple(query.shape)}")
    check_temperature(temperature)
    query, positive = F.normalize(upcast(query), dim=-1), F.normalize(upcast(positive), dim=-1)
    if negatives is None:
        logits = query @ positive.T  # (B, B)
        targets = torch.arange(query.shape[0], device=query.device)
        if groups is not None:
            if groups.shape != targets.shape:
                raise ValueError(f"groups must be ({query.shape[0]},), got {tuple(groups.shape)}")
            twins = (groups[:, None] == groups[None, :]) & ~torch.eye(
                len(groups), dtype=torch.bool, device=groups.device
            )
            logits = logits.masked_fill(twins, float("-inf"))
        return F.cross_entropy(logits / temperature, targets)
    if groups is not None:
        raise ValueError("groups apply to in-batch negatives only (negatives=None)")
    negatives = F.normalize(upcast(negatives), dim=-1)
    if negatives.dim() == 2 and negatives.shape[1] == query.shape[1]:
        negative_sims = query @ negatives.T  # (B, N)
    elif negatives.dim() == 3 and negatives.shape[0] == query.shape[0] and negatives.shape[2] == query.shape[1]:
        negative_sims = torch.einsum("bd,bnd->bn", query, negatives)  # (B, N)
    else:
        raise ValueError(
            f"negatives must be (N, D) or (B, N, D) for query {tuple(query.shape)}, got {tuple(negatives.shape)}"
        )
    logits = torch.cat([(query * positive).sum(-1, keepdim=True), negative_sims], dim=1)  # (B, 1 + N)
    targets = torch.zeros(query.shape[0], dtype=torch.long, device=query.device)
    return F.cross_entropy(logits / temperature, targets)
