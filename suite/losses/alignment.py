r"""Multi-stage cosine alignment of student features with a teacher's text embedding: survey Eq. 10, VERDI.

Feng et al. (2025), "VERDI: VLM-Embedded Reasoning for Autonomous Driving".
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from suite.losses._reduce import check_same_shape, upcast


def cosine_alignment_loss(features: Tensor, target: Tensor) -> Tensor:
    r""":math:`\frac{1}{B}\sum_b \big(1 - \cos(f_b, e_b)\big)` over the last axis, averaged over all other axes."""
    check_same_shape(features, target, "features/target")
    return (1.0 - F.cosine_similarity(upcast(features), upcast(target), dim=-1)).mean()


class MultiStageCosineAlignment(nn.Module):
    r"""Survey Eq. 10 (VERDI): :math:`\mathcal{L}_{align} = \sum_k \frac{1}{B}\sum_b(1 - \cos(P_k(F_{k,b}), E_{k,b}))`.

    One learnable linear projector :math:`P_k` per stage (e.g. ``{"per": 256, "pred": 256, "plan": 128}``) maps the
    stage's features to ``target_dim``, the dim of the teacher's rationale embedding :math:`E = E_{text}(R)`.
    Feature maps ``(B, C, H, W)`` are mean-pooled over space to ``(B, C)`` first; ``(B, C)`` is used as is.
    ``target`` is either one ``(B, target_dim)`` embedding shared by all stages, or a dict ``stage -> (B, target_dim)``
    giving each stage its own teacher embedding :math:`E_k = E_{text}(R_k)`, as VERDI embeds the perception,
    prediction and planning rationales separately; the dict must name exactly the projectors' stages.
    The stages are summed, not averaged, as in Eq. 10. The projectors belong to the Distiller, not the student.
    """

    def __init__(self, stage_dims: dict[str, int], target_dim: int):
        super().__init__()
        if not stage_dims:
            raise ValueError("stage_dims must name at least one stage")
        self.projectors = nn.ModuleDict({name: nn.Linear(dim, target_dim) for name, dim in stage_dims.items()})

    def forward(self, stage_features: dict[str, Tensor], target: Tensor | dict[str, Tensor]) -> Tensor:
        if set(stage_features) != set(self.projectors):
            raise ValueError(f"expected features for stages {sorted(self.projectors)}, got {sorted(stage_features)}")
        if isinstance(target, dict) and set(target) != set(self.projectors):
            raise ValueError(f"expected targets for stages {sorted(self.projectors)}, got {sorted(target)}")
        total = 0.0
        for name, projector in self.projectors.items():
            stage_target = target[name] if isinstance(target, dict) else target
            total = total + cosine_alignment_loss(projector(_pool(stage_features[name], name)), stage_target)
        return total


def _pool(features: Tensor, name: str) -> Tensor:
    if features.dim() == 4:
        return features.mean(dim=(2, 3))  # (B, C, H, W) -> (B, C)
    if features.dim() == 2:
        return features
    raise ValueError(f"stage {name!r}: features must be (B, C) or (B, C, H, W), got {tuple(features.shape)}")
