"""Tests for the driving-planner losses: ssim (Vi-LAD), consistency (DSDrive), imitation, VERDI per-stage targets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from suite.losses import (
    MultiStageCosineAlignment,
    action_score_loss,
    head_consistency_loss,
    imitation_loss,
    ssim,
    ssim_attention_loss,
    waypoint_l2_loss,
)


def randn(*shape: int, seed: int = 0, requires_grad: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(requires_grad)


def blob(size: int, row: int, col: int) -> torch.Tensor:
    """A non-negative Gaussian bump centred at (row, col): a stand-in attention map of shape (size, size)."""
    grid = torch.arange(size, dtype=torch.float64)
    return torch.exp(-((grid[:, None] - row) ** 2 + (grid[None, :] - col) ** 2) / 4.0)


# --- ssim (Vi-LAD) ------------------------------------------------------------------------------------------------


def test_ssim_attention_identical_maps_is_zero():
    maps = randn(3, 1, 8, 8).abs()
    assert ssim_attention_loss(maps.clone(), maps).item() == pytest.approx(0.0, abs=1e-6)


def test_ssim_attention_is_scale_invariant():
    maps = randn(3, 1, 8, 8).abs()
    assert ssim_attention_loss(3.0 * maps, maps).item() == pytest.approx(0.0, abs=1e-6)


def test_ssim_attention_shifted_map_is_positive_and_bounded():
    teacher = torch.stack([blob(8, 2, 2), blob(8, 5, 3)])  # (B, H, W) input
    student = torch.stack([blob(8, 5, 5), blob(8, 1, 6)])
    loss = ssim_attention_loss(student, teacher)
    assert 0.0 < loss.item() <= 2.0
    noise = randn(2, 8, 8, seed=1).abs()
    assert 0.0 < ssim_attention_loss(noise, teacher).item() <= 2.0


def test_ssim_constant_maps_match_closed_form():
    # Constant maps have zero variance and covariance, so SSIM reduces to the luminance term.
    a, b, c1 = 0.2, 0.7, 0.01**2
    x, y = torch.full((2, 1, 8, 8), a, dtype=torch.float64), torch.full((2, 1, 8, 8), b, dtype=torch.float64)
    torch.testing.assert_close(ssim(x, y), torch.tensor((2 * a * b + c1) / (a**2 + b**2 + c1), dtype=torch.float64))


def test_ssim_attention_all_zero_map_is_finite():
    loss = ssim_attention_loss(torch.zeros(2, 8, 8), torch.rand(2, 8, 8))
    assert torch.isfinite(loss)


def test_ssim_attention_gradient_reaches_student_only():
    student, teacher = randn(2, 1, 8, 8, seed=1).abs().requires_grad_(), randn(2, 1, 8, 8, seed=2).abs()
    ssim_attention_loss(student, teacher).backward()
    assert student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_ssim_rejects_bad_shapes():
    with pytest.raises(ValueError, match="shape"):
        ssim_attention_loss(torch.rand(2, 8, 8), torch.rand(2, 8, 7))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        ssim(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        ssim(torch.rand(8, 8), torch.rand(8, 8))
    with pytest.raises(ValueError, match="too small"):
        ssim(torch.rand(2, 2, 2), torch.rand(2, 2, 2))
    with pytest.raises(ValueError, match="odd"):
        ssim(torch.rand(2, 8, 8), torch.rand(2, 8, 8), window_size=4)


# --- head consistency (DSDrive) -----------------------------------------------------------------------------------


def test_head_consistency_identical_is_zero():
    logits = randn(4, 6)
    assert head_consistency_loss(logits.clone(), logits).item() == pytest.approx(0.0, abs=1e-12)


def test_head_consistency_is_symmetric_and_matches_kl_div():
    a, b = randn(4, 6, seed=1), randn(4, 6, seed=2)
    loss = head_consistency_loss(a, b, temperature=2.0)
    torch.testing.assert_close(loss, head_consistency_loss(b, a, temperature=2.0))
    log_a, log_b = F.log_softmax(a / 2.0, dim=-1), F.log_softmax(b / 2.0, dim=-1)
    kl_ab = F.kl_div(log_b, log_a, log_target=True, reduction="batchmean")  # KL(p_a || p_b)
    kl_ba = F.kl_div(log_a, log_b, log_target=True, reduction="batchmean")
    torch.testing.assert_close(loss, 0.5 * (kl_ab + kl_ba))


def test_head_consistency_temperature():
    a, b = randn(4, 6, seed=1), randn(4, 6, seed=2)
    assert head_consistency_loss(a, b, temperature=4.0) < head_consistency_loss(a, b, temperature=1.0)
    with pytest.raises(ValueError, match="temperature"):
        head_consistency_loss(a, b, temperature=0.0)


def test_head_consistency_gradient_reaches_both_heads():
    a, b = randn(4, 6, seed=1, requires_grad=True), randn(4, 6, seed=2, requires_grad=True)
    head_consistency_loss(a, b).backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0


def test_head_consistency_rejects_bad_shapes():
    with pytest.raises(ValueError, match="shape"):
        head_consistency_loss(randn(4, 6), randn(4, 5))
    with pytest.raises(ValueError, match=r"\(B, C\)"):
        head_consistency_loss(randn(4, 3, 6), randn(4, 3, 6))


# --- imitation ----------------------------------------------------------------------------------------------------


def test_waypoint_l2_perfect_is_zero_and_three_four_five_is_five():
    target = randn(2, 4, 2)
    assert waypoint_l2_loss(target.clone(), target).item() == 0.0
    pred, target = torch.zeros(1, 2, 2), torch.tensor([[[3.0, 4.0], [3.0, 4.0]]])
    assert waypoint_l2_loss(pred, target).item() == pytest.approx(5.0)


def test_waypoint_l2_mask_excludes_missing_future():
    pred = torch.zeros(1, 3, 2, requires_grad=True)
    target = torch.tensor([[[3.0, 4.0], [0.0, 0.0], [float("nan"), float("nan")]]])  # last step: episode ended
    mask = torch.tensor([[True, True, False]])
    loss = waypoint_l2_loss(pred, target, mask)
    assert loss.item() == pytest.approx(2.5)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad[0, 2].abs().sum() == 0


def test_waypoint_l2_empty_mask_is_zero_with_grad():
    pred = randn(2, 3, 2, requires_grad=True)
    loss = waypoint_l2_loss(pred, randn(2, 3, 2, seed=1), torch.zeros(2, 3, dtype=torch.bool))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(pred.grad, torch.zeros_like(pred))


def test_waypoint_l2_rejects_bad_shapes():
    with pytest.raises(ValueError, match="shape"):
        waypoint_l2_loss(randn(2, 3, 2), randn(2, 4, 2))
    with pytest.raises(ValueError, match="mask"):
        waypoint_l2_loss(randn(2, 3, 2), randn(2, 3, 2), torch.ones(2, 4, dtype=torch.bool))


def test_imitation_loss_is_ce_plus_weighted_l2():
    logits, actions = randn(2, 5, seed=1), torch.tensor([0, 3])
    pred, target = randn(2, 4, 2, seed=2), randn(2, 4, 2, seed=3)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    expected = F.cross_entropy(logits, actions) + 0.3 * waypoint_l2_loss(pred, target, mask)
    torch.testing.assert_close(imitation_loss(logits, actions, pred, target, mask, waypoint_weight=0.3), expected)
    torch.testing.assert_close(imitation_loss(logits, actions, target, target), F.cross_entropy(logits, actions))


def test_frame_weights_give_a_weighted_mean_of_the_cross_entropy_over_frames_and_classes():
    logits, actions = randn(3, 4, seed=1), torch.tensor([0, 3, 3])
    waypoints = randn(3, 2, 2, seed=2)
    per_frame = F.cross_entropy(logits, actions, reduction="none")
    by_hand = (1 * per_frame[0] + 4 * per_frame[1] + 0 * per_frame[2]) / 5
    framed = imitation_loss(logits, actions, waypoints, waypoints, sample_weights=torch.tensor([1.0, 4.0, 0.0]))
    torch.testing.assert_close(framed, by_hand)
    # with class weights both multiply: 2 x 1, 0.5 x 4, 0.5 x 0
    classes = torch.tensor([2.0, 1.0, 1.0, 0.5], dtype=logits.dtype)
    both = imitation_loss(logits, actions, waypoints, waypoints, class_weights=classes,
                          sample_weights=torch.tensor([1.0, 4.0, 0.0]))  # fmt: skip
    torch.testing.assert_close(both, (2 * per_frame[0] + 2 * per_frame[1]) / 4)
    equal = imitation_loss(logits, actions, waypoints, waypoints, class_weights=classes, sample_weights=torch.ones(3))
    torch.testing.assert_close(equal, imitation_loss(logits, actions, waypoints, waypoints, class_weights=classes))
    with pytest.raises(ValueError, match="sample_weights"):
        imitation_loss(logits, actions, waypoints, waypoints, sample_weights=torch.tensor([1.0, -1.0, 1.0]))


def test_action_scores_are_a_huber_loss_in_units_of_scale_over_the_scored_actions():
    pred = torch.tensor([[0.0, 5.0, 30.0], [2.0, -10.0, 0.0]], dtype=torch.float64)
    target = torch.tensor([[3.0, float("nan"), 10.0], [2.0, float("nan"), float("nan")]], dtype=torch.float64)
    # in units of 10: errors -0.3 (quadratic: 0.5 x 0.09), 2.0 (linear: 2 - 0.5) and 0 over three scored actions
    expected = (0.5 * 0.09 + 1.5 + 0.0) / 3
    assert action_score_loss(pred, target, scale=10.0).item() == pytest.approx(expected)
    assert action_score_loss(target.nan_to_num(7.0), target).item() == 0.0


def test_action_scores_ignore_nan_targets_in_value_and_gradient():
    pred = randn(2, 5, requires_grad=True)
    target = torch.full((2, 5), float("nan"), dtype=torch.float64)
    target[0, 1] = 4.0
    loss = action_score_loss(pred, target)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and (pred.grad != 0).sum() == 1 and pred.grad[0, 1] != 0
    nothing = action_score_loss(pred, torch.full_like(target, float("nan")))
    assert nothing.item() == 0.0 and nothing.requires_grad


def test_action_scores_reject_bad_shapes_and_scales():
    with pytest.raises(ValueError, match="shape"):
        action_score_loss(randn(2, 5), randn(2, 4))
    with pytest.raises(ValueError, match="scale"):
        action_score_loss(randn(2, 5), randn(2, 5), scale=0.0)


# --- multi-stage alignment with per-stage targets (VERDI) ---------------------------------------------------------


def test_multi_stage_dict_target_with_shared_tensor_equals_single_target():
    module = MultiStageCosineAlignment({"per": 3, "pred": 2, "plan": 6}, target_dim=4).double()
    features = {"per": randn(2, 3, 4, 4, seed=1), "pred": randn(2, 2, seed=2), "plan": randn(2, 6, seed=3)}
    target = randn(2, 4, seed=4)
    shared = module(features, {"per": target, "pred": target, "plan": target})
    torch.testing.assert_close(shared, module(features, target))


def test_multi_stage_dict_target_uses_each_stage_target():
    module = MultiStageCosineAlignment({"per": 3, "plan": 2}, target_dim=4).double()
    features = {"per": randn(2, 3, seed=1), "plan": randn(2, 2, seed=2)}
    targets = {"per": randn(2, 4, seed=3), "plan": randn(2, 4, seed=4)}
    expected = sum(
        1 - F.cosine_similarity(module.projectors[k](features[k]), targets[k], dim=-1).mean() for k in features
    )
    torch.testing.assert_close(module(features, targets), expected)


def test_multi_stage_dict_target_rejects_wrong_stages():
    module = MultiStageCosineAlignment({"per": 3, "plan": 2}, target_dim=4)
    features = {"per": torch.randn(2, 3), "plan": torch.randn(2, 2)}
    with pytest.raises(ValueError, match="targets for stages"):
        module(features, {"per": torch.randn(2, 4)})
    with pytest.raises(ValueError, match="targets for stages"):
        module(features, {"per": torch.randn(2, 4), "plan": torch.randn(2, 4), "pred": torch.randn(2, 4)})
