"""Selection in embedding space (survey sections 4-5), on sentence embeddings of the offline MiniLM or any
``(N, D)`` array a caller brings:

- :func:`semdedup`: SemDeDup (Abbas et al. 2023): k-means clusters; inside each, examples whose cosine similarity
  to another member reaches ``threshold`` are semantic duplicates, and of each such group the member *least*
  similar to the cluster centroid is kept (the most distinctive one).
- :func:`kcenter_greedy`: the coreset that covers the space: repeatedly add the example farthest from everything
  chosen so far (Sener & Savarese 2018).
- :func:`herding_select`: per class, examples whose running mean best tracks the class mean (Welling 2009).
- :func:`gradient_similarity_select`: in the spirit of LESS (Xia et al. 2024): each training example's gradient of a
  linear probe's cross-entropy, ``(p - y) x^T``, scored by cosine similarity to the mean gradient of a target set.

Each returns a :class:`~suite.selection.record.Selection` whose removals say why.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from suite.selection.record import Selection, texts_checksum


def sentence_embeddings(texts: Sequence[str], batch_size: int = 64, max_length: int = 256,
                        normalize: bool = True) -> np.ndarray:  # fmt: skip
    """Mean-pooled, L2-normalized all-MiniLM-L6-v2 embeddings (the sentence-transformers recipe), ``(N, 384)``;
    ``normalize=False`` keeps each vector's length."""
    import torch

    from suite.eval.semantic import default_encoder

    model, tokenizer = default_encoder()
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(list(texts[start : start + batch_size]), padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt")  # fmt: skip
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out.append((torch.nn.functional.normalize(pooled, dim=-1) if normalize else pooled).numpy())
    return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)


def _checksum(texts: Sequence[str] | None, embeddings: np.ndarray) -> str:
    return texts_checksum(list(texts)) if texts is not None else texts_checksum([embeddings.tobytes().hex()])


def kmeans(x: np.ndarray, clusters: int, seed: int = 0, iterations: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means (cosine) with k-means++ seeding: ``(assignment (N,), centroids (k, D))``."""
    rng = np.random.default_rng(seed)
    x = _unit(x)
    clusters = min(clusters, len(x))
    centroids = [x[rng.integers(len(x))]]
    for _ in range(clusters - 1):
        gap = 1 - np.max(x @ np.array(centroids).T, axis=1)
        weights = np.clip(gap, 0, None) ** 2
        total = weights.sum()
        centroids.append(x[rng.choice(len(x), p=weights / total)] if total > 0 else x[rng.integers(len(x))])
    centers = np.array(centroids)
    for _ in range(iterations):
        assignment = np.argmax(x @ centers.T, axis=1)
        moved = np.array([x[assignment == k].mean(0) if (assignment == k).any() else centers[k]
                          for k in range(len(centers))])  # fmt: skip
        moved = _unit(moved)
        if np.allclose(moved, centers):
            break
        centers = moved
    return np.argmax(x @ centers.T, axis=1), centers


def semdedup(embeddings: np.ndarray, threshold: float = 0.95, clusters: int = 50, seed: int = 0,
             texts: Sequence[str] | None = None) -> Selection:  # fmt: skip
    """Remove semantic duplicates (cosine >= ``threshold`` within a k-means cluster); see the module docstring."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    x = _unit(embeddings)
    assignment, centers = kmeans(x, clusters, seed)
    removed: dict[int, str] = {}
    duplicate_of: dict[int, int] = {}
    for k in range(len(centers)):
        members = np.flatnonzero(assignment == k)
        # most typical first: each one is dropped if a later (less typical) member duplicates it
        members = members[np.argsort(-(x[members] @ centers[k]), kind="stable")]
        similarity = x[members] @ x[members].T
        for i in range(len(members)):
            later = similarity[i, i + 1 :]
            if later.size and later.max() >= threshold:
                j = i + 1 + int(later.argmax())
                removed[int(members[i])] = f"cosine {later.max():.3f} to {int(members[j])} in cluster {k}"
                duplicate_of[int(members[i])] = int(members[j])
    kept = [i for i in range(len(x)) if i not in removed]
    params = {"threshold": threshold, "clusters": int(len(centers)), "seed": seed}
    return Selection("semdedup", params, _checksum(texts, x), kept, removed, duplicate_of)


def _budget_selection(method: str, n: int, chosen: list[int], params: dict, checksum: str, why: str) -> Selection:
    picked = set(chosen)
    removed = {i: why for i in range(n) if i not in picked}
    return Selection(method, params, checksum, sorted(picked), removed)


def _budget(n: int, budget: float | int) -> int:
    count = round(budget * n) if isinstance(budget, float) and budget <= 1 else int(budget)
    if not 1 <= count <= n:
        raise ValueError(f"budget {budget} selects {count} of {n} examples; need 1..{n}")
    return count


def kcenter_greedy(embeddings: np.ndarray, budget: float | int, seed: int = 0,
                   texts: Sequence[str] | None = None) -> Selection:  # fmt: skip
    """``budget`` examples (a share in (0, 1] or a count) by farthest-point traversal from a random start."""
    x = _unit(embeddings)
    count = _budget(len(x), budget)
    chosen = [int(np.random.default_rng(seed).integers(len(x)))]
    distance = 1 - x @ x[chosen[0]]
    while len(chosen) < count:
        nxt = int(np.argmax(distance))
        chosen.append(nxt)
        distance = np.minimum(distance, 1 - x @ x[nxt])
    return _budget_selection("kcenter", len(x), chosen, {"budget": budget, "seed": seed}, _checksum(texts, x),
                             "not among the k-center cover")  # fmt: skip


def herding_select(embeddings: np.ndarray, labels: Sequence[int], budget: float | int,
                   texts: Sequence[str] | None = None) -> Selection:  # fmt: skip
    """Per class (in proportion to its size), examples whose running mean best tracks the class mean."""
    x, labels = _unit(embeddings), np.asarray(labels)
    count = _budget(len(x), budget)
    chosen: list[int] = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        quota = max(1, round(count * len(members) / len(x)))
        target, total, picked = x[members].mean(0), np.zeros(x.shape[1]), []
        for k in range(min(quota, len(members))):
            gaps = np.linalg.norm(target - (total + x[members]) / (k + 1), axis=1)
            gaps[picked] = np.inf
            best = int(np.argmin(gaps))
            picked.append(best)
            total += x[members[best]]
        chosen += [int(members[p]) for p in picked]
    return _budget_selection("herding", len(x), chosen, {"budget": budget}, _checksum(texts, x),
                             "not picked by herding in its class")  # fmt: skip


def _probe_gradients(x: np.ndarray, labels: np.ndarray, classes: int, seed: int) -> np.ndarray:
    """Per-example gradients ``(p - y) x^T`` of a multinomial logistic probe fitted on ``x``, flattened."""
    from sklearn.linear_model import LogisticRegression

    probe = LogisticRegression(max_iter=500, random_state=seed).fit(x, labels)
    probabilities = np.zeros((len(x), classes))
    probabilities[:, probe.classes_] = probe.predict_proba(x)
    error = probabilities - np.eye(classes)[labels]
    return (error[:, :, None] * x[:, None, :]).reshape(len(x), -1)


def gradient_similarity_select(embeddings: np.ndarray, labels: Sequence[int], target_embeddings: np.ndarray,
                               target_labels: Sequence[int], budget: float | int, seed: int = 0,
                               texts: Sequence[str] | None = None) -> Selection:  # fmt: skip
    """The ``budget`` training examples whose probe gradient points most like the target set's mean gradient."""
    x, y = _unit(embeddings), np.asarray(labels)
    t, ty = _unit(target_embeddings), np.asarray(target_labels)
    classes = int(max(y.max(), ty.max())) + 1
    gradients = _probe_gradients(np.concatenate([x, t]), np.concatenate([y, ty]), classes, seed)
    train, target = gradients[: len(x)], gradients[len(x) :].mean(0)
    score = (train @ target) / (np.linalg.norm(train, axis=1) * np.linalg.norm(target) + 1e-12)
    count = _budget(len(x), budget)
    chosen = [int(i) for i in np.argsort(-score, kind="stable")[:count]]
    return _budget_selection("gradient_similarity", len(x), chosen, {"budget": budget, "seed": seed},
                             _checksum(texts, x), "gradient less aligned with the target set's")  # fmt: skip
