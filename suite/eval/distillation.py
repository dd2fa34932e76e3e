r"""How much of the teacher the student took on (survey section 6.2, "Quantifying Distillation Level").

Output agreement: KL and Jensen-Shannon divergence between teacher and student distributions. Representation
agreement: linear CKA (Kornblith et al. 2019) and row-wise cosine similarity of hidden states. Inputs may be lists,
numpy arrays or torch tensors; computation is in float64 numpy and results are python floats.

Distributions have the class/vocabulary axis last: ``(B, V)`` or ``(B, T, V)``; divergences are averaged over every
leading position (per example, or per token). Natural logarithms throughout.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import log_softmax

from suite.eval._arrays import as_numpy


def _log_probs(x: Any, from_logits: bool) -> np.ndarray:
    a = as_numpy(x)
    if from_logits:
        return log_softmax(a, axis=-1)
    with np.errstate(divide="ignore"):  # a zero probability is log 0 = -inf, handled by the callers
        return np.log(a)


def _kl_rows(log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    """KL(p || q) over the last axis; terms with p = 0 are 0 (not 0 * inf)."""
    p = np.exp(log_p)
    with np.errstate(invalid="ignore"):
        terms = np.where(p > 0, p * (log_p - log_q), 0.0)
    return terms.sum(axis=-1)


def _pair(teacher: Any, student: Any, from_logits: bool) -> tuple[np.ndarray, np.ndarray]:
    log_t, log_s = _log_probs(teacher, from_logits), _log_probs(student, from_logits)
    if log_t.shape != log_s.shape:
        raise ValueError(f"teacher has shape {log_t.shape}, student {log_s.shape}")
    return log_t, log_s


def kl_divergence(teacher: Any, student: Any, from_logits: bool = True) -> float:
    r"""Mean :math:`\mathrm{KL}(p_T \,\|\, p_S) = \sum_v p_T(v) \log \frac{p_T(v)}{p_S(v)}` over positions.

    The direction of the forward-KL distillation loss (Hinton et al. 2015): how much of the teacher's mass the
    student misses. ``inf`` where the student gives zero probability to a token the teacher allows.
    """
    log_t, log_s = _pair(teacher, student, from_logits)
    return float(_kl_rows(log_t, log_s).mean())


def js_divergence(teacher: Any, student: Any, from_logits: bool = True) -> float:
    r"""Mean Jensen-Shannon divergence over positions:

    .. math:: \mathrm{JS}(p_T, p_S) = \tfrac12 \mathrm{KL}(p_T \,\|\, m) + \tfrac12 \mathrm{KL}(p_S \,\|\, m),
              \quad m = \tfrac12 (p_T + p_S)

    Symmetric, finite, and in :math:`[0, \log 2]`.
    """
    log_t, log_s = _pair(teacher, student, from_logits)
    log_m = np.logaddexp(log_t, log_s) - np.log(2.0)
    return float((0.5 * _kl_rows(log_t, log_m) + 0.5 * _kl_rows(log_s, log_m)).mean())


def _check_representations(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = as_numpy(x), as_numpy(y)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"representations must be (N, D) matrices, got {a.shape} and {b.shape}")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"representations of different examples: {a.shape[0]} rows against {b.shape[0]}")
    return a, b


def linear_cka(x: Any, y: Any) -> float:
    r"""Linear centered kernel alignment (Kornblith et al. 2019, "Similarity of Neural Network Representations
    Revisited"):

    .. math:: \mathrm{CKA}(X, Y) = \frac{\|Y^\top X\|_F^2}{\|X^\top X\|_F \, \|Y^\top Y\|_F}

    with X ``(N, D1)`` and Y ``(N, D2)`` holding the same N examples in rows, each column centred. In [0, 1];
    invariant to orthogonal transforms and isotropic scaling of either side, so teacher and student widths may differ.
    Flatten token axes into N first for ``(B, T, D)`` hidden states.
    """
    a, b = _check_representations(x, y)
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    cross = np.linalg.norm(b.T @ a, "fro") ** 2
    denominator = np.linalg.norm(a.T @ a, "fro") * np.linalg.norm(b.T @ b, "fro")
    if denominator == 0:
        raise ValueError("linear_cka is undefined for a constant representation")
    return float(cross / denominator)


def representation_cosine_similarity(x: Any, y: Any, eps: float = 1e-12) -> float:
    r"""Mean row-wise cosine :math:`\frac1N\sum_i \frac{x_i \cdot y_i}{\|x_i\|\|y_i\|}` of paired representations.

    Needs equal widths: project the student first (e.g. with the Distiller's adapter) when they differ.
    """
    a, b = _check_representations(x, y)
    if a.shape != b.shape:
        raise ValueError(f"cosine similarity needs equal shapes, got {a.shape} and {b.shape}")
    norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), eps)
    return float(np.mean((a * b).sum(axis=1) / norms))
