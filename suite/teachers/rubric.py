"""A generative teacher used as a classifier: prompt it with a rubric, read its label probabilities from logprobs.

An LLM behind an OpenAI-compatible server (vLLM, TGI, Ollama) is asked to answer with one label word. The top-k
logprobs of the first generated token give ``log p(label)`` for each label word found among them; those become the
classifier logits that soft-label KD (survey Eq. 1) distils, as in Latif et al. (2023) and "LLM as annotator" work.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import torch

from suite.errors import TeacherError
from suite.teachers.base import TeacherBatchError, TeacherOutput

# A label word the server did not list among its top-k gets this logprob: below anything a server reports, so it
# keeps a small probability instead of -inf (which would make the KD loss infinite).
UNLISTED_LOGPROB = -30.0


def _normalise(token: str) -> str:
    return token.strip().strip(".:,\"'").lower()


class RubricClassifierTeacher:
    """Label logits from a generative ``backend`` (e.g. :class:`~suite.teachers.OpenAICompatibleTeacher` with
    ``top_logprobs`` >= the number of labels and ``max_tokens`` >= 1).

    ``template`` is formatted with the input's fields (``{text}`` and ``{text_pair}`` for pair inputs) and must ask for
    exactly one of ``label_words`` (index i is class i). A first token matches a label word when they agree after
    stripping spaces, quotes and punctuation and lower-casing, and the word starts with it (tokenisers often split
    ``incorrect`` into ``in`` + ``correct``, so label words should differ in their first token).
    """

    def __init__(self, backend: Any, template: str, label_words: Sequence[str]):
        words = [_normalise(w) for w in label_words]
        if len(set(words)) != len(words) or not all(words):
            raise TeacherError(f"rubric teacher: label words must be distinct and non-empty, got {list(label_words)}")
        if getattr(backend, "top_logprobs", 0) < len(words):
            raise TeacherError(f"rubric teacher: the backend must return top_logprobs >= {len(words)} per token")
        self.backend, self.template, self.label_words = backend, template, words
        digest = hashlib.sha256(template.encode()).hexdigest()[:12]
        self.teacher_id = f"rubric:{backend.teacher_id}:{digest}"

    def settings(self) -> dict[str, Any]:
        return {**self.backend.settings(), "template": self.template, "label_words": self.label_words}

    def prompt(self, input: Any) -> str:
        fields = input if isinstance(input, dict) else {"text": input}
        try:
            return self.template.format(**fields)
        except KeyError as error:
            raise TeacherError(f"rubric template needs the field {error}, inputs have {sorted(fields)}") from None

    def label_logprobs(self, first_token: Sequence[Sequence[Any]]) -> list[float]:
        """(C,) server logprobs of the label words (``UNLISTED_LOGPROB`` where absent) from one token's top-k list."""
        best = [UNLISTED_LOGPROB] * len(self.label_words)
        for token, logprob in first_token:
            word = _normalise(str(token))
            for i, label in enumerate(self.label_words):
                if word and label.startswith(word) and not any(o.startswith(word) for o in self._others(i)):
                    best[i] = max(best[i], float(logprob))
        return best

    def label_logits(self, first_token: Sequence[Sequence[Any]]) -> torch.Tensor:
        """(C,) log-probabilities of the label words, renormalised over the labels, from one token's top-k list."""
        best = self.label_logprobs(first_token)
        total = math.log(sum(math.exp(lp) for lp in best))
        return torch.tensor([lp - total for lp in best], dtype=torch.float32)

    def _others(self, i: int) -> list[str]:
        return [w for j, w in enumerate(self.label_words) if j != i]

    def _convert(self, output: TeacherOutput) -> TeacherOutput:
        steps = output.meta.get("top_logprobs") or []
        if not steps:
            raise TeacherError("rubric teacher: the server returned no logprobs (does it support top_logprobs?)")
        logits = self.label_logits(steps[0])
        # Judged on the raw logprobs: after renormalisation every row has a label above the floor.
        meta = {"text": output.text, "listed": any(lp > UNLISTED_LOGPROB for lp in self.label_logprobs(steps[0]))}
        return TeacherOutput(text=output.text, label=int(logits.argmax()), logits=logits, meta=meta)

    def answer(self, inputs: list[Any]) -> list[TeacherOutput]:
        prompts = [self.prompt(x) for x in inputs]
        try:
            outputs = self.backend.answer(prompts)
        except TeacherBatchError as error:  # keep what was answered, converted, so the store can save it
            answered = {i: self._convert(o) for i, o in error.answered.items()}
            raise TeacherBatchError(answered, error.failures, error.size) from None
        return [self._convert(o) for o in outputs]
