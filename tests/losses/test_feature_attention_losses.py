"""Tests for suite.losses.feature (FitNets) and suite.losses.attention (TinyBERT)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from suite.losses import FeatureDistillationLoss, attention_transfer_loss, feature_distillation_loss


def randn(*shape: int, seed: int = 0, requires_grad: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(requires_grad)


def attention(*shape: int, seed: int = 0) -> torch.Tensor:
    return F.softmax(randn(*shape, seed=seed), dim=-1)


# --- feature ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["mse", "cosine"])
def test_feature_identical_is_zero(metric):
    feat = randn(2, 3, 4)
    assert feature_distillation_loss(feat, feat.clone(), metric).item() == pytest.approx(0.0, abs=1e-12)


def test_feature_mse_equals_f_mse_loss():
    student, teacher = randn(2, 3, 4, seed=1), randn(2, 3, 4, seed=2)
    torch.testing.assert_close(feature_distillation_loss(student, teacher, "mse"), F.mse_loss(student, teacher))


def test_feature_cosine_is_scale_invariant_and_matches_definition():
    student, teacher = randn(5, 4, seed=1), randn(5, 4, seed=2)
    expected = (1 - F.cosine_similarity(student, teacher, dim=-1)).mean()
    torch.testing.assert_close(feature_distillation_loss(student, teacher, "cosine"), expected)
    assert feature_distillation_loss(3.0 * teacher, teacher, "cosine").item() == pytest.approx(0.0, abs=1e-12)
    assert feature_distillation_loss(-teacher, teacher, "cosine").item() == pytest.approx(2.0)


@pytest.mark.parametrize("metric", ["mse", "cosine"])
def test_feature_mask_excludes_positions(metric):
    student, teacher = randn(2, 4, 3, seed=1), randn(2, 4, 3, seed=2)
    mask = torch.tensor([[1, 1, 0, 1], [0, 1, 0, 0]], dtype=torch.bool)
    loss = feature_distillation_loss(student, teacher, metric, mask)
    torch.testing.assert_close(loss, feature_distillation_loss(student[mask], teacher[mask], metric))


def test_feature_module_without_projector_identical_is_zero():
    feat = randn(2, 3, 4)
    module = FeatureDistillationLoss(4, 4, projector=False)
    assert module(feat, feat.clone()).item() == 0.0


def test_feature_module_identity_projector_is_zero():
    module = FeatureDistillationLoss(4, 4, metric="mse").double()
    with torch.no_grad():
        module.projector.weight.copy_(torch.eye(4))
        module.projector.bias.zero_()
    feat = randn(2, 3, 4)
    assert module(feat, feat.clone()).item() == pytest.approx(0.0, abs=1e-12)


def test_feature_module_projects_student_to_teacher_dim():
    module = FeatureDistillationLoss(3, 5, metric="cosine").double()
    student, teacher = randn(2, 4, 3, seed=1, requires_grad=True), randn(2, 4, 5, seed=2)
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    loss = module(student, teacher, mask)
    torch.testing.assert_close(loss, feature_distillation_loss(module.projector(student), teacher, "cosine", mask))
    loss.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert module.projector.weight.grad is not None and module.projector.weight.grad.abs().sum() > 0
    assert teacher.grad is None


def test_feature_rejects_bad_arguments():
    with pytest.raises(ValueError, match="projector=False"):
        FeatureDistillationLoss(3, 5, projector=False)
    with pytest.raises(ValueError, match="metric"):
        FeatureDistillationLoss(3, 3, metric="l1")
    with pytest.raises(ValueError, match="metric"):
        feature_distillation_loss(randn(2, 3), randn(2, 3), "l1")
    with pytest.raises(ValueError, match="shape"):
        feature_distillation_loss(randn(2, 3), randn(2, 4))


# --- attention ----------------------------------------------------------------------------------------------------


def test_attention_identical_is_zero():
    attn = attention(2, 4, 5, 5)
    assert attention_transfer_loss(attn, attn.clone()).item() == 0.0


def test_attention_equals_f_mse_loss():
    student, teacher = attention(2, 4, 5, 5, seed=1), attention(2, 4, 5, 5, seed=2)
    torch.testing.assert_close(attention_transfer_loss(student, teacher), F.mse_loss(student, teacher))


def test_attention_head_mismatch_raises_clear_error():
    with pytest.raises(ValueError, match="student has 2 attention heads, teacher has 4.*average_heads=True"):
        attention_transfer_loss(attention(1, 2, 3, 3), attention(1, 4, 3, 3))


def test_attention_average_heads_across_head_counts():
    student, teacher = attention(2, 2, 5, 5, seed=1), attention(2, 6, 5, 5, seed=2)
    loss = attention_transfer_loss(student, teacher, average_heads=True)
    torch.testing.assert_close(loss, F.mse_loss(student.mean(1), teacher.mean(1)))


def test_attention_mask_counts_valid_query_key_pairs_only():
    student, teacher = randn(2, 3, 5, 5, seed=1), randn(2, 3, 5, 5, seed=2)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    loss = attention_transfer_loss(student, teacher, mask)
    sq = (student - teacher).pow(2)
    expected = (sq[0, :, :3, :3].sum() + sq[1].sum()) / (3 * 9 + 3 * 25)
    torch.testing.assert_close(loss, expected)


def test_attention_masked_neg_inf_scores_keep_gradients_finite():
    student = randn(1, 2, 4, 4, seed=1).clone()
    student[..., 3] = float("-inf")  # padded key column of raw scores
    student.requires_grad_(True)
    teacher = randn(1, 2, 4, 4, seed=2)
    teacher[..., 3] = float("-inf")
    loss = attention_transfer_loss(student, teacher, torch.tensor([[1, 1, 1, 0]]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()
    assert student.grad[..., :3, :3].abs().sum() > 0


def test_attention_gradient_reaches_student_only():
    student = attention(1, 2, 3, 3, seed=1).requires_grad_(True)
    teacher = attention(1, 2, 3, 3, seed=2)
    attention_transfer_loss(student, teacher).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_attention_rejects_bad_shapes():
    with pytest.raises(ValueError, match="B, H, T, T"):
        attention_transfer_loss(randn(2, 3, 3), randn(2, 3, 3))
    with pytest.raises(ValueError, match="differ in B or T"):
        attention_transfer_loss(randn(1, 2, 3, 3), randn(1, 2, 4, 4))
    with pytest.raises(ValueError, match="mask"):
        attention_transfer_loss(randn(1, 2, 3, 3), randn(1, 2, 3, 3), torch.ones(1, 4, dtype=torch.bool))
