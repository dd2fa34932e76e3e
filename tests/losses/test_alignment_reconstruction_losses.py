"""Tests for suite.losses.alignment (VERDI, survey Eq. 10) and suite.losses.reconstruction (DiMA, survey Eq. 11)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from suite.losses import MultiStageCosineAlignment, cosine_alignment_loss, masked_reconstruction_loss


def randn(*shape: int, seed: int = 0, requires_grad: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(requires_grad)


def identity_alignment(stages: list[str], dim: int) -> MultiStageCosineAlignment:
    module = MultiStageCosineAlignment({name: dim for name in stages}, dim).double()
    with torch.no_grad():
        for projector in module.projectors.values():
            projector.weight.copy_(torch.eye(dim))
            projector.bias.zero_()
    return module


# --- alignment ----------------------------------------------------------------------------------------------------


def test_cosine_alignment_identity_scale_and_opposite():
    target = randn(4, 5)
    assert cosine_alignment_loss(target.clone(), target).item() == pytest.approx(0.0, abs=1e-12)
    assert cosine_alignment_loss(4.0 * target, target).item() == pytest.approx(0.0, abs=1e-12)
    assert cosine_alignment_loss(-target, target).item() == pytest.approx(2.0)


def test_cosine_alignment_matches_definition():
    features, target = randn(4, 5, seed=1), randn(4, 5, seed=2)
    expected = (1 - F.cosine_similarity(features, target, dim=-1)).mean()
    torch.testing.assert_close(cosine_alignment_loss(features, target), expected)


def test_multi_stage_identity_projectors_give_zero_for_vectors_and_maps():
    target = randn(3, 4)
    feature_map = target[:, :, None, None].expand(3, 4, 2, 5)  # constant map: pools back to target
    module = identity_alignment(["per", "plan"], 4)
    loss = module({"per": feature_map, "plan": 2.0 * target}, target)
    assert loss.item() == pytest.approx(0.0, abs=1e-12)


def test_multi_stage_sums_stages_and_mean_pools_maps():
    module = MultiStageCosineAlignment({"per": 3, "pred": 2, "plan": 6}, target_dim=4).double()
    features = {"per": randn(2, 3, 4, 4, seed=1), "pred": randn(2, 2, seed=2), "plan": randn(2, 6, 3, 1, seed=3)}
    target = randn(2, 4, seed=4)
    pooled = {"per": features["per"].mean((2, 3)), "pred": features["pred"], "plan": features["plan"].mean((2, 3))}
    expected = sum(cosine_alignment_loss(module.projectors[k](v), target) for k, v in pooled.items())
    torch.testing.assert_close(module(features, target), expected)
    torch.testing.assert_close(module(pooled, target), expected)


def test_multi_stage_gradient_reaches_features_and_projectors_only():
    module = MultiStageCosineAlignment({"per": 3, "plan": 2}, target_dim=4).double()
    per, plan = randn(2, 3, 2, 2, seed=1, requires_grad=True), randn(2, 2, seed=2, requires_grad=True)
    target = randn(2, 4, seed=3)
    module({"per": per, "plan": plan}, target).backward()
    assert per.grad.abs().sum() > 0 and plan.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.projectors.parameters())
    assert target.grad is None


def test_multi_stage_rejects_bad_inputs():
    module = MultiStageCosineAlignment({"per": 3, "plan": 2}, target_dim=4)
    with pytest.raises(ValueError, match="stages"):
        module({"per": torch.randn(2, 3)}, torch.randn(2, 4))
    with pytest.raises(ValueError, match="'per'"):
        module({"per": torch.randn(2, 3, 5), "plan": torch.randn(2, 2)}, torch.randn(2, 4))
    with pytest.raises(ValueError, match="at least one stage"):
        MultiStageCosineAlignment({}, target_dim=4)


# --- reconstruction -----------------------------------------------------------------------------------------------


def test_reconstruction_identical_is_zero():
    target = randn(2, 5, 3)
    mask = torch.tensor([[1, 0, 1, 1, 0], [0, 1, 0, 0, 1]], dtype=torch.bool)
    assert masked_reconstruction_loss(target.clone(), target, mask).item() == 0.0


def test_reconstruction_full_mask_is_dim_times_mse():
    pred, target = randn(2, 5, 3, seed=1), randn(2, 5, 3, seed=2)
    loss = masked_reconstruction_loss(pred, target, torch.ones(2, 5, dtype=torch.bool))
    torch.testing.assert_close(loss, 3 * F.mse_loss(pred, target))


def test_reconstruction_counts_masked_tokens_only():
    pred, target = randn(2, 4, 3, seed=1), randn(2, 4, 3, seed=2)
    mask = torch.tensor([[1, 0, 0, 1], [0, 0, 1, 0]], dtype=torch.bool)
    loss = masked_reconstruction_loss(pred, target, mask)
    expected = (pred[mask] - target[mask]).pow(2).sum() / 3
    torch.testing.assert_close(loss, expected)
    visible_changed = torch.where(mask[..., None], pred, 50.0)
    torch.testing.assert_close(masked_reconstruction_loss(visible_changed, target, mask), loss)


def test_reconstruction_empty_mask_is_zero_with_grad():
    pred = randn(2, 4, 3, requires_grad=True)
    loss = masked_reconstruction_loss(pred, randn(2, 4, 3, seed=1), torch.zeros(2, 4, dtype=torch.bool))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(pred.grad, torch.zeros_like(pred))


def test_reconstruction_gradient_reaches_prediction_only():
    pred, target = randn(2, 4, 3, seed=1, requires_grad=True), randn(2, 4, 3, seed=2)
    masked_reconstruction_loss(pred, target, torch.tensor([[1, 0, 0, 1], [0, 1, 0, 0]])).backward()
    assert pred.grad.abs().sum() > 0 and pred.grad[0, 1].abs().sum() == 0
    assert target.grad is None


def test_reconstruction_rejects_bad_mask():
    with pytest.raises(ValueError, match="mask"):
        masked_reconstruction_loss(randn(2, 4, 3), randn(2, 4, 3), torch.ones(2, 3, dtype=torch.bool))
