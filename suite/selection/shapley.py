"""Data valuation by Shapley value (survey section 5): how much each training example (or group of correlated
examples) adds to a model's validation accuracy, averaged over the orders in which the data could arrive.

- :func:`knn_shapley`: exact Shapley values of a K-nearest-neighbour classifier's validation utility, in
  ``O(N log N)`` per validation point by Jia et al. 2019's recursion over the distance ranking.
- :func:`tmc_shapley`: truncated Monte Carlo (Ghorbani & Zou 2019): random permutations, marginal gains of each
  example as it joins; a permutation stops once the score is within ``tolerance`` of the full set's (the rest add
  ~nothing), which is what makes it affordable.
- ``groups=`` in :func:`tmc_shapley`: grouped Shapley: whole groups (near-duplicates, one patient's notes) join
  together, so correlated points share their value instead of each looking redundant next to its twin.

:func:`select_by_value` keeps the most valuable share and records each removal's value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from suite.selection.record import Selection, texts_checksum


def knn_shapley(x: np.ndarray, y: Sequence[int], val_x: np.ndarray, val_y: Sequence[int], k: int = 5) -> np.ndarray:
    """Exact KNN-Shapley values ``(N,)`` (Euclidean distance), averaged over the validation points."""
    x, val_x, y, val_y = np.asarray(x, float), np.asarray(val_x, float), np.asarray(y), np.asarray(val_y)
    n = len(x)
    values = np.zeros(n)
    for point, label in zip(val_x, val_y, strict=True):
        order = np.argsort(np.linalg.norm(x - point, axis=1), kind="stable")
        match = (y[order] == label).astype(float)
        s = np.zeros(n)
        s[n - 1] = match[n - 1] / n
        for i in range(n - 2, -1, -1):  # rank i + 1 in the paper's 1-based terms
            s[i] = s[i + 1] + (match[i] - match[i + 1]) / k * min(k, i + 1) / (i + 1)
        values[order] += s
    return values / len(val_x)


Utility = Callable[[np.ndarray], float]  # indices of the training subset -> validation score


def knn_utility(x: np.ndarray, y: Sequence[int], val_x: np.ndarray, val_y: Sequence[int], k: int = 5) -> Utility:
    """Validation accuracy of a K-nearest-neighbour vote on a subset (0 for the empty set), for :func:`tmc_shapley`."""
    x, y, val_y = np.asarray(x, float), np.asarray(y), np.asarray(val_y)
    distances = np.linalg.norm(np.asarray(val_x, float)[:, None, :] - x[None, :, :], axis=2)  # (V, N)

    def utility(subset: np.ndarray) -> float:
        if len(subset) == 0:
            return 0.0
        near = subset[np.argsort(distances[:, subset], axis=1, kind="stable")[:, :k]]  # (V, <=k)
        votes = y[near]
        predicted = np.array([np.bincount(row).argmax() for row in votes])
        return float((predicted == val_y).mean())

    return utility


def tmc_shapley(utility: Utility, n: int, permutations: int = 200, tolerance: float = 0.01, seed: int = 0,
                groups: Sequence[int] | None = None) -> np.ndarray:  # fmt: skip
    """Truncated Monte Carlo Shapley values ``(N,)``. With ``groups`` (a group id per example) groups join whole and
    each example gets its group's value divided by the group's size."""
    rng = np.random.default_rng(seed)
    members = _members(n, groups)
    full = utility(np.arange(n))
    values = np.zeros(len(members))
    for _ in range(permutations):
        chosen: list[int] = []
        previous = utility(np.array([], dtype=int))
        for g in rng.permutation(len(members)):
            if abs(full - previous) < tolerance:
                break  # truncation: the rest of this permutation adds ~nothing
            chosen += members[g]
            score = utility(np.array(chosen))
            values[g] += score - previous
            previous = score
    values /= permutations
    out = np.zeros(n)
    for g, indices in enumerate(members):
        out[indices] = values[g] / len(indices)
    return out


def _members(n: int, groups: Sequence[int] | None) -> list[list[int]]:
    if groups is None:
        return [[i] for i in range(n)]
    if len(groups) != n:
        raise ValueError(f"groups has {len(groups)} entries for {n} examples")
    by_group: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        by_group.setdefault(int(g), []).append(i)
    return list(by_group.values())


def select_by_value(values: np.ndarray, budget: float | int, method: str, params: dict,
                    texts: Sequence[str] | None = None) -> Selection:  # fmt: skip
    """Keep the ``budget`` (share or count) most valuable examples; each removal records its value."""
    n = len(values)
    count = round(budget * n) if isinstance(budget, float) and budget <= 1 else int(budget)
    if not 1 <= count <= n:
        raise ValueError(f"budget {budget} selects {count} of {n} examples; need 1..{n}")
    order = np.argsort(-values, kind="stable")
    kept = sorted(int(i) for i in order[:count])
    removed = {int(i): f"value {values[i]:.4f} below the kept share" for i in order[count:]}
    checksum = texts_checksum(list(texts)) if texts is not None else texts_checksum([values.tobytes().hex()])
    return Selection(method, {"budget": budget, **params}, checksum, kept, removed)
