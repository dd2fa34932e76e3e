"""Tests for suite.losses.relational (RKD) and suite.losses.contrastive (InfoNCE)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from suite.losses import info_nce_loss, rkd_angle_loss, rkd_distance_loss


def randn(*shape: int, seed: int = 0, requires_grad: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(requires_grad)


def similar(emb: torch.Tensor, out_dim: int) -> torch.Tensor:
    """A rotated, scaled, shifted copy of ``emb`` in a wider space: same distances up to scale, same angles."""
    rotation, _ = torch.linalg.qr(randn(out_dim, out_dim, seed=42))
    return 2.5 * emb @ rotation[: emb.shape[1]] + 7.0


# --- relational ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss_fn", [rkd_distance_loss, rkd_angle_loss])
def test_rkd_identical_and_similar_geometry_is_zero(loss_fn):
    emb = randn(6, 3)
    assert loss_fn(emb, emb.clone()).item() == 0.0
    assert loss_fn(emb, similar(emb, 5)).item() == pytest.approx(0.0, abs=1e-12)


def test_rkd_distance_matches_pdist_huber():
    student, teacher = randn(6, 3, seed=1), randn(6, 4, seed=2)
    d_s, d_t = F.pdist(student), F.pdist(teacher)
    expected = F.huber_loss(d_s / d_s.mean(), d_t / d_t.mean(), delta=1.0)
    torch.testing.assert_close(rkd_distance_loss(student, teacher), expected)


@pytest.mark.parametrize("loss_fn", [rkd_distance_loss, rkd_angle_loss])
def test_rkd_is_symmetric_and_positive_for_different_geometry(loss_fn):
    student, teacher = randn(5, 3, seed=1), randn(5, 4, seed=2)
    forward, backward = loss_fn(student, teacher), loss_fn(teacher, student)
    torch.testing.assert_close(forward, backward)
    assert forward.item() > 1e-3


@pytest.mark.parametrize("loss_fn", [rkd_distance_loss, rkd_angle_loss])
def test_rkd_gradient_reaches_student_only_and_survives_duplicates(loss_fn):
    student = randn(5, 3, seed=1)
    student = torch.cat([student, student[:1]]).requires_grad_(True)  # duplicate row: zero distance
    teacher = randn(6, 4, seed=2)
    loss_fn(student, teacher).backward()
    assert torch.isfinite(student.grad).all() and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_rkd_rejects_bad_shapes():
    with pytest.raises(ValueError, match="embeddings"):
        rkd_distance_loss(randn(4, 3), randn(5, 3))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        rkd_distance_loss(randn(4, 3, 2), randn(4, 3, 2))
    with pytest.raises(ValueError, match="at least 3"):
        rkd_angle_loss(randn(2, 3), randn(2, 3))


# --- contrastive --------------------------------------------------------------------------------------------------


def test_info_nce_one_negative_is_two_class_cross_entropy():
    query, positive, negative = randn(4, 3, seed=1), randn(4, 3, seed=2), randn(4, 1, 3, seed=3)
    tau = 0.3
    pos = F.cosine_similarity(query, positive, dim=-1)
    neg = F.cosine_similarity(query, negative[:, 0], dim=-1)
    expected = F.softplus((neg - pos) / tau).mean()  # -log sigmoid((pos - neg) / tau)
    torch.testing.assert_close(info_nce_loss(query, positive, negative, temperature=tau), expected)


def test_info_nce_in_batch_equals_explicit_per_query_negatives():
    query, positive = randn(4, 3, seed=1), randn(4, 3, seed=2)
    others = torch.stack([torch.cat([positive[:b], positive[b + 1 :]]) for b in range(4)])  # (B, B-1, D)
    torch.testing.assert_close(
        info_nce_loss(query, positive, temperature=0.5), info_nce_loss(query, positive, others, 0.5)
    )


def test_info_nce_groups_drop_a_shared_positive_from_the_negatives():
    # Rows 0 and 2 share one positive (the same teacher text): each is scored against row 1 only.
    query, positive = randn(3, 3, seed=1), randn(3, 3, seed=2)
    positive[2] = positive[0]
    grouped = info_nce_loss(query, positive, temperature=0.5, groups=torch.tensor([0, 1, 0]))
    per_query = [
        info_nce_loss(query[b : b + 1], positive[b : b + 1], positive[negatives], temperature=0.5)
        for b, negatives in enumerate([[1], [0, 2], [1]])
    ]
    torch.testing.assert_close(grouped, torch.stack(per_query).mean())
    distinct = info_nce_loss(query, positive, temperature=0.5, groups=torch.tensor([0, 1, 2]))
    torch.testing.assert_close(distinct, info_nce_loss(query, positive, temperature=0.5))
    with pytest.raises(ValueError, match="in-batch"):
        info_nce_loss(query, positive, randn(2, 3), groups=torch.tensor([0, 1, 0]))


def test_info_nce_shared_negatives_equal_expanded_per_query():
    query, positive, negatives = randn(4, 3, seed=1), randn(4, 3, seed=2), randn(6, 3, seed=3)
    shared = info_nce_loss(query, positive, negatives, temperature=0.2)
    torch.testing.assert_close(shared, info_nce_loss(query, positive, negatives.expand(4, 6, 3), temperature=0.2))


@pytest.mark.parametrize("tau", [0.05, 0.5, 2.0])
def test_info_nce_orthogonal_negatives_closed_form(tau):
    # Aligned positive (cos 1) and N orthogonal negatives (cos 0): loss = log(1 + N exp(-1/tau)).
    basis = torch.eye(5, dtype=torch.float64)
    query, positive, negatives = 3.0 * basis[:2], basis[:2], basis[2:]
    expected = math.log1p(3 * math.exp(-1 / tau))
    assert info_nce_loss(query, positive, negatives, temperature=tau).item() == pytest.approx(expected)


def test_info_nce_lower_temperature_sharpens_aligned_pairs():
    basis = torch.eye(5, dtype=torch.float64)
    losses = [info_nce_loss(basis[:3], basis[:3], temperature=t).item() for t in (1.0, 0.3, 0.07, 0.01)]
    assert losses == sorted(losses, reverse=True) and losses[-1] < 1e-30 < losses[0]


def test_info_nce_is_scale_invariant():
    query, positive = randn(4, 3, seed=1), randn(4, 3, seed=2)
    torch.testing.assert_close(info_nce_loss(5.0 * query, positive), info_nce_loss(query, 0.2 * positive))


def test_info_nce_gradient_reaches_query_only():
    query, positive = randn(4, 3, seed=1, requires_grad=True), randn(4, 3, seed=2)
    info_nce_loss(query, positive, randn(2, 3, seed=3)).backward()
    assert query.grad is not None and query.grad.abs().sum() > 0
    assert positive.grad is None


def test_info_nce_rejects_bad_inputs():
    with pytest.raises(ValueError, match="negatives"):
        info_nce_loss(randn(4, 3), randn(4, 3), randn(5, 2, 3))
    with pytest.raises(ValueError, match="temperature"):
        info_nce_loss(randn(4, 3), randn(4, 3), temperature=-1.0)
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        info_nce_loss(randn(4, 2, 3), randn(4, 2, 3))
