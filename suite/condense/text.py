"""Dataset distillation for text in embedding space (survey sections 2.2 and 4.2).

Text is discrete, so gradient-based distillation cannot move words. It can move the vectors a text student reads:
here the synthetic examples are sentence embeddings (by default all-MiniLM-L6-v2's, :func:`sentence_embeddings`)
and the student is a small classifier head on that frozen encoder, the shape of an edge text classifier that runs
the encoder once and a head per task.

- :func:`distill_embeddings` with ``method="dm"``: distribution matching. The mean of each class's synthetic
  vectors under a randomly initialized MLP should equal that of its real vectors, ``sum_c ||mean phi(x_c) - mean
  phi(s_c)||^2`` (an MMD with the feature map of a random network), a fresh network every iteration.
- ``method="gm"``: gradient matching (survey Eq. 13) for a linear classifier on the vectors: per class, the
  cross-entropy gradient on the synthetic vectors should point where the gradient on real vectors points,
  ``1 - cos(g_syn, g_real)``, at classifiers taken along a training trajectory on the synthetic set.
- ``method="random"``: ``per_class`` real vectors per class, the baseline the others must beat.

The synthetic set trains a head with :func:`train_head` (soft labels if it has them); :func:`head_accuracy` scores it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from suite.condense.train import soft_cross_entropy
from suite.errors import ConfigError
from suite.progress import progress_bar

TEXT_METHODS = ("random", "dm", "gm")


@dataclass
class EmbeddingSet:
    """Vectors ``(N, D)`` with integer labels ``(N,)`` and optional target probabilities ``(N, C)``."""

    vectors: torch.Tensor
    labels: torch.Tensor
    soft_labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class TextCondenseConfig:
    iterations: int = 300
    lr: float = 0.05  # on the synthetic vectors (Adam)
    batch_real: int = 64  # real vectors per class per iteration
    hidden: int = 256  # width of the random MLPs (dm) and of the head trained on the result
    inner_steps: int = 5  # gm: classifier updates on the synthetic set between matches
    init: str = "real"  # "real": start from random real vectors of the class; "noise": from Gaussian noise
    progress: bool = True


def _as_set(vectors: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> EmbeddingSet:
    x = torch.as_tensor(np.asarray(vectors), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if x.ndim != 2 or len(x) != len(y):
        raise ConfigError(f"need vectors (N, D) and labels (N,), got {tuple(x.shape)} and {tuple(y.shape)}")
    return EmbeddingSet(x, y)


def _class_rows(data: EmbeddingSet, classes: int) -> list[torch.Tensor]:
    rows = [torch.nonzero(data.labels == c).flatten() for c in range(classes)]
    empty = [c for c, r in enumerate(rows) if len(r) == 0]
    if empty:
        raise ConfigError(f"classes {empty} have no examples; every class needs at least one to be distilled")
    return rows


def _sample(rows: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    return rows[torch.randint(len(rows), (n,), generator=generator)] if n > len(rows) else rows[
        torch.randperm(len(rows), generator=generator)[:n]]  # fmt: skip


def _initial(data: EmbeddingSet, rows: list[torch.Tensor], per_class: int, config: TextCondenseConfig,
             generator: torch.Generator) -> torch.Tensor:  # fmt: skip
    if config.init == "noise":
        dim = data.vectors.shape[1]
        scale = data.vectors.std()
        return torch.randn(len(rows) * per_class, dim, generator=generator) * scale
    if config.init != "real":
        raise ConfigError(f"init: 'real' or 'noise', got '{config.init}'")
    return torch.cat([data.vectors[_sample(r, per_class, generator)] for r in rows]).clone()


def _random_mlp(dim: int, hidden: int) -> nn.Module:
    net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
    for p in net.parameters():
        p.requires_grad_(False)  # a random feature map, never trained
    return net


def _dm_loss(data: EmbeddingSet, rows: list[torch.Tensor], syn: torch.Tensor, per_class: int,
             generator: torch.Generator, config: TextCondenseConfig) -> torch.Tensor:  # fmt: skip
    net = _random_mlp(data.vectors.shape[1], config.hidden)
    loss = syn.new_zeros(())
    for c, r in enumerate(rows):
        real = data.vectors[_sample(r, config.batch_real, generator)]
        gap = net(real).mean(0) - net(syn[c * per_class : (c + 1) * per_class]).mean(0)
        loss = loss + (gap**2).sum()
    return loss


def _gm_loss(data: EmbeddingSet, rows: list[torch.Tensor], syn: torch.Tensor, syn_labels: torch.Tensor,
             head: nn.Linear, generator: torch.Generator, config: TextCondenseConfig) -> torch.Tensor:  # fmt: skip
    loss = syn.new_zeros(())
    params = list(head.parameters())
    for c, r in enumerate(rows):
        real = data.vectors[_sample(r, config.batch_real, generator)]
        target = torch.full((len(real),), c, dtype=torch.long)
        g_real = torch.autograd.grad(F.cross_entropy(head(real), target), params)
        mask = syn_labels == c
        g_syn = torch.autograd.grad(F.cross_entropy(head(syn[mask]), syn_labels[mask]), params, create_graph=True)
        for gs, gr in zip(g_syn, g_real, strict=True):  # per output row of each parameter, as in DC
            loss = loss + (1 - F.cosine_similarity(gs.reshape(gs.shape[0], -1) if gs.ndim > 1 else gs[None],
                                                   gr.reshape(gr.shape[0], -1) if gr.ndim > 1 else gr[None],
                                                   dim=-1)).sum()  # fmt: skip
    return loss


def distill_embeddings(vectors: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, per_class: int,
                       method: str = "dm", seed: int = 0,
                       config: TextCondenseConfig | None = None) -> EmbeddingSet:  # fmt: skip
    """``per_class`` synthetic (or, for ``random``, real) vectors per class that train a head like the full set."""
    config = config or TextCondenseConfig()
    if method not in TEXT_METHODS:
        raise ConfigError(f"text distillation method must be one of {TEXT_METHODS}, got '{method}'")
    if per_class < 1:
        raise ConfigError(f"per_class must be >= 1, got {per_class}")
    data = _as_set(vectors, labels)
    classes = int(data.labels.max()) + 1
    rows = _class_rows(data, classes)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    syn_labels = torch.arange(classes).repeat_interleave(per_class)
    if method == "random":
        picked = torch.cat([_sample(r, per_class, generator) for r in rows])
        return EmbeddingSet(data.vectors[picked].clone(), data.labels[picked].clone())
    syn = _initial(data, rows, per_class, config, generator).requires_grad_(True)
    optimizer = torch.optim.Adam([syn], lr=config.lr)
    head = nn.Linear(data.vectors.shape[1], classes)
    head_optimizer = torch.optim.SGD(head.parameters(), lr=0.1)
    with progress_bar(config.iterations, f"text {method}", "iteration", config.progress) as bar:
        for it in range(config.iterations):
            if method == "dm":
                loss = _dm_loss(data, rows, syn, per_class, generator, config)
            else:
                if it % 10 == 0:
                    head.reset_parameters()  # a fresh classifier every 10 matches: many points on many trajectories
                loss = _gm_loss(data, rows, syn, syn_labels, head, generator, config)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if method == "gm":
                for _ in range(config.inner_steps):
                    head_optimizer.zero_grad()
                    F.cross_entropy(head(syn.detach()), syn_labels).backward()
                    head_optimizer.step()
            bar.update(1)
    return EmbeddingSet(syn.detach(), syn_labels)


class EmbeddingHead(nn.Module):
    """The student on frozen sentence embeddings: LayerNorm-free MLP, ``D -> hidden -> C``."""

    def __init__(self, dim: int, classes: int, hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def train_head(data: EmbeddingSet, classes: int, seed: int = 0, epochs: int = 200, lr: float = 1e-3,
               hidden: int = 256, batch_size: int = 128, weight_decay: float = 1e-4) -> EmbeddingHead:  # fmt: skip
    """Train an :class:`EmbeddingHead` on ``data``: cross-entropy on soft labels where given, else on the labels."""
    torch.manual_seed(seed)
    head = EmbeddingHead(data.vectors.shape[1], classes, hidden)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    head.train()
    for _ in range(epochs):
        for index in torch.randperm(len(data), generator=generator).split(batch_size):
            logits = head(data.vectors[index])
            if data.soft_labels is not None:
                loss = soft_cross_entropy(logits, data.soft_labels[index])
            else:
                loss = F.cross_entropy(logits, data.labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return head.eval()


@torch.no_grad()
def head_accuracy(head: nn.Module, vectors: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> float:
    data = _as_set(vectors, labels)
    return float((head(data.vectors).argmax(-1) == data.labels).float().mean())
