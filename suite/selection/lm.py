"""Selection by language-model scores (survey section 5):

- :func:`perplexity_filter`: drop texts a reference LM finds too surprising (garbled, off-language) or, with
  ``keep``, keep the least surprising share.
- :func:`moore_lewis`: Moore & Lewis 2010's cross-entropy difference ``H_in(x) - H_general(x)``: texts that an
  in-domain LM likes much more than a general one are the most in-domain; keep the lowest scores.

The LM is anything with ``cross_entropy(text) -> nats per token``: :class:`NgramLM` (a word trigram model with
interpolated absolute discounting, trained in a second on reference text) or :class:`HFCausalLM` (any local Hugging
Face causal LM folder, e.g. a distilled student).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from suite.selection.record import Selection, texts_checksum

WORD = re.compile(r"\w+|[^\w\s]")


class LanguageModel(Protocol):
    def cross_entropy(self, text: str) -> float: ...


class NgramLM:
    """Word trigram LM with interpolated absolute discounting (``discount`` 0.75) down to an add-one unigram, so
    every word, seen or not, has a probability."""

    def __init__(self, texts: Sequence[str], discount: float = 0.75):
        self.discount = discount
        self.counts: list[Counter] = [Counter(), Counter(), Counter()]  # unigram, bigram, trigram counts
        self.followers: list[Counter] = [Counter(), Counter()]  # distinct words after a 1- / 2-word history
        for text in texts:
            words = ["<s>", "<s>", *self.tokens(text), "</s>"]
            for i in range(2, len(words)):
                self.counts[0][words[i]] += 1
                self.counts[1][(words[i - 1], words[i])] += 1
                self.counts[2][(words[i - 2], words[i - 1], words[i])] += 1
        self.history = [Counter(), Counter()]
        for (a, _), c in self.counts[1].items():
            self.history[0][a] += c
            self.followers[0][a] += 1
        for (a, b, _), c in self.counts[2].items():
            self.history[1][(a, b)] += c
            self.followers[1][(a, b)] += 1
        self.total, self.vocabulary = sum(self.counts[0].values()), len(self.counts[0]) + 1  # + unknown

    @staticmethod
    def tokens(text: str) -> list[str]:
        return WORD.findall(text.lower())

    def _interpolate(self, count: int, history: int, followers: int, lower: float) -> float:
        if history == 0:
            return lower
        return max(count - self.discount, 0) / history + self.discount * followers / history * lower

    def probability(self, a: str, b: str, word: str) -> float:
        unigram = (self.counts[0][word] + 1) / (self.total + self.vocabulary)
        bigram = self._interpolate(self.counts[1][(b, word)], self.history[0][b], self.followers[0][b], unigram)
        return self._interpolate(self.counts[2][(a, b, word)], self.history[1][(a, b)], self.followers[1][(a, b)],
                                 bigram)  # fmt: skip

    def cross_entropy(self, text: str) -> float:
        words = ["<s>", "<s>", *self.tokens(text), "</s>"]
        logs = [math.log(self.probability(words[i - 2], words[i - 1], words[i])) for i in range(2, len(words))]
        return -sum(logs) / len(logs)


class HFCausalLM:
    """A local Hugging Face causal LM folder as a scorer: mean token cross-entropy of the text."""

    def __init__(self, path: str, max_length: int = 512):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.max_length = max_length

    def cross_entropy(self, text: str) -> float:
        import torch

        ids = self.tokenizer(text, return_tensors="pt", truncation=True, max_length=self.max_length)["input_ids"]
        if ids.shape[1] < 2:
            return float("inf")  # nothing to predict: treated as maximally surprising
        with torch.no_grad():
            return float(self.model(input_ids=ids, labels=ids).loss)


def _keep_lowest(scores: np.ndarray, keep: float | int) -> int:
    count = round(keep * len(scores)) if isinstance(keep, float) and keep <= 1 else int(keep)
    if not 1 <= count <= len(scores):
        raise ValueError(f"keep {keep} selects {count} of {len(scores)} texts; need 1..{len(scores)}")
    return count


def perplexity_filter(texts: Sequence[str], lm: LanguageModel, max_perplexity: float | None = None,
                      keep: float | int | None = None) -> Selection:  # fmt: skip
    """Remove texts whose perplexity under ``lm`` exceeds ``max_perplexity``, or keep the ``keep`` least
    perplexing (a share or a count); exactly one of the two."""
    if (max_perplexity is None) == (keep is None):
        raise ValueError("give exactly one of max_perplexity and keep")
    perplexity = np.exp([lm.cross_entropy(t) for t in texts])
    if keep is not None:
        count = _keep_lowest(perplexity, keep)
        removed_ids = list(np.argsort(perplexity, kind="stable")[count:])
        reason = f"above the kept share's highest, {np.sort(perplexity)[count - 1]:.1f}"
    else:
        removed_ids = [i for i in range(len(texts)) if perplexity[i] > max_perplexity]
        reason = f"perplexity above {max_perplexity}"
    removed = {int(i): f"perplexity {perplexity[i]:.1f}: {reason}" for i in removed_ids}
    kept = [i for i in range(len(texts)) if i not in removed]
    params = {"max_perplexity": max_perplexity, "keep": keep, "lm": type(lm).__name__}
    return Selection("perplexity", params, texts_checksum(list(texts)), kept, removed)


def moore_lewis(texts: Sequence[str], in_domain: LanguageModel, general: LanguageModel,
                keep: float | int) -> Selection:  # fmt: skip
    """Keep the ``keep`` texts with the lowest cross-entropy difference ``H_in - H_general`` (nats per token)."""
    difference = np.array([in_domain.cross_entropy(t) - general.cross_entropy(t) for t in texts])
    count = _keep_lowest(difference, keep)
    order = np.argsort(difference, kind="stable")
    removed = {int(i): f"cross-entropy difference {difference[i]:+.3f} (in-domain minus general)"
               for i in order[count:]}  # fmt: skip
    kept = sorted(int(i) for i in order[:count])
    params = {"keep": keep, "in_domain": type(in_domain).__name__, "general": type(general).__name__}
    return Selection("moore_lewis", params, texts_checksum(list(texts)), kept, removed)
