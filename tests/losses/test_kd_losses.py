"""Identity, edge-case, temperature, mask and gradient tests for suite.losses.kd."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from suite.losses import hinton_kd_loss, soft_label_kd_loss, topk_kd_loss


def randn(*shape: int, seed: int = 0, requires_grad: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(requires_grad)


def kl_batchmean(student: torch.Tensor, teacher: torch.Tensor, tau: float) -> torch.Tensor:
    log_p_s = F.log_softmax(student / tau, dim=-1)
    return tau**2 * F.kl_div(log_p_s, F.softmax(teacher / tau, dim=-1), reduction="batchmean")


# --- soft_label_kd_loss -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 7), (2, 3, 7)])
def test_soft_label_identical_is_zero(shape):
    logits = randn(*shape)
    assert soft_label_kd_loss(logits, logits.clone(), temperature=2.0).item() == pytest.approx(0.0, abs=1e-12)


def test_soft_label_is_shift_invariant_zero():
    logits = randn(3, 5)
    assert soft_label_kd_loss(logits + 4.0, logits, temperature=1.5).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0, 4.0])
def test_soft_label_equals_kl_div_batchmean(tau):
    student, teacher = randn(6, 9, seed=1), randn(6, 9, seed=2)
    expected = kl_batchmean(student, teacher, tau)
    torch.testing.assert_close(soft_label_kd_loss(student, teacher, temperature=tau), expected)


def test_soft_label_sequence_averages_over_positions():
    student, teacher = randn(2, 3, 5, seed=1), randn(2, 3, 5, seed=2)
    expected = kl_batchmean(student.reshape(6, 5), teacher.reshape(6, 5), 2.0)
    torch.testing.assert_close(soft_label_kd_loss(student, teacher, temperature=2.0), expected)


def test_soft_label_temperature_rescales_logits():
    # tau^2 KL(z_T/tau || z_S/tau) is KL at tau=1 on the divided logits, times tau^2.
    student, teacher = randn(4, 6, seed=3), randn(4, 6, seed=4)
    tau = 3.0
    lhs = soft_label_kd_loss(student, teacher, temperature=tau)
    rhs = tau**2 * soft_label_kd_loss(student / tau, teacher / tau, temperature=1.0)
    torch.testing.assert_close(lhs, rhs)


def test_soft_label_high_temperature_tends_to_centered_logit_mse():
    # tau -> inf: tau^2 KL -> ||zbar_T - zbar_S||^2 / (2V) with row-centred logits (Hinton et al. 2015, Sec. 2.1).
    student, teacher = randn(5, 8, seed=5), randn(5, 8, seed=6)
    center = lambda z: z - z.mean(-1, keepdim=True)  # noqa: E731
    limit = (center(teacher) - center(student)).pow(2).sum(-1).mean() / (2 * 8)
    high = soft_label_kd_loss(student, teacher, temperature=1e4)
    low = soft_label_kd_loss(student, teacher, temperature=1.0)
    assert high.item() == pytest.approx(limit.item(), rel=1e-3)
    assert abs(low.item() - limit.item()) > 1e-2 * limit.item()


def test_soft_label_mask_excludes_positions():
    student, teacher = randn(2, 4, 6, seed=7), randn(2, 4, 6, seed=8)
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0]], dtype=torch.bool)
    loss = soft_label_kd_loss(student, teacher, temperature=2.0, mask=mask)
    torch.testing.assert_close(loss, kl_batchmean(student[mask], teacher[mask], 2.0))
    scrambled = student.clone()
    scrambled[~mask] = 100.0 * randn(int((~mask).sum()), 6, seed=9)
    torch.testing.assert_close(soft_label_kd_loss(scrambled, teacher, temperature=2.0, mask=mask), loss)


def test_soft_label_empty_mask_is_zero_with_grad():
    student = randn(2, 3, 5, requires_grad=True)
    loss = soft_label_kd_loss(student, randn(2, 3, 5, seed=1), mask=torch.zeros(2, 3, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(student.grad, torch.zeros_like(student))


def test_soft_label_gradient_reaches_student_only():
    student, teacher = randn(3, 5, requires_grad=True), randn(3, 5, seed=1)
    soft_label_kd_loss(student, teacher, temperature=2.0).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None and not teacher.requires_grad


def test_soft_label_teacher_neg_inf_logit_is_finite():
    student, teacher = randn(2, 5, requires_grad=True), randn(2, 5, seed=1)
    teacher[:, -1] = float("-inf")  # e.g. padded vocabulary ids the teacher never emits
    loss = soft_label_kd_loss(student, teacher, temperature=2.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()


@pytest.mark.parametrize("loss_fn", ["soft_label", "topk"])
def test_masked_position_with_an_all_neg_inf_teacher_row_has_finite_gradients(loss_fn):
    # (B=1, T=3, V=4): position 2 is padding, where a stored teacher row can be all -inf.
    student = randn(1, 3, 4, requires_grad=True)
    teacher = randn(1, 3, 4, seed=1)
    teacher[0, 2] = float("-inf")
    mask = torch.tensor([[True, True, False]])
    if loss_fn == "soft_label":
        loss = soft_label_kd_loss(student, teacher, temperature=2.0, mask=mask)
        expected = soft_label_kd_loss(student[:, :2], teacher[:, :2], temperature=2.0)
    else:
        ids = torch.arange(4).expand(1, 3, 4)
        loss = topk_kd_loss(student, ids, teacher.log_softmax(-1), mask=mask)
        expected = topk_kd_loss(student[:, :2], ids[:, :2], teacher[:, :2].log_softmax(-1))
    loss.backward()
    assert torch.isfinite(student.grad).all()
    assert torch.equal(student.grad[0, 2], torch.zeros(4, dtype=torch.float64))
    assert torch.allclose(loss, expected)


def test_soft_label_half_precision_upcasts():
    student, teacher = randn(2, 5).bfloat16(), randn(2, 5, seed=1).bfloat16()
    assert soft_label_kd_loss(student, teacher).dtype == torch.float32


def test_soft_label_rejects_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        soft_label_kd_loss(randn(2, 5), randn(2, 6))
    with pytest.raises(ValueError, match="temperature"):
        soft_label_kd_loss(randn(2, 5), randn(2, 5), temperature=0.0)
    with pytest.raises(ValueError, match="mask"):
        soft_label_kd_loss(randn(2, 3, 5), randn(2, 3, 5), mask=torch.ones(2, 4, dtype=torch.bool))


# --- hinton_kd_loss -----------------------------------------------------------------------------------------------


def test_hinton_alpha_one_is_cross_entropy():
    student, teacher = randn(6, 5, seed=1), randn(6, 5, seed=2)
    labels = torch.tensor([0, 4, -100, 2, 1, -100])
    loss = hinton_kd_loss(student, teacher, labels, temperature=3.0, alpha=1.0)
    torch.testing.assert_close(loss, F.cross_entropy(student, labels, ignore_index=-100))


def test_hinton_alpha_one_sequence_is_cross_entropy():
    student, teacher = randn(2, 3, 5, seed=1), randn(2, 3, 5, seed=2)
    labels = torch.tensor([[0, 4, -100], [2, -100, 1]])
    loss = hinton_kd_loss(student, teacher, labels, alpha=1.0)
    torch.testing.assert_close(loss, F.cross_entropy(student.reshape(6, 5), labels.reshape(6)))


@pytest.mark.parametrize("tau", [1.0, 2.0, 4.0])
def test_hinton_alpha_zero_is_scaled_kl(tau):
    student, teacher = randn(6, 5, seed=1), randn(6, 5, seed=2)
    labels = torch.tensor([0, 4, 3, 2, 1, 0])
    loss = hinton_kd_loss(student, teacher, labels, temperature=tau, alpha=0.0)
    torch.testing.assert_close(loss, kl_batchmean(student, teacher, tau))


def test_hinton_alpha_zero_identical_is_zero():
    logits = randn(4, 5)
    loss = hinton_kd_loss(logits, logits.clone(), torch.tensor([0, 1, 2, 3]), alpha=0.0)
    assert loss.item() == pytest.approx(0.0, abs=1e-12)


def test_hinton_interpolates_eq1():
    student, teacher = randn(6, 5, seed=1), randn(6, 5, seed=2)
    labels = torch.tensor([0, 4, 3, 2, 1, 0])
    expected = 0.3 * F.cross_entropy(student, labels) + 0.7 * kl_batchmean(student, teacher, 2.0)
    torch.testing.assert_close(hinton_kd_loss(student, teacher, labels, temperature=2.0, alpha=0.3), expected)


def test_hinton_mask_excludes_positions_from_both_terms():
    student, teacher = randn(2, 4, 5, seed=1), randn(2, 4, 5, seed=2)
    labels = torch.tensor([[0, 1, 2, 3], [4, -100, 1, 0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    loss = hinton_kd_loss(student, teacher, labels, temperature=2.0, alpha=0.4, mask=mask)
    s, t, y = student[mask], teacher[mask], labels[mask]
    expected = 0.4 * F.cross_entropy(s, y) + 0.6 * kl_batchmean(s, t, 2.0)
    torch.testing.assert_close(loss, expected)


def test_hinton_gradient_reaches_student_only():
    student, teacher = randn(3, 5, requires_grad=True), randn(3, 5, seed=1)
    hinton_kd_loss(student, teacher, torch.tensor([1, 2, -100])).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_hinton_rejects_bad_inputs():
    with pytest.raises(ValueError, match="alpha"):
        hinton_kd_loss(randn(2, 5), randn(2, 5), torch.tensor([0, 1]), alpha=1.5)
    with pytest.raises(ValueError, match="labels"):
        hinton_kd_loss(randn(2, 5), randn(2, 5), torch.tensor([0, 1, 2]))


# --- topk_kd_loss -------------------------------------------------------------------------------------------------


def full_topk(teacher_logits: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """All V ids in a random order, with the teacher's log-probs: the k = V case."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.stack(
        [torch.randperm(teacher_logits.shape[-1], generator=g) for _ in range(teacher_logits[..., 0].numel())]
    )
    ids = ids.reshape(teacher_logits.shape)
    return ids, F.log_softmax(teacher_logits, dim=-1).gather(-1, ids)


@pytest.mark.parametrize("tau", [1.0, 3.0])
def test_topk_with_full_vocabulary_equals_soft_label(tau):
    student, teacher = randn(2, 3, 6, seed=1), randn(2, 3, 6, seed=2)
    ids, logprobs = full_topk(teacher)
    torch.testing.assert_close(
        topk_kd_loss(student, ids, logprobs, temperature=tau), soft_label_kd_loss(student, teacher, temperature=tau)
    )


def test_topk_full_vocabulary_identical_is_zero():
    logits = randn(4, 6)
    ids, logprobs = full_topk(logits)
    assert topk_kd_loss(logits, ids, logprobs).item() == pytest.approx(0.0, abs=1e-12)


def test_topk_zero_when_student_mass_matches_on_topk_only():
    teacher = randn(3, 8, seed=1)
    logprobs, ids = F.log_softmax(teacher, -1).topk(3, dim=-1)
    student = torch.full_like(teacher, float("-inf")).scatter(-1, ids, teacher.gather(-1, ids))
    assert topk_kd_loss(student, ids, logprobs, temperature=2.0).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_topk_same_model_penalises_mass_outside_topk(tau):
    # student == teacher: q_i = p_i / m with m the tempered mass on the top-k ids, so the loss is -tau^2 log m.
    logits = randn(4, 9, seed=3)
    logprobs, ids = F.log_softmax(logits, -1).topk(4, dim=-1)
    mass = F.softmax(logits / tau, dim=-1).gather(-1, ids).sum(-1)
    expected = -(tau**2) * mass.log().mean()
    torch.testing.assert_close(topk_kd_loss(logits, ids, logprobs, temperature=tau), expected)


def test_topk_padded_slot_is_ignored():
    student, teacher = randn(2, 7, seed=1), randn(2, 7, seed=2)
    logprobs, ids = F.log_softmax(teacher, -1).topk(3, dim=-1)
    padded_ids = torch.cat([ids, torch.zeros(2, 1, dtype=torch.long)], dim=-1)
    padded_logprobs = torch.cat([logprobs, torch.full((2, 1), float("-inf"), dtype=torch.float64)], dim=-1)
    torch.testing.assert_close(
        topk_kd_loss(student, padded_ids, padded_logprobs), topk_kd_loss(student, ids, logprobs)
    )


def test_topk_mask_excludes_positions():
    student, teacher = randn(2, 3, 6, seed=1), randn(2, 3, 6, seed=2)
    logprobs, ids = F.log_softmax(teacher, -1).topk(2, dim=-1)
    mask = torch.tensor([[1, 0, 1], [0, 0, 1]], dtype=torch.bool)
    loss = topk_kd_loss(student, ids, logprobs, temperature=2.0, mask=mask)
    torch.testing.assert_close(loss, topk_kd_loss(student[mask], ids[mask], logprobs[mask], temperature=2.0))


def test_topk_gradient_reaches_student_only():
    student, teacher = randn(3, 6, requires_grad=True), randn(3, 6, seed=1)
    logprobs, ids = F.log_softmax(teacher, -1).topk(2, dim=-1)
    topk_kd_loss(student, ids, logprobs).backward()
    # Ids outside the top-k get gradient too: the student's full normaliser pulls mass onto the teacher's ids.
    assert (student.grad != 0).all()
    assert not logprobs.requires_grad


def test_topk_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="top-k"):
        topk_kd_loss(randn(2, 6), torch.zeros(3, 2, dtype=torch.long), randn(3, 2))
    with pytest.raises(ValueError, match="shape"):
        topk_kd_loss(randn(2, 6), torch.zeros(2, 2, dtype=torch.long), randn(2, 3))
