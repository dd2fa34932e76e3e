r"""Behaviour cloning for driving planners: action cross-entropy plus waypoint L2 (survey section 3.5).

Pomerleau (1989), "ALVINN: An Autonomous Land Vehicle in a Neural Network", NeurIPS; the L2 waypoint term is the
usual planning loss of end-to-end drivers (e.g. Chitta et al. (2023), "TransFuser", TPAMI).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from suite.losses._reduce import check_same_shape, masked_mean, upcast


def waypoint_l2_loss(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    r""":math:`\mathcal{L}_{wp} = \frac{1}{|\mathcal{V}|}\sum_{(b,t) \in \mathcal{V}} \|\hat w_{b,t} - w_{b,t}\|_2`.

    ``pred``, ``target``: ``(B, T, 2)`` waypoints. The Euclidean distance is *not* squared, so the loss is the mean
    displacement error in the waypoints' units. ``mask (B, T)`` marks waypoints that exist (the end of an episode
    has no future); excluded targets may hold any padding, NaN included. An all-false mask gives 0 with a graph.
    """
    check_same_shape(pred, target, "waypoints")
    if pred.dim() != 3:
        raise ValueError(f"waypoints must be (B, T, 2), got {tuple(pred.shape)}")
    diff = upcast(pred) - upcast(target)
    if mask is not None:
        if mask.shape != pred.shape[:2]:
            raise ValueError(f"mask has shape {tuple(mask.shape)}, expected (B, T) = {tuple(pred.shape[:2])}")
        # Zero excluded rows first: NaN padding there would otherwise give NaN gradients.
        diff = diff.where(mask.bool()[..., None], 0.0)
    return masked_mean(diff.norm(dim=-1), mask)  # (B, T) distances


def imitation_loss(
    action_logits: Tensor,
    actions: Tensor,
    pred_waypoints: Tensor,
    target_waypoints: Tensor,
    waypoint_mask: Tensor | None = None,
    waypoint_weight: float = 1.0,
    class_weights: Tensor | None = None,
    sample_weights: Tensor | None = None,
) -> Tensor:
    r""":math:`\mathcal{L}_{BC} = \mathrm{CE}(z, a) + \lambda_{wp}\,\mathcal{L}_{wp}(\hat w, w)`.

    ``action_logits``: ``(B, A)``; ``actions``: ``(B,)`` class indices of the expert's discrete action (e.g. a
    high-level command); waypoints and mask as in :func:`waypoint_l2_loss`; ``waypoint_weight`` is
    :math:`\lambda_{wp}`. ``class_weights (A,)`` reweights the cross-entropy (rare but decisive actions such as
    braking against a majority of "keep going"). ``sample_weights (B,)`` >= 0 reweight frames as well: the
    cross-entropy is then :math:`\sum_b s_b c_{a_b} \mathrm{CE}_b / \sum_b s_b c_{a_b}` (``c``: the class weights,
    1 without them), a weighted mean like the class weights' own, so weights that are all equal change nothing.
    """
    if sample_weights is None:
        action_loss = F.cross_entropy(upcast(action_logits), actions, weight=class_weights)
    else:
        action_loss = _frame_weighted_ce(upcast(action_logits), actions, class_weights, sample_weights)
    return action_loss + waypoint_weight * waypoint_l2_loss(pred_waypoints, target_waypoints, waypoint_mask)


def _frame_weighted_ce(logits: Tensor, actions: Tensor, class_weights: Tensor | None, frames: Tensor) -> Tensor:
    if frames.shape != actions.shape or bool((frames < 0).any()):
        raise ValueError(f"sample_weights must be (B,) = {tuple(actions.shape)} and >= 0, got {tuple(frames.shape)}")
    weights = frames.to(logits.dtype)
    if class_weights is not None:
        weights = weights * class_weights.to(logits.dtype)[actions]
    per_frame = F.cross_entropy(logits, actions, reduction="none")
    return (weights * per_frame).sum() / weights.sum().clamp_min(torch.finfo(logits.dtype).tiny)


def action_score_loss(pred: Tensor, target: Tensor, scale: float = 1.0) -> Tensor:
    r""":math:`\mathcal{L}_{score} = \frac{1}{|\mathcal{V}|}\sum_{(b,a) \in \mathcal{V}}
    \mathrm{Huber}_1\big((\hat q_{b,a} - q_{b,a}) / \sigma\big)`, with :math:`\sigma` = ``scale``.

    Regression on the scores the expert decides by, one per action (policy distillation on the teacher's
    action values: Rusu et al. (2016), "Policy Distillation", ICLR): where the action label says only which action
    won, the scores also say by how much, on every frame. ``pred``, ``target``: ``(B, A)``; NaN targets (an action
    the expert did not score) are left out, :math:`\mathcal{V}` is the rest. ``scale`` puts the scores' units on the
    Huber loss's (quadratic within one ``scale`` of the target, linear beyond). No valid target gives 0 with a graph.
    """
    check_same_shape(pred, target, "action scores")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    valid = torch.isfinite(target)
    # Zero the excluded targets first: NaN there would otherwise give NaN gradients.
    error = (upcast(pred) - upcast(target).where(valid, 0.0)) / scale
    return masked_mean(F.huber_loss(error, torch.zeros_like(error), reduction="none", delta=1.0), valid)
