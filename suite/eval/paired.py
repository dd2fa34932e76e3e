"""Paired tests for two systems run on the same cases (the same seeded episodes, the same test items)."""

from __future__ import annotations

from fractions import Fraction
from math import comb
from typing import Any

import numpy as np

from suite.eval._arrays import check_same_length


def mcnemar_exact(failed_a: Any, failed_b: Any) -> dict[str, float]:
    r"""McNemar's exact test on paired binary outcomes (McNemar 1947): with :math:`b` cases only ``a`` failed and
    :math:`c` only ``b`` failed, under :math:`H_0` each discordant case is a fair coin, so the two-sided p-value is
    :math:`\min(1, 2 \sum_{k \le \min(b, c)} \binom{b + c}{k} 2^{-(b + c)})`. Cases both failed or both passed say
    nothing about the difference. Returns ``only_a``, ``only_b``, ``cases``, ``failure_rate_a``, ``failure_rate_b``
    and ``p_value`` (1.0 when there is no discordant case)."""
    a, b = np.asarray(failed_a, dtype=bool), np.asarray(failed_b, dtype=bool)
    check_same_length(a, b, "failed_a", "failed_b")
    only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
    n = only_a + only_b
    tail = sum(comb(n, k) for k in range(min(only_a, only_b) + 1))
    p = min(Fraction(1), 2 * Fraction(tail, 2**n)) if n else Fraction(1)
    return {"only_a": only_a, "only_b": only_b, "cases": int(len(a)), "failure_rate_a": float(a.mean()),
            "failure_rate_b": float(b.mean()), "p_value": float(p)}  # fmt: skip


def holm_adjust(p_values: list[float]) -> list[float]:
    r"""Holm's step-down adjustment (Holm 1979) of ``m`` p-values tested together, in their given order: with
    :math:`p_{(1)} \le \dots \le p_{(m)}`, :math:`\tilde p_{(i)} = \max_{j \le i} \min(1, (m - j + 1)\, p_{(j)})`.
    An adjusted p-value below :math:`\alpha` rejects with family-wise error at most :math:`\alpha`; one p-value is
    left as it is."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def add_holm(tests: list[dict[str, Any]]) -> None:
    """Give each test read together (a dict with ``p_value``) its Holm-adjusted p-value as ``p_holm``, in place."""
    for test, adjusted in zip(tests, holm_adjust([t["p_value"] for t in tests]), strict=True):
        test["p_holm"] = adjusted
