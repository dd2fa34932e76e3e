r"""Masked token reconstruction: survey Eq. 11, the DiMA surrogate task.

Hegde et al. (2025), "Distilling Multi-modal Large Language Models for Autonomous Driving", CVPR.
"""

from __future__ import annotations

from torch import Tensor

from suite.losses._reduce import check_same_shape, masked_mean, upcast


def masked_reconstruction_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    r""":math:`\mathcal{L}_{recon} = \frac{1}{|M|}\sum_{t \in M} \|\hat B_t - B_t\|_2^2` over the masked tokens M only.

    ``pred``, ``target``: ``(..., T, D)`` tokens (e.g. BEV tokens ``(B, T, D)``); ``mask``: ``(..., T)``, true where a
    token was masked and must be reconstructed. Normalisation: the squared L2 norm is *summed* over the D features
    and *averaged* over masked tokens, so with every token masked it equals ``D * F.mse_loss(pred, target)``.
    An empty mask gives 0 that still carries a graph, so such a batch backpropagates without special cases.
    """
    check_same_shape(pred, target, "reconstructions/targets")
    if mask.shape != pred.shape[:-1]:
        raise ValueError(f"mask has shape {tuple(mask.shape)}, expected {tuple(pred.shape[:-1])}")
    squared = (upcast(pred) - upcast(target)).pow(2).sum(-1)  # (..., T)
    return masked_mean(squared, mask)
