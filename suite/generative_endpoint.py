"""A generation teacher behind an OpenAI-compatible endpoint (vLLM, TGI, Ollama) as KD targets for a local student.

An endpoint writes text; it cannot score text it did not write (no teacher forcing over the references). So its
distillation is **sequence-level** (the student trains on the teacher's greedy outputs) and, when the server returns
``top_logprobs``, **token-level on those outputs**: at each generated position the teacher's top-k alternatives
become a stored top-k whose tail (the mass outside the k) stays explicit in the divergences
(:mod:`suite.losses.divergence`).

Token-level KD needs the server's tokens in the student's vocabulary. Tokens are read as vLLM's
``return_tokens_as_token_ids`` form ``token_id:<id>`` (ids of the teacher's tokenizer) or as vocabulary pieces; with
a :class:`~suite.generative.VocabularyMap` (a student on a pruned copy of the teacher's vocabulary) the ids are then
mapped to the student's. A generated token the student's vocabulary lacks is a clear error that names the
cross-tokenizer route (sequence-level KD on the text alone, ``top_logprobs=0``); an *alternative* it lacks only moves
its mass to the tail.

Everything goes through the teacher-output store: each prompt is asked once, a rerun reads the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from suite.errors import ConfigError
from suite.generative import TextPair, VocabularyMap, encode_seq2seq

_ID_PREFIX = "token_id:"


def token_id(token: str, tokenizer: Any) -> int | None:
    """The teacher-vocabulary id of a server token (``token_id:<id>`` or a piece); None if the vocabulary lacks it."""
    if token.startswith(_ID_PREFIX):
        value = int(token[len(_ID_PREFIX) :])
        return value if 0 <= value < len(tokenizer) else None
    return tokenizer.get_vocab().get(token)


def _step_ids(steps: list[list[list[Any]]], tokenizer: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-step ``[[token, logprob], ...]`` (best first) -> ``(ids (T, k), logprobs (T, k))`` in the teacher's
    vocabulary; unknown alternatives get id -1 (dropped later: their mass joins the tail)."""
    k = max(len(step) for step in steps)
    ids, logprobs = torch.full((len(steps), k), -1), torch.full((len(steps), k), float("-inf"))
    for t, step in enumerate(steps):
        for j, (token, logprob) in enumerate(step):
            known = token_id(token, tokenizer)
            if known is not None:
                ids[t, j], logprobs[t, j] = known, float(logprob)
    return ids, logprobs


def _to_student(ids: torch.Tensor, logprobs: torch.Tensor, vocab: VocabularyMap | None):
    """Teacher ids -> student ids (a pruned vocabulary drops what the student lacks into the tail)."""
    logprobs = logprobs.where(ids >= 0, float("-inf"))
    ids = ids.clamp_min(0)
    return vocab.map_topk(ids, logprobs) if vocab is not None else (ids, logprobs)


def endpoint_items(
    backend: Any, tokenizer: Any, pairs: Sequence[TextPair], max_source: int, max_target: int, end_id: int,
    store_dir: str | Path, vocab: VocabularyMap | None = None, student_tokenizer: Any = None, progress: bool = True,
) -> list[dict]:  # fmt: skip
    """Training items from the endpoint's answers to each pair's source.

    ``backend`` is an :class:`~suite.teachers.openai_compat.OpenAICompatibleTeacher` with ``temperature=0`` (its
    generated token is then its first alternative). ``tokenizer`` is the served model's tokenizer; ``vocab`` maps it
    to ``student_tokenizer``'s pruned vocabulary (None: the student uses ``tokenizer`` itself). Without
    ``top_logprobs`` the items are sequence-level targets: the teacher's text in the student's tokenizer. With them,
    the labels are the generated tokens (plus the end token when the server stopped by itself) and ``topk_ids`` /
    ``topk_logprobs`` hold the teacher's alternatives at each label (the end position: the end token, log-prob 0).
    """
    from suite.teachers import TeacherOutputStore

    if backend.temperature != 0:
        raise ConfigError(f"endpoint teachers must decode greedily (temperature 0), not {backend.temperature}")
    student_tokenizer = student_tokenizer or tokenizer
    outputs = TeacherOutputStore(Path(store_dir)).run(backend, [p.source for p in pairs], progress=progress)
    texts = [TextPair(p.source, o.text or "") for p, o in zip(pairs, outputs, strict=True)]
    items = encode_seq2seq(student_tokenizer, texts, max_source, max_target)
    if not backend.top_logprobs:
        return items  # sequence-level KD: the teacher's text is the target
    for index, (item, output) in enumerate(zip(items, outputs, strict=True)):
        steps = (output.meta.get("top_logprobs") or [])[: max_target - 1]
        if not steps:
            raise ConfigError(f"the endpoint returned no logprobs for prompt {index}: does it support top_logprobs?")
        ids, logprobs = _to_student(*_step_ids(steps, tokenizer), vocab)
        chosen = ids[:, 0].where(logprobs[:, 0] > float("-inf"), -1)
        if (chosen < 0).any():
            step = int((chosen < 0).nonzero()[0, 0])
            raise ConfigError(
                f"prompt {index}: generated token {step} ({steps[step][0][0]!r}) is not in the student's vocabulary, "
                "so token-level KD cannot compare the two distributions. Use sequence-level KD on the text "
                "(top_logprobs=0), or a student on the served model's tokenizer"
            )
        if output.meta.get("finish_reason") == "stop" and len(steps) < max_target:
            end = torch.full((1, ids.shape[1]), 0), torch.full((1, ids.shape[1]), float("-inf"))
            end[0][0, 0], end[1][0, 0] = end_id, 0.0  # the server stopped: its end token, taken as certain
            ids, logprobs = torch.cat([ids, end[0]]), torch.cat([logprobs, end[1]])
        item.update(labels=ids[:, 0].tolist(), topk_ids=ids.long(), topk_logprobs=logprobs.float())
    return items
