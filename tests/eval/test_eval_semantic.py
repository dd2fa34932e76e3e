"""BERTScore (survey Eq. 25) with the real offline MiniLM, and MAUVE (Eq. 24) on small synthetic features."""

from __future__ import annotations

import numpy as np
import pytest

from suite.eval import bert_score, mauve, mauve_from_features, text_features
from suite.eval.semantic import _greedy_match, default_encoder


@pytest.fixture(scope="module")
def minilm():
    return default_encoder()  # cached: every call in this module reuses the one load


def test_greedy_matching_hand_case():
    candidate = np.array([[1.0, 0.0], [0.0, 2.0]])
    reference = np.array([[3.0, 0.0]])
    # P = (cos 0 + cos 90deg) / 2 = 1/2; R = max over candidate = 1; F1 = 2 * 1/2 * 1 / (3/2) = 2/3
    assert _greedy_match(candidate, reference) == pytest.approx((0.5, 1.0, 2 / 3))
    assert _greedy_match(candidate, reference[:0]) == (0.0, 0.0, 0.0)


def test_bert_score_identical_is_one_and_unrelated_is_lower(minilm):
    sentence = "The student model was distilled from a much larger teacher."
    scores = bert_score(  # no encoder: the cached default MiniLM
        [sentence, sentence, "Bananas are rich in potassium."],
        [sentence, "A small network learned from a big one.", "Quarterly tax filings are due in April."],
    )
    for name in ("precision", "recall", "f1"):
        assert scores[name][0] == pytest.approx(1.0, abs=1e-5)
    assert scores["f1"][2] < scores["f1"][1] < 0.99


def test_bert_score_precision_and_recall_follow_coverage(minilm):
    # every candidate token has a close match in the reference, not vice versa
    scores = bert_score(["the cat sat"], ["the cat sat on the mat by the open kitchen door"], encoder=minilm)
    assert scores["precision"][0] > scores["recall"][0]


def clusters(seed: int, centres: np.ndarray, n: int = 60) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return centres[rng.integers(0, len(centres), n)] + 0.05 * rng.normal(size=(n, centres.shape[1]))


def test_mauve_identical_features_is_one_and_separated_is_lower():
    centres = np.eye(6)
    p = clusters(0, centres[:3])
    assert mauve_from_features(p, p.copy(), num_buckets=4, kmeans_num_redo=1) == pytest.approx(1.0, abs=1e-6)
    same_source = mauve_from_features(p, clusters(1, centres[:3]), num_buckets=4, kmeans_num_redo=1)
    disjoint = mauve_from_features(p, clusters(1, centres[3:]), num_buckets=4, kmeans_num_redo=1)
    assert disjoint < 0.2 < 0.8 < same_source


def test_mauve_identical_histograms_ignore_sort_ties():
    # exactly tied divergence-curve points: mauve-text's own argsort returns 0.75 here
    features = np.array([[1.0, 0.0, 0.0]] * 30 + [[0.0, 1.0, 0.0]] * 30)
    assert mauve_from_features(features, features.copy(), num_buckets=2) == pytest.approx(1.0)


def test_mauve_on_texts_with_minilm(minilm):
    human = [f"The weather on day {i} was sunny and warm." for i in range(8)]
    model = [f"Invoice number {i} must be paid within thirty days." for i in range(8)]
    features = text_features(human[:3], encoder=minilm, batch_size=2)
    assert features.shape == (3, 384) and np.isfinite(features).all()
    assert mauve(human, human, encoder=minilm, num_buckets=2) == pytest.approx(1.0)
    assert mauve(human, model, encoder=minilm, num_buckets=2) < 0.5
