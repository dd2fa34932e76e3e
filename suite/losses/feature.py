r"""Hidden-state distillation through a learnable projector: FitNets hints.

Romero et al. (2015), "FitNets: Hints for Thin Deep Nets", ICLR, arXiv:1412.6550.

Features are ``(..., D)`` (``(B, D)`` pooled or ``(B, T, D)`` per token); ``mask`` has their shape without the last
axis. The projector belongs to the Distiller (CONVENTIONS item 2), so the exported student stays clean.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch.nn.functional as F
from torch import Tensor, nn

from suite.losses._reduce import check_same_shape, masked_mean, upcast
from suite.losses.term import LossTerm

METRICS = ("mse", "cosine")


def feature_distillation_loss(
    student_feat: Tensor, teacher_feat: Tensor, metric: str = "mse", mask: Tensor | None = None
) -> Tensor:
    r"""Distance between already-aligned features, averaged over (unmasked) positions.

    ``"mse"``: :math:`\frac{1}{D}\|h_S - h_T\|_2^2` per position, i.e. ``F.mse_loss`` when nothing is masked.
    ``"cosine"``: :math:`1 - \cos(h_S, h_T)` per position, which ignores feature scale.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    check_same_shape(student_feat, teacher_feat, "features")
    student_feat, teacher_feat = upcast(student_feat), upcast(teacher_feat)
    if metric == "mse":
        per_position = (student_feat - teacher_feat).pow(2).mean(-1)
    else:
        per_position = 1.0 - F.cosine_similarity(student_feat, teacher_feat, dim=-1)
    return masked_mean(per_position, mask)


class FeatureDistillationLoss(nn.Module):
    r"""FitNets hint loss :math:`d(W h_S, h_T)` with a learnable linear regressor :math:`W`: student -> teacher dim.

    ``projector=False`` compares features directly and is allowed only when the dims are equal.
    """

    def __init__(self, student_dim: int, teacher_dim: int, metric: str = "mse", projector: bool = True):
        super().__init__()
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if not projector and student_dim != teacher_dim:
            raise ValueError(f"projector=False needs equal dims, got student {student_dim}, teacher {teacher_dim}")
        self.metric = metric
        self.projector = nn.Linear(student_dim, teacher_dim) if projector else nn.Identity()

    def forward(self, student_feat: Tensor, teacher_feat: Tensor, mask: Tensor | None = None) -> Tensor:
        return feature_distillation_loss(self.projector(student_feat), teacher_feat, self.metric, mask)


@dataclass
class FeatureHintConfig:
    """Which outputs a FitNets hint compares, and how."""

    student_key: str = field(default="pooled", metadata={"help": "student output holding the hinted feature"})
    teacher_key: str = field(default="embedding", metadata={"help": "teacher output holding the hint"})
    metric: str = field(default="mse", metadata={"help": "mse (FitNets) | cosine"})


class FeatureHint(LossTerm):
    """:class:`FeatureDistillationLoss` as a Distiller term: ``student_out[student_key]`` projected to the teacher's
    width against ``teacher_out[teacher_key]``. The projector is this term's, so the exported student stays clean."""

    def __init__(self, student_dim: int, teacher_dim: int, config: FeatureHintConfig | None = None):
        super().__init__()
        self.config = config or FeatureHintConfig()
        self.loss = FeatureDistillationLoss(student_dim, teacher_dim, metric=self.config.metric)

    def forward(self, student_out, teacher_out, batch):
        return self.loss(student_out[self.config.student_key], teacher_out[self.config.teacher_key])
