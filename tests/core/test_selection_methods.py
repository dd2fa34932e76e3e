"""Selectors beyond MinHash: SemDeDup, k-center, herding, gradient similarity, KNN- and TMC-Shapley (checked
against brute-force Shapley on tiny sets), rule filters; every one reports what it removed and why."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from suite.selection.rules import RuleConfig, rule_filter
from suite.selection.semantic import gradient_similarity_select, herding_select, kcenter_greedy, semdedup
from suite.selection.shapley import knn_shapley, knn_utility, select_by_value, tmc_shapley


def blobs(n_per: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = np.eye(3, 8) * 4
    x = np.concatenate([c + rng.normal(size=(n_per, 8)) for c in centers])
    return x, np.repeat(np.arange(3), n_per)


def test_semdedup_removes_planted_near_copies_and_keeps_one_of_each():
    x, _ = blobs()
    rng = np.random.default_rng(1)
    copies = x[:10] + 1e-3 * rng.normal(size=(10, 8))  # ten near-identical twins
    data = np.concatenate([x, copies])
    selection = semdedup(data, threshold=0.999, clusters=6)
    removed = set(selection.removed)
    assert len(removed) == 10 and all((i in removed) != (i + 90 in removed) for i in range(10))
    assert all(selection.duplicate_of[i] in (i + 90, i - 90) for i in removed)
    assert "cosine" in next(iter(selection.removed.values())) and selection.size == 100


def test_kcenter_covers_every_cluster_with_few_points():
    x, y = blobs()
    selection = kcenter_greedy(x, 3, seed=0)
    assert len(selection.kept) == 3 and sorted(set(y[selection.kept])) == [0, 1, 2]
    assert len(selection.removed) == 87 and kcenter_greedy(x, 0.5).kept.__len__() == 45


def test_herding_keeps_class_proportions_and_tracks_the_class_mean():
    x, y = blobs()
    selection = herding_select(x, y, 0.1)
    assert sorted(np.bincount(y[selection.kept]).tolist()) == [3, 3, 3]
    rng = np.random.default_rng(0)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    herded = np.linalg.norm(unit[selection.kept][y[selection.kept] == 0].mean(0) - unit[y == 0].mean(0))
    drawn = np.mean([np.linalg.norm(unit[rng.choice(30, 3, replace=False)].mean(0) - unit[y == 0].mean(0))
                     for _ in range(50)])  # fmt: skip
    assert herded < drawn


def test_gradient_similarity_prefers_training_examples_like_the_target_set():
    x, y = blobs()
    target = x[y == 2][:5]
    selection = gradient_similarity_select(x, y, target, np.full(5, 2), budget=20)
    assert len(selection.kept) == 20 and (y[selection.kept] == 2).mean() > 0.5


def _brute_force_shapley(utility, n: int) -> np.ndarray:
    values = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            for subset in itertools.combinations(others, size):
                weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
                values[i] += weight * (utility(list(subset) + [i]) - utility(list(subset)))
    return values


def test_knn_shapley_equals_brute_force_shapley_of_the_knn_utility():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 2)), np.array([0, 1, 0, 1, 0, 1])
    val_x, val_y, k = rng.normal(size=(3, 2)), np.array([0, 1, 1]), 2

    def utility(subset):  # Jia et al.'s KNN utility: matching share of the (up to) k nearest, over k
        total = 0.0
        for point, label in zip(val_x, val_y, strict=True):
            near = sorted(subset, key=lambda j: np.linalg.norm(x[j] - point))[:k]
            total += sum(y[j] == label for j in near) / k
        return total / len(val_x)

    assert np.allclose(knn_shapley(x, y, val_x, val_y, k), _brute_force_shapley(utility, 6), atol=1e-9)


def test_tmc_shapley_approaches_exact_values_sums_to_the_full_score_and_groups_share_value():
    x, y = blobs(n_per=3, seed=2)
    val_x, val_y = blobs(n_per=5, seed=3)
    utility = knn_utility(x, y, val_x, val_y, k=1)
    exact = _brute_force_shapley(lambda s: utility(np.array(s, dtype=int)), len(x))
    estimate = tmc_shapley(utility, len(x), permutations=400, tolerance=0.0, seed=0)
    assert abs(estimate.sum() - utility(np.arange(len(x)))) < 1e-9  # efficiency: without truncation, exact
    assert np.abs(estimate - exact).max() < 0.05
    grouped = tmc_shapley(utility, len(x), permutations=50, seed=0, groups=[0, 0, 0, 1, 1, 1, 2, 2, 2])
    assert np.allclose(grouped[:3], grouped[0]) and grouped.sum() == pytest.approx(utility(np.arange(9)), abs=0.02)


def test_mislabelled_points_get_the_lowest_values_and_are_dropped_first():
    x, y = blobs()
    flipped = y.copy()
    flipped[[0, 31, 62]] = [1, 2, 0]  # three wrong labels
    val_x, val_y = blobs(n_per=10, seed=5)
    values = knn_shapley(x, flipped, val_x, val_y, k=5)
    assert set(np.argsort(values)[:3]) == {0, 31, 62}
    selection = select_by_value(values, 0.9, "knn_shapley", {"k": 5})
    assert not {0, 31, 62} & set(selection.kept) and "value" in selection.removed[0]


def test_rule_filters_name_the_rule_and_the_value():
    texts = ["ok this is a normal sentence about students", "too short", "spam spam spam " * 20,
             "12345 67890 12345 678 9012 3", "a normal answer with enough words here"]  # fmt: skip
    selection = rule_filter(texts, RuleConfig(min_words=3))
    assert selection.kept == [0, 4]
    assert selection.removed[1].startswith("2 words < min_words")
    assert "repeated word 3-grams" in selection.removed[2] and "letter ratio" in selection.removed[3]


def test_sentence_embeddings_put_paraphrases_closer_than_unrelated_texts():
    from suite.selection.semantic import sentence_embeddings

    texts = ["The heart is enlarged.", "The heart size is increased.", "Students add the two fractions."]
    e = sentence_embeddings(texts)
    assert e.shape == (3, 384) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2
    selection = semdedup(e, threshold=0.999, clusters=2, texts=texts)
    assert selection.kept == [0, 1, 2] and len(selection.source_sha256) == 64
