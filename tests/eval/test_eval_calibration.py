"""ECE (survey Eq. 28) on constructed cases, the reliability diagram, and predictive entropy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from suite.eval import calibration_bins, expected_calibration_error, predictive_entropy, reliability_diagram


def test_ece_is_zero_when_every_bin_is_calibrated():
    # 10 predictions at confidence 0.8 with 8 right, 5 at 0.6 with 3 right
    probs = [[0.8, 0.2]] * 10 + [[0.6, 0.4]] * 5
    labels = [0] * 8 + [1] * 2 + [0] * 3 + [1] * 2
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-12)


def test_ece_all_confident_and_wrong():
    probs = np.array([[0.9, 0.05, 0.05]] * 6)
    assert expected_calibration_error(probs, [1] * 6) == pytest.approx(0.9)
    assert expected_calibration_error(torch.tensor([[1.0, 0.0]] * 3), torch.tensor([1, 1, 1])) == pytest.approx(1.0)


def test_ece_two_bin_hand_case():
    probs = [
        [0.4, 0.3, 0.3],  # bin (0, .5]: conf .4, right
        [0.4, 0.35, 0.25],  # bin (0, .5]: conf .4, wrong
        [0.9, 0.05, 0.05],  # bin (.5, 1]: conf .9, right
        [0.7, 0.2, 0.1],  # bin (.5, 1]: conf .7, right
    ]
    labels = [0, 1, 0, 0]
    # 2/4 * |0.5 - 0.4| + 2/4 * |1.0 - 0.8| = 0.05 + 0.10
    assert expected_calibration_error(probs, labels, n_bins=2) == pytest.approx(0.15)


def test_bins_are_right_closed():
    bins = calibration_bins([[0.5, 0.5], [0.51, 0.49]], [0, 0], n_bins=2)
    np.testing.assert_array_equal(bins["count"], [1, 1])  # 0.5 belongs to (0, 0.5]
    np.testing.assert_allclose(bins["confidence"], [0.5, 0.51])


def test_probs_must_be_a_matrix():
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        expected_calibration_error([0.3, 0.7], [1, 0])


def test_reliability_diagram_writes_png(tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=40)
    path = reliability_diagram(probs, rng.integers(0, 3, size=40), n_bins=10, path=tmp_path / "plots" / "rel.png")
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


def test_entropy_uniform_is_log_k_and_one_hot_is_zero():
    entropy = predictive_entropy([[0.25] * 4, [1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
    np.testing.assert_allclose(entropy, [math.log(4), 0.0, math.log(2)], atol=1e-12)


def test_ece_refuses_non_finite_probabilities():
    """A NaN confidence falls in no bin: without the check the ECE would be NaN, or a number over part of the data."""
    with pytest.raises(ValueError, match="probs has 2 non-finite values"):
        expected_calibration_error([[0.6, 0.4], [float("nan"), float("nan")]], [0, 1])


def test_fit_temperature_recovers_the_temperature_that_made_the_labels():
    """Labels drawn from softmax(z / 2): the NLL-optimal temperature of the logits z is near 2 (overconfident z),
    and of the logits z / 2 near 1 (already calibrated)."""
    from suite.eval import fit_temperature

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(20000, 3))
    probs = torch.tensor(logits / 2).softmax(-1).numpy()
    labels = (probs.cumsum(-1) < rng.random((len(probs), 1))).sum(-1)  # one draw per row from its softmax
    assert fit_temperature(logits, labels) == pytest.approx(2.0, rel=0.05)
    assert fit_temperature(logits / 2, labels) == pytest.approx(1.0, rel=0.05)
    scaled = torch.tensor(logits / fit_temperature(logits, labels)).softmax(-1).numpy()
    assert expected_calibration_error(scaled, labels) < 0.5 * expected_calibration_error(
        torch.tensor(logits).softmax(-1).numpy(), labels
    )


def test_fit_temperature_stays_in_its_bounds_and_checks_its_input():
    from suite.eval import fit_temperature

    always_right = np.array([[5.0, -5.0]] * 10)  # the NLL keeps falling as T shrinks: the lower bound
    assert fit_temperature(always_right, [0] * 10, low=0.1) == pytest.approx(0.1, rel=1e-6)
    with pytest.raises(ValueError, match="logits must have shape"):
        fit_temperature(np.zeros(3), [0, 1, 0])
    with pytest.raises(ValueError, match="need 0 < low < high"):
        fit_temperature(always_right, [0] * 10, low=2.0, high=1.0)
