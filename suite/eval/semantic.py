r"""Embedding-based generation metrics (survey section 6.1): BERTScore (Eq. 25) and MAUVE (Eq. 24).

Both run offline on a local encoder given as a ``(model, tokenizer)`` pair: a Hugging Face encoder that returns
``hidden_states`` (in eval mode, so dropout is off) and its tokenizer. The default is all-MiniLM-L6-v2 from its pip
package (:func:`suite.hub.load_minilm`), loaded once per process. Nothing is downloaded: the ``bert-score`` package's
default models and MAUVE's default GPT-2 featuriser come from the hub, so this module computes the embeddings
itself and hands MAUVE precomputed features. Scores depend on the encoder: compare numbers from the same one.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from suite.errors import SuiteError
from suite.eval._arrays import as_numpy, check_same_length

if TYPE_CHECKING:
    from torch import nn

Encoder = tuple["nn.Module", Any]


@functools.cache
def default_encoder() -> Encoder:
    """all-MiniLM-L6-v2 (6 layers, 384 dims) as ``(model, tokenizer)``, in eval mode; loaded once per process."""
    from suite.hub import load_minilm

    model, tokenizer = load_minilm()
    return model.eval(), tokenizer


@torch.no_grad()
def token_embeddings(
    texts: Sequence[str], encoder: Encoder | None = None, layer: int = -1, batch_size: int = 32, max_length: int = 512
) -> list[np.ndarray]:
    """Contextual embeddings of each text's tokens, special tokens (``[CLS]``, ``[SEP]``) dropped: ``(T_i, D)`` each.

    ``layer`` indexes ``hidden_states`` (0 = embedding output, -1 = last layer).
    """
    model, tokenizer = encoder or default_encoder()
    device = next(model.parameters()).device
    out: list[np.ndarray] = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(list(texts[start : start + batch_size]), padding=True, truncation=True,
                          max_length=max_length, return_tensors="pt", return_special_tokens_mask=True)  # fmt: skip
        hidden = model(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            output_hidden_states=True,
        ).hidden_states[layer]  # (B, T, D)
        keep = batch["attention_mask"].bool() & ~batch["special_tokens_mask"].bool()
        out.extend(as_numpy(h[k.to(device)]) for h, k in zip(hidden, keep, strict=True))
    return out


def _greedy_match(candidate: np.ndarray, reference: np.ndarray) -> tuple[float, float, float]:
    if len(candidate) == 0 or len(reference) == 0:  # nothing to match (as bert-score does for empty strings)
        return 0.0, 0.0, 0.0
    c = candidate / np.linalg.norm(candidate, axis=1, keepdims=True)
    r = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    sim = c @ r.T  # (T_cand, T_ref) cosine similarities
    precision, recall = float(sim.max(axis=1).mean()), float(sim.max(axis=0).mean())
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f1


def bert_score(
    candidates: Sequence[str],
    references: Sequence[str],
    encoder: Encoder | None = None,
    layer: int = -1,
    batch_size: int = 32,
) -> dict[str, list[float]]:
    r"""BERTScore (Zhang et al. 2020, "BERTScore: Evaluating Text Generation with BERT"), survey Eq. 25.

    Greedy matching of contextual token embeddings :math:`e` under cosine similarity, per pair:

    .. math:: P = \frac{1}{|\hat x|} \sum_{\hat e \in \hat x} \max_{e \in x} \cos(\hat e, e), \quad
              R = \frac{1}{|x|} \sum_{e \in x} \max_{\hat e \in \hat x} \cos(e, \hat e), \quad
              F_1 = \frac{2PR}{P + R}

    with :math:`\hat x` the candidate's tokens and :math:`x` the reference's (special tokens excluded). Survey
    Eq. 25 is P. Every token weighs the same: the paper's optional idf weighting needs a reference corpus, and
    baseline rescaling needs per-model baseline files, so neither is applied; raw scores of a sentence encoder sit
    well above 0 even for unrelated text. Returns per-pair lists ``{"precision", "recall", "f1"}``.
    """
    check_same_length(candidates, references, "candidates", "references")
    cand = token_embeddings(candidates, encoder, layer, batch_size)
    ref = token_embeddings(references, encoder, layer, batch_size)
    scores = [_greedy_match(c, r) for c, r in zip(cand, ref, strict=True)]
    return {name: [s[k] for s in scores] for k, name in enumerate(("precision", "recall", "f1"))}


@torch.no_grad()
def text_features(
    texts: Sequence[str], encoder: Encoder | None = None, batch_size: int = 32, max_length: int = 512
) -> np.ndarray:
    """One feature vector per text, ``(N, D)``: the last layer mean-pooled over real tokens (the sentence embedding
    of sentence-transformers models such as all-MiniLM-L6-v2)."""
    model, tokenizer = encoder or default_encoder()
    device = next(model.parameters()).device
    features = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(list(texts[start : start + batch_size]), padding=True, truncation=True,
                          max_length=max_length, return_tensors="pt").to(device)  # fmt: skip
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        features.append(as_numpy((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)))
    return np.concatenate(features)


def mauve_from_features(
    p_features: Any,
    q_features: Any,
    num_buckets: int | str = "auto",
    kmeans_num_redo: int = 5,
    kmeans_max_iter: int = 500,
    kmeans_explained_var: float = 0.9,
    scaling_factor: float = 5.0,
    seed: int = 25,
) -> float:
    r"""MAUVE (Pillutla et al. 2021) of two feature sets ``(N_p, D)`` and ``(N_q, D)`` via the ``mauve-text``
    package (``mauve.compute_mauve``; needs ``faiss-cpu`` for k-means).

    Both sets are L2-normalised, reduced by PCA to ``kmeans_explained_var`` of the variance, and quantised by k-means
    into ``num_buckets`` clusters (``"auto"``: max(2, round(min(N_p, N_q) / 10))), giving histograms P and Q. With
    :math:`R_\lambda = \lambda P + (1-\lambda) Q`, MAUVE is the area under the divergence curve

    .. math:: \mathcal{C}(P, Q) = \big\{\big(e^{-c\,\mathrm{KL}(Q \| R_\lambda)},\,
              e^{-c\,\mathrm{KL}(P \| R_\lambda)}\big) : \lambda \in (0, 1)\big\}

    with scaling :math:`c` = ``scaling_factor``. 1 for identical histograms, towards 0 as they separate. The survey's
    Eq. 24, :math:`\exp(-D_{JS})`, is a summary of the same idea, not what the package computes. The defaults are
    the package's (paper) settings; a few hundred features take well under a second. Use at least a few hundred
    samples per side for stable numbers: with few points the clustering, and so the score, is noisy.
    """
    try:
        from mauve import compute_mauve
    except ImportError:
        # mauve-text is GPL-3.0 and therefore an opt-in extra.
        raise SuiteError("MAUVE needs the optional extra: pip install 'distill-suite[mauve]'") from None

    p, q = as_numpy(p_features), as_numpy(q_features)
    if p.ndim != 2 or q.ndim != 2 or p.shape[1] != q.shape[1]:
        raise ValueError(f"features must be (N, D) matrices of equal D, got {p.shape} and {q.shape}")
    out = compute_mauve(
        p_features=p,
        q_features=q,
        num_buckets=num_buckets,
        kmeans_num_redo=kmeans_num_redo,
        kmeans_max_iter=kmeans_max_iter,
        kmeans_explained_var=kmeans_explained_var,
        mauve_scaling_factor=scaling_factor,
        seed=seed,
        verbose=False,
    )
    return _area_under_frontier(out.divergence_curve)


def _area_under_frontier(curve: np.ndarray) -> float:
    """MAUVE from the package's divergence curve ``(m, 2)``, as ``compute_mauve`` does, but with ties broken.

    mauve-text sorts the points with a plain ``argsort``; when P = Q every interior point is (1, 1) and ties with the
    end point (1, 0), so an unlucky order gives 0.75 instead of 1. Sorting ties by the other coordinate, descending,
    traces the upper frontier and leaves untied curves unchanged.
    """
    from sklearn.metrics import auc

    x, y = curve[:, 0], curve[:, 1]
    by_x, by_y = np.lexsort((-y, x)), np.lexsort((-x, y))
    return float(0.5 * (auc(x[by_x], y[by_x]) + auc(y[by_y], x[by_y])))


def mauve(p_texts: Sequence[str], q_texts: Sequence[str], encoder: Encoder | None = None, **kwargs: Any) -> float:
    """MAUVE between human (or teacher) texts ``p_texts`` and model texts ``q_texts``, featurised by
    :func:`text_features` with the local encoder; ``kwargs`` go to :func:`mauve_from_features`."""
    return mauve_from_features(text_features(p_texts, encoder), text_features(q_texts, encoder), **kwargs)
