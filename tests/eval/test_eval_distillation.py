"""Teacher-student agreement metrics (survey 6.2): KL/JS identities, CKA invariances, cosine similarity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from suite.eval import js_divergence, kl_divergence, linear_cka, representation_cosine_similarity


def logits(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 7)])
def test_divergences_of_identical_distributions_are_zero(shape):
    z = logits(*shape, seed=0)
    assert kl_divergence(z, z.clone()) == pytest.approx(0.0, abs=1e-12)
    assert js_divergence(z, z + 3.0) == pytest.approx(0.0, abs=1e-12)  # softmax is shift invariant


def test_kl_matches_torch_kl_div_batchmean():
    teacher, student = logits(6, 9, seed=1), logits(6, 9, seed=2)
    expected = F.kl_div(F.log_softmax(student, -1), F.log_softmax(teacher, -1), log_target=True, reduction="batchmean")
    assert kl_divergence(teacher, student) == pytest.approx(expected.item(), rel=1e-10)
    assert kl_divergence(teacher.softmax(-1), student.softmax(-1), from_logits=False) == pytest.approx(
        expected.item(), rel=1e-10
    )


def test_js_is_symmetric_and_bounded_by_log2():
    teacher, student = logits(8, 5, seed=3) * 4, logits(8, 5, seed=4) * 4
    js = js_divergence(teacher, student)
    assert js == pytest.approx(js_divergence(student, teacher), rel=1e-12)
    assert 0.0 < js <= math.log(2)
    disjoint = js_divergence([[1.0, 0.0]], [[0.0, 1.0]], from_logits=False)
    assert disjoint == pytest.approx(math.log(2))


def test_kl_is_infinite_where_the_student_rules_out_teacher_mass():
    assert kl_divergence([[0.5, 0.5]], [[1.0, 0.0]], from_logits=False) == math.inf
    assert kl_divergence([[1.0, 0.0]], [[0.5, 0.5]], from_logits=False) == pytest.approx(math.log(2))


def test_divergence_shapes_must_match():
    with pytest.raises(ValueError, match="shape"):
        kl_divergence(logits(2, 3, seed=0), logits(2, 4, seed=0))


def test_cka_identity_orthogonal_and_scale_invariance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8))
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 3.5 * x @ q) == pytest.approx(1.0)
    y = rng.normal(size=(60, 5))
    assert linear_cka(x @ q, y) == pytest.approx(linear_cka(x, y))
    assert linear_cka(x, 0.1 * y) == pytest.approx(linear_cka(x, y))
    assert linear_cka(x, y) < 0.5  # independent representations


def test_cka_compares_different_widths_and_rejects_unpaired_rows():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 4))
    wide = np.hstack([x, np.zeros((30, 3))])  # same information, padded with dead units
    assert linear_cka(torch.from_numpy(x), wide) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="30 rows against 20"):
        linear_cka(x, rng.normal(size=(20, 4)))


def test_cosine_similarity():
    x = np.array([[1.0, 0.0], [1.0, 1.0]])
    assert representation_cosine_similarity(x, 2 * x) == pytest.approx(1.0)
    assert representation_cosine_similarity(x, -x) == pytest.approx(-1.0)
    assert representation_cosine_similarity(x, [[0.0, 1.0], [1.0, 0.0]]) == pytest.approx((0 + 1 / math.sqrt(2)) / 2)
