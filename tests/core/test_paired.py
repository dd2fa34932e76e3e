"""McNemar's exact test against values worked by hand and against scipy's binomial test."""

from __future__ import annotations

import numpy as np
import pytest

from suite.eval.paired import holm_adjust, mcnemar_exact


def test_mcnemar_counts_only_discordant_cases_and_matches_the_binomial_tail():
    # 10 cases: both fail in 2, only a fails in 6, only b fails in 1, both pass in 1
    a = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]
    b = [1, 1, 0, 0, 0, 0, 0, 0, 1, 0]
    out = mcnemar_exact(a, b)
    assert (out["only_a"], out["only_b"], out["cases"]) == (6, 1, 10)
    assert out["p_value"] == pytest.approx(2 * (1 + 7) / 2**7)  # P(K <= 1 | n=7) doubled = 0.125
    assert out["failure_rate_a"] == 0.8 and out["failure_rate_b"] == 0.3


def test_mcnemar_is_symmetric_capped_at_one_and_one_without_discordance():
    rng = np.random.default_rng(0)
    a, b = rng.random(300) < 0.3, rng.random(300) < 0.2
    assert mcnemar_exact(a, b)["p_value"] == mcnemar_exact(b, a)["p_value"]
    assert mcnemar_exact([1, 0], [0, 1])["p_value"] == 1.0
    assert mcnemar_exact([1, 0, 1], [1, 0, 1])["p_value"] == 1.0
    from scipy import stats as scipy_stats  # installed with scikit-learn

    only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
    expected = scipy_stats.binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue
    assert mcnemar_exact(a, b)["p_value"] == pytest.approx(expected, rel=1e-9)


def test_mcnemar_refuses_unpaired_outcomes():
    with pytest.raises(ValueError):
        mcnemar_exact([1, 0, 1], [1, 0])


def test_holm_multiplies_the_ith_smallest_by_m_minus_i_and_keeps_the_order_monotone():
    # worked by hand: sorted 0.01, 0.02, 0.03, 0.5 -> 4 x 0.01, 3 x 0.02, max(0.06, 2 x 0.03), max(0.06, 1 x 0.5)
    adjusted = holm_adjust([0.03, 0.5, 0.01, 0.02])
    assert adjusted == pytest.approx([0.06, 0.5, 0.04, 0.06])
    assert holm_adjust([0.04]) == [0.04]  # one test: nothing to adjust
    assert holm_adjust([0.4, 0.3, 0.2]) == pytest.approx([0.6, 0.6, 0.6])  # capped by monotonicity, then at one
    assert holm_adjust([0.9, 0.8]) == [1.0, 1.0]
    assert holm_adjust([]) == []
