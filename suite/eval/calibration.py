r"""Calibration and uncertainty (survey section 6.1, "Robustness and Uncertainty"; Eq. 28).

Inputs are class probabilities ``probs`` of shape ``(N, K)`` (rows sum to 1) and integer ``labels`` of shape
``(N,)``, as lists, numpy arrays or torch tensors. Confidence is the top-class probability and the prediction its
argmax (Guo et al. 2017, "On Calibration of Modern Neural Networks").
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from suite.eval._arrays import as_numpy, check_same_length


def _check_probs(probs: Any) -> np.ndarray:
    p = as_numpy(probs)
    if p.ndim != 2:
        raise ValueError(f"probs must have shape (N, K), got {p.shape}")
    if not np.isfinite(p).all():  # NaN confidences would fall in no bin and give a NaN ECE without a word
        raise ValueError(f"probs has {int((~np.isfinite(p)).sum())} non-finite values (a diverged model?)")
    return p


def calibration_bins(probs: Any, labels: Any, n_bins: int = 15) -> dict[str, np.ndarray]:
    r"""Per-bin statistics over M equal-width confidence bins :math:`B_m = (\frac{m-1}{M}, \frac{m}{M}]`.

    Returns ``{"count": (M,), "accuracy": (M,), "confidence": (M,), "edges": (M+1,)}``; accuracy and confidence of
    an empty bin are 0 (it carries no weight in the ECE). A confidence of exactly 0 falls into the first bin.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    p = _check_probs(probs)
    y = as_numpy(labels, dtype=np.int64)
    check_same_length(p, y, "probs", "labels")
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    # right-closed bins: ceil(c * M) - 1 puts c = m/M into bin m-1 (0-based), as in Guo et al.
    index = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins).astype(np.float64)
    safe = np.maximum(count, 1)
    return {
        "count": count,
        "accuracy": np.bincount(index, weights=correct, minlength=n_bins) / safe,
        "confidence": np.bincount(index, weights=confidence, minlength=n_bins) / safe,
        "edges": np.linspace(0.0, 1.0, n_bins + 1),
    }


def expected_calibration_error(probs: Any, labels: Any, n_bins: int = 15) -> float:
    r"""Expected Calibration Error, survey Eq. 28 (Guo et al. 2017; Naeini et al. 2015):

    .. math:: \mathrm{ECE} = \sum_{m=1}^{M} \frac{|B_m|}{N}\,\big|\mathrm{acc}(B_m) - \mathrm{conf}(B_m)\big|

    over M equal-width confidence bins (15 as in Guo et al.). 0 for a perfectly calibrated model; at most 1.
    """
    bins = calibration_bins(probs, labels, n_bins)
    weights = bins["count"] / bins["count"].sum()
    return float(np.sum(weights * np.abs(bins["accuracy"] - bins["confidence"])))


def reliability_diagram(probs: Any, labels: Any, n_bins: int = 15, path: str | Path = "reliability.png") -> Path:
    """Write a reliability diagram (per-bin accuracy against confidence, with the diagonal of perfect calibration
    and the ECE in the title) as a PNG and return its path. Uses matplotlib's Agg backend, so no display is needed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = calibration_bins(probs, labels, n_bins)
    ece = expected_calibration_error(probs, labels, n_bins)
    edges, filled = bins["edges"], bins["count"] > 0
    width = edges[1] - edges[0]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    try:
        ax.bar(edges[:-1][filled], bins["accuracy"][filled], width=width, align="edge", edgecolor="black",
               label="accuracy")  # fmt: skip
        gap = bins["confidence"][filled] - bins["accuracy"][filled]
        ax.bar(edges[:-1][filled], gap, bottom=bins["accuracy"][filled], width=width, align="edge", color="red",
               alpha=0.3, label="gap to confidence")  # fmt: skip
        ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=f"ECE = {ece:.4f}")
        ax.legend(loc="upper left")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def predictive_entropy(probs: Any) -> np.ndarray:
    r"""Per-example predictive entropy :math:`H(x) = -\sum_y p(y|x)\log p(y|x)` in nats, shape ``(N,)``.

    :math:`0 \log 0 = 0`; the maximum, :math:`\log K`, is reached by the uniform distribution.
    """
    p = _check_probs(probs)
    logs = np.log(np.where(p > 0, p, 1.0))  # log 1 = 0 stands in for 0 log 0
    return -(p * logs).sum(axis=1)


def selective_accuracy(probs: Any, labels: Any, coverage: float = 0.8, uncertainty: Any = None) -> float:
    """Accuracy on the ``coverage`` share of examples the model is surest of (highest top probability, or lowest
    ``uncertainty`` when given: e.g. a posterior's predictive variance); the rest would go to a person. At coverage 1
    this is plain accuracy."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    if not 0 < coverage <= 1:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    if len(probs) != len(labels) or len(probs) == 0:
        raise ValueError(f"{len(probs)} predictions for {len(labels)} labels")
    doubt = -probs.max(-1) if uncertainty is None else np.asarray(uncertainty, dtype=np.float64)
    kept = np.argsort(doubt, kind="stable")[: max(1, round(coverage * len(labels)))]
    return float((probs[kept].argmax(-1) == labels[kept]).mean())


def fit_temperature(logits: Any, labels: Any, low: float = 0.05, high: float = 20.0, steps: int = 80) -> float:
    r"""Temperature scaling (Guo et al. 2017): the :math:`T` that minimises the negative log-likelihood of held-out
    ``labels`` under :math:`\mathrm{softmax}(z / T)`, for ``logits`` ``(N, K)``.

    .. math:: T^\star = \arg\min_{T \in [\mathrm{low}, \mathrm{high}]} -\frac{1}{N} \sum_i \log
        \mathrm{softmax}(z_i / T)_{y_i}

    The NLL is convex in :math:`\beta = 1 / T` (a log-sum-exp of functions linear in :math:`\beta`, minus one), so a
    golden-section search on :math:`\beta` finds the minimum; ``T`` > 1 softens an overconfident model. Fit it on
    data the model did not train on, or it learns the model's training-set confidence back.
    """
    z = np.asarray(as_numpy(logits), dtype=np.float64)
    y = as_numpy(labels, dtype=np.int64)
    if z.ndim != 2 or len(z) == 0:
        raise ValueError(f"logits must have shape (N, K) with N >= 1, got {z.shape}")
    check_same_length(z, y, "logits", "labels")
    if not 0 < low < high:
        raise ValueError(f"need 0 < low < high, got {low}, {high}")

    def nll(beta: float) -> float:
        scaled = beta * z
        top = scaled.max(axis=1, keepdims=True)
        log_norm = top[:, 0] + np.log(np.exp(scaled - top).sum(axis=1))
        return float(np.mean(log_norm - scaled[np.arange(len(y)), y]))

    a, b = 1.0 / high, 1.0 / low
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(steps):  # each step keeps 0.618 of the bracket: 80 steps leave ~1e-16 of it
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if nll(c) < nll(d):
            b = d
        else:
            a = c
    return 1.0 / ((a + b) / 2)
