"""A transfer set for distillation: more inputs than the labelled ones, for the teacher to label (TinyBERT-style
augmentation, Jiao et al. 2020). A student that learns from the teacher's soft labels can use them; a no-KD twin,
with no labels for them, cannot, which is the point.

Three generators, each deterministic given its seed:

- :func:`neighbour_replacement`: content words swapped, with probability ``rate``, for one of their nearest
  neighbours in a word-embedding space (the offline MiniLM's input embeddings: :func:`minilm_word_neighbours`);
- :func:`typo_variants`: character typos, as hurried typing makes them (``suite.eval.perturb``'s ``char_typos``);
- :func:`repaired_pairs`: a pair's second text swapped for that of a pair from another group (for answer scoring:
  an answer to another question, usually wrong here), so the teacher sees off-topic answers too.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from suite.config import check
from suite.eval.eraser import STOPWORDS

WORD = re.compile(r"[A-Za-z]+")
Neighbours = Callable[[list[str]], dict[str, list[str]]]  # words -> each word's nearest neighbours


@dataclass
class TransferConfig:
    """How many augmented copies of each training example the teacher labels (0 turns a generator off)."""

    neighbours: int = field(default=0, metadata={"help": "copies with words swapped for embedding neighbours"})
    typos: int = field(default=0, metadata={"help": "copies with character typos in the second text"})
    repaired: int = field(default=0, metadata={"help": "copies whose second text comes from another group"})
    rate: float = field(default=0.3, metadata={"help": "share of content words a neighbour copy replaces"})
    seed: int = field(default=0, metadata={"help": "augmentation seed"})
    equal_steps: bool = field(
        default=False,
        metadata={"help": "a student on the transfer set takes as many optimizer steps as its twin without it (the "
                  "set changes what the steps see, not how many there are)"},
    )  # fmt: skip

    def __post_init__(self) -> None:
        check(min(self.neighbours, self.typos, self.repaired) >= 0, "transfer", "copies must be >= 0")
        check(0 < self.rate <= 1, "transfer.rate", f"must be in (0, 1], got {self.rate}")

    @property
    def enabled(self) -> bool:
        return self.neighbours + self.typos + self.repaired > 0


def content_words(text: str) -> list[str]:
    return [w for w in WORD.findall(text) if len(w) > 2 and w.lower() not in STOPWORDS]


def neighbour_replacement(texts: Sequence[str], neighbours: Neighbours, rate: float, seed: int) -> list[str]:
    """Each text with about ``rate`` of its content words replaced by a random one of their neighbours (a word with
    no neighbour stays). Text i draws from ``random.Random(f"{seed}:{i}")``."""
    table = neighbours(sorted({w.lower() for t in texts for w in content_words(t)}))
    out = []
    for i, text in enumerate(texts):
        rng = random.Random(f"{seed}:{i}")

        def swap(match: re.Match, rng: random.Random = rng) -> str:
            word = match.group(0)
            options = table.get(word.lower(), [])
            if word.lower() in STOPWORDS or len(word) <= 2 or not options or rng.random() >= rate:
                return word
            return rng.choice(options)

        out.append(WORD.sub(swap, text))
    return out


def typo_variants(texts: Sequence[str], seed: int) -> list[str]:
    from suite.eval import perturb

    return perturb(list(texts), "char_typos", seed=seed)


def repaired_pairs(pairs: Sequence[tuple[str, str]], groups: Sequence[str], seed: int) -> list[tuple[str, str]]:
    """Each pair's first text with the second text of a random pair from another group (itself when every pair
    shares one group)."""
    rng = random.Random(seed)
    out = []
    for i, (text, _) in enumerate(pairs):
        others = [j for j in range(len(pairs)) if groups[j] != groups[i]]
        out.append((text, pairs[rng.choice(others)][1] if others else pairs[i][1]))
    return out


def transfer_pairs(pairs: Sequence[tuple[str, str]], groups: Sequence[str], config: TransferConfig,
                   neighbours: Neighbours | None = None) -> list[tuple[str, str]]:  # fmt: skip
    """The whole transfer set for ``pairs``: every generator's copies, in a fixed order."""
    out: list[tuple[str, str]] = []
    firsts, seconds = [p[0] for p in pairs], [p[1] for p in pairs]
    for copy in range(config.neighbours):
        if neighbours is None:
            raise ValueError("neighbour copies need a neighbours table (minilm_word_neighbours)")
        seed = config.seed * 1000 + copy
        out += list(zip(neighbour_replacement(firsts, neighbours, config.rate, seed),
                        neighbour_replacement(seconds, neighbours, config.rate, seed + 500), strict=True))  # fmt: skip
    for copy in range(config.typos):
        out += list(zip(firsts, typo_variants(seconds, config.seed * 1000 + copy), strict=True))
    for copy in range(config.repaired):
        out += repaired_pairs(pairs, groups, config.seed * 1000 + copy)
    return out


def minilm_word_neighbours(k: int = 5) -> Neighbours:
    """Nearest whole-word pieces of the offline MiniLM's input embeddings (cosine), for words that are one piece of
    its vocabulary; other words get none."""
    import torch

    from suite import hub

    tokenizer = hub.load_tokenizer("minilm-l6")
    model, _ = hub.load_minilm(num_labels=2)
    embeddings = torch.nn.functional.normalize(model.get_input_embeddings().weight.detach(), dim=-1)
    vocab = tokenizer.get_vocab()
    words = {i: w for w, i in vocab.items() if w.isalpha() and len(w) > 2 and w.lower() not in STOPWORDS}
    allowed = torch.zeros(len(embeddings), dtype=torch.bool)
    allowed[list(words)] = True

    def lookup(query: list[str]) -> dict[str, list[str]]:
        known = [w for w in query if w in vocab]
        if not known:
            return {}
        ids = torch.tensor([vocab[w] for w in known])
        scores = (embeddings[ids] @ embeddings.T).masked_fill(~allowed, -2.0)
        scores[torch.arange(len(ids)), ids] = -2.0  # never the word itself
        top = scores.topk(k, dim=-1).indices
        return {w: [words[int(j)] for j in row] for w, row in zip(known, top, strict=True)}

    return lookup
