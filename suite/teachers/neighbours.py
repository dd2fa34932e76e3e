r"""A teacher with no weights: it grades a (context, answer) pair by the graded answers it has seen to that context.

Short-answer scoring is tested on *unseen answers* to questions whose other answers were graded in training; a
grader who has read those answers compares the new one with them. For a pair :math:`(c, a)` the teacher takes the
graded pairs :math:`(c, a_i, y_i)` with the same context (question and reference), other than :math:`a` itself, keeps
the ``k`` whose answers are most similar (cosine :math:`s_i` of mean-pooled all-MiniLM-L6-v2 embeddings) and votes

.. math:: p(y \mid c, a) = \frac{\sum_{i \le k} w_i\, [y_i = y] + \lambda / C}{1 + \lambda}, \qquad
          w_i = \frac{\exp(s_i / \tau)}{\sum_{j \le k} \exp(s_j / \tau)}

with :math:`\lambda` a little mass on every class (no vote is certain). A context it has no graded answer to (a new
question) gets the uniform distribution: the teacher abstains, which leaves an ensemble's average where its other
members put it. Its logits are :math:`\log p`.

The answer itself never votes, so the teacher's outputs on its own graded pairs are what it would say about them
were they new (leave-one-out); an identical answer graded twice does not vote for its copy either.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from suite.config import check
from suite.teachers.base import TeacherOutput

Embed = Callable[[Sequence[str]], np.ndarray]  # texts -> (N, D) unit vectors


def _default_embed(texts: Sequence[str]) -> np.ndarray:
    from suite.selection.semantic import sentence_embeddings

    return sentence_embeddings(texts, max_length=128)


class GradedNeighbourTeacher:
    """``answer([{"text": context, "text_pair": answer}, ...])`` -> class logits from the ``k`` most similar graded
    answers to the same context (module docstring). ``graded`` is ``(context, answer, label)`` triples."""

    def __init__(self, graded: Sequence[tuple[str, str, int]], num_labels: int, k: int = 5,
                 temperature: float = 0.05, smoothing: float = 0.1, embed: Embed | None = None):  # fmt: skip
        check(num_labels >= 2, "num_labels", "at least two classes")
        check(k >= 1, "k", "at least one neighbour")
        check(temperature > 0 and smoothing > 0, "temperature", "temperature and smoothing must be > 0")
        check(all(0 <= y < num_labels for _, _, y in graded), "graded", f"labels must be in [0, {num_labels})")
        self.graded, self.num_labels = list(graded), num_labels
        self.k, self.temperature, self.smoothing = k, temperature, smoothing
        self.embed = embed or _default_embed
        self.teacher_id = f"graded-neighbours@{_digest(self.graded)}"
        self._by_context: dict[str, list[int]] = defaultdict(list)
        for i, (context, _, _) in enumerate(self.graded):
            self._by_context[context].append(i)
        self._memory: np.ndarray | None = None  # the graded answers' embeddings, computed on first use

    def settings(self) -> dict[str, Any]:
        return {"k": self.k, "temperature": self.temperature, "smoothing": self.smoothing}

    def memory(self) -> np.ndarray:
        if self._memory is None:
            self._memory = self.embed([answer for _, answer, _ in self.graded])
        return self._memory

    def answer(self, inputs: list[Any]) -> list[TeacherOutput]:
        queries = self.embed([x["text_pair"] for x in inputs]) if inputs else np.zeros((0, 1))
        out = []
        for x, query in zip(inputs, queries, strict=True):
            probs, voters = self.vote(x["text"], x["text_pair"], query)
            logits = torch.from_numpy(np.log(probs)).float()
            out.append(TeacherOutput(label=int(probs.argmax()), logits=logits, meta={"neighbours": voters}))
        return out

    def vote(self, context: str, answer: str, query: np.ndarray) -> tuple[np.ndarray, int]:
        """(class probabilities, how many graded answers voted); no graded answer to ``context``: uniform, 0."""
        uniform = np.full(self.num_labels, 1.0 / self.num_labels)
        voters = [i for i in self._by_context.get(context, []) if self.graded[i][1] != answer]
        if not voters:
            return uniform, 0
        similarity = self.memory()[voters] @ query
        nearest = np.argsort(-similarity, kind="stable")[: self.k]
        weights = np.exp((similarity[nearest] - similarity[nearest].max()) / self.temperature)
        votes = np.zeros(self.num_labels)
        np.add.at(votes, [self.graded[voters[j]][2] for j in nearest], weights / weights.sum())
        return (votes + self.smoothing * uniform) / (1 + self.smoothing), len(nearest)


def _digest(graded: list[tuple[str, str, int]]) -> str:
    """sha256 (16 hex digits) of the graded pairs: a teacher with other graded answers is another teacher."""
    return hashlib.sha256(json.dumps(graded, ensure_ascii=False).encode()).hexdigest()[:16]
