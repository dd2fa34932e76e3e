"""Adapting a sentence encoder to a domain's texts with paired examples (e.g. BDD-X: a driving action and its
justification): in-batch contrastive training of a mean-pooled encoder, as sentence-transformers'
MultipleNegativesRankingLoss, and the retrieval check that says whether it helped.

For a batch of pairs :math:`(a_i, p_i)` with normalised embeddings, the loss is the InfoNCE
:math:`-\\frac1B\\sum_i \\log \\frac{\\exp(s\\,a_i\\cdot p_i)}{\\sum_j \\exp(s\\,a_i\\cdot p_j)}` with scale
:math:`s = 20`: every other positive in the batch is a negative.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from suite.errors import ConfigError


def mean_pooled(model: torch.nn.Module, tokenizer, texts: Sequence[str], max_length: int = 64) -> torch.Tensor:
    """L2-normalised mean-pooled last hidden states ``(N, D)`` (with gradients when the model trains)."""
    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1), dim=-1)


@torch.no_grad()
def embed(model: torch.nn.Module, tokenizer, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
    model.eval()
    return np.concatenate([mean_pooled(model, tokenizer, texts[i : i + batch_size]).numpy()
                           for i in range(0, len(texts), batch_size)])  # fmt: skip


def retrieval_at_1(model: torch.nn.Module, tokenizer, queries: Sequence[str], keys: Sequence[str]) -> float:
    """Share of queries whose nearest key (cosine) is their own (``keys[i]`` belongs to ``queries[i]``); keys that
    repeat count as found when any copy is nearest."""
    q, k = embed(model, tokenizer, queries), embed(model, tokenizer, keys)
    nearest = (q @ k.T).argmax(1)
    return float(np.mean([keys[j] == keys[i] for i, j in enumerate(nearest)]))


def adapt_encoder(model_path: str | Path, pairs: Sequence[tuple[str, str]], out_dir: str | Path, steps: int = 300,
                  batch_size: int = 32, lr: float = 2e-5, scale: float = 20.0, seed: int = 0,
                  progress: bool = True) -> Path:  # fmt: skip
    r"""Fine-tune the encoder at ``model_path`` on ``pairs`` with in-batch negatives for ``steps`` steps; save it
    (safetensors) with its tokenizer to ``out_dir``. Pairs whose texts repeat in a batch would be false negatives,
    so each batch is drawn from distinct positives."""
    from transformers import AutoModel, AutoTokenizer

    from suite.progress import progress_bar

    if len(pairs) < 2 * batch_size:
        raise ConfigError(f"adapting an encoder needs at least {2 * batch_size} pairs, got {len(pairs)}")
    torch.manual_seed(seed)
    tokenizer, model = AutoTokenizer.from_pretrained(model_path), AutoModel.from_pretrained(model_path)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    model.train()
    with progress_bar(steps, "adapt encoder", "step", progress) as bar:
        for _ in range(steps):
            anchors, positives = _distinct_batch(pairs, batch_size, rng)
            a, p = mean_pooled(model, tokenizer, anchors), mean_pooled(model, tokenizer, positives)
            loss = F.cross_entropy(scale * a @ p.T, torch.arange(len(a)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            bar.set_postfix(loss=f"{loss.item():.4f}")
            bar.update(1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def _distinct_batch(pairs: Sequence[tuple[str, str]], size: int, rng: np.random.Generator) -> tuple[list, list]:
    anchors, positives, seen = [], [], set()
    for i in rng.permutation(len(pairs)):
        anchor, positive = pairs[i]
        if positive in seen or anchor in seen:
            continue
        seen.update((anchor, positive))
        anchors.append(anchor)
        positives.append(positive)
        if len(anchors) == size:
            break
    if len(anchors) < 2:
        raise ConfigError("adapting an encoder needs pairs with at least two distinct positives")
    return anchors, positives


def steps_for(pairs: int, batch_size: int, epochs: float) -> int:
    return max(1, math.ceil(epochs * pairs / batch_size))
