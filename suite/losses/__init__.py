"""Distillation losses on tensors: one family per module, formula and paper in each docstring."""

from suite.losses.alignment import MultiStageCosineAlignment, cosine_alignment_loss
from suite.losses.attention import attention_transfer_loss
from suite.losses.bayesian import SGLD, bayesian_kd_loss, dirichlet_log_prior, predictive_moments, teacher_prior_loss
from suite.losses.consistency import head_consistency_loss
from suite.losses.contrastive import info_nce_loss
from suite.losses.divergence import TokenKD, TokenKDConfig, TopK, bild_loss, shift_causal, token_divergence, uld_loss
from suite.losses.feature import FeatureDistillationLoss, FeatureHint, FeatureHintConfig, feature_distillation_loss
from suite.losses.imitation import action_score_loss, imitation_loss, waypoint_l2_loss
from suite.losses.kd import SoftLabelKD, SoftLabelKDConfig, hinton_kd_loss, soft_label_kd_loss, topk_kd_loss
from suite.losses.multi_teacher import (
    MultiTeacherConfig,
    MultiTeacherKD,
    multi_teacher_kd_loss,
    resolve_conflicts,
    teacher_weights,
)
from suite.losses.reconstruction import masked_reconstruction_loss
from suite.losses.relational import rkd_angle_loss, rkd_distance_loss
from suite.losses.self_distillation import ShallowExits, ShallowExitsConfig, mutual_learning_losses
from suite.losses.ssim import ssim, ssim_attention_loss
from suite.losses.task import TaskLoss
from suite.losses.term import LossTerm

__all__ = [
    "ShallowExits",
    "ShallowExitsConfig",
    "mutual_learning_losses",
    "SGLD",
    "bayesian_kd_loss",
    "dirichlet_log_prior",
    "predictive_moments",
    "teacher_prior_loss",
    "MultiTeacherConfig",
    "MultiTeacherKD",
    "multi_teacher_kd_loss",
    "resolve_conflicts",
    "teacher_weights",
    "FeatureDistillationLoss",
    "FeatureHint",
    "FeatureHintConfig",
    "LossTerm",
    "SoftLabelKD",
    "SoftLabelKDConfig",
    "TaskLoss",
    "TokenKD",
    "TokenKDConfig",
    "TopK",
    "bild_loss",
    "shift_causal",
    "token_divergence",
    "uld_loss",
    "MultiStageCosineAlignment",
    "attention_transfer_loss",
    "cosine_alignment_loss",
    "feature_distillation_loss",
    "head_consistency_loss",
    "hinton_kd_loss",
    "imitation_loss",
    "action_score_loss",
    "info_nce_loss",
    "masked_reconstruction_loss",
    "rkd_angle_loss",
    "rkd_distance_loss",
    "soft_label_kd_loss",
    "ssim",
    "ssim_attention_loss",
    "topk_kd_loss",
    "waypoint_l2_loss",
]
