"""Generative distillation for encoder-decoder students (source text -> target text), on the one training loop.

The stages, each usable alone:

1. :func:`encode_seq2seq` tokenises (source, target) pairs; :func:`collate_seq2seq` pads them into the batches the
   :class:`~suite.distiller.Distiller` and HF seq2seq models take (``labels`` padded with -100).
2. Targets the student learns from:
   - word-level KD: the teacher's next-token distribution at every target position, live (a teacher module in the
     Distiller) or from the teacher-output store: its logits over the student's vocabulary
     (:func:`stored_teacher_student_logits`) or its top-k (:func:`stored_teacher_topk`);
   - sequence-level KD (Kim & Rush 2016): the teacher's own beam-search outputs replace the references
     (:func:`teacher_sequences`, stored once);
   - on-policy / mixed KD (GKD, Agarwal et al. 2024): :class:`OnPolicyMix` replaces a fraction ``lambda`` of each
     batch's targets with sequences the student samples itself, which the live teacher then scores token by token.
3. :func:`train_generator` trains with named, weighted terms: ``task`` (CE on the targets, :class:`SequenceCE`) and
   ``kd`` (:class:`~suite.losses.divergence.TokenKD`: forward / reverse KL, JSD, skew KL, TVD, BiLD);
   early stopping and best-weights restore watch a generative dev metric (:func:`dev_generation_metric`).
4. :func:`generate` decodes with any of them (greedy or beam).

Token-level terms compare distributions id by id: teacher and student share one vocabulary (checked up front by
:func:`suite.students.generative.check_same_vocabulary`), or the student's is a pruned copy of the teacher's and a
:class:`VocabularyMap` translates between them.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from suite.distiller import Distiller
from suite.losses.divergence import TokenKD, TokenKDConfig
from suite.losses.term import LossTerm
from suite.trainer import Trainer, TrainerConfig

logger = logging.getLogger(__name__)
IGNORE = -100


@dataclass(frozen=True)
class TextPair:
    source: str
    target: str


def encode_seq2seq(tokenizer: Any, pairs: Sequence[TextPair], max_source: int, max_target: int) -> list[dict]:
    """Unpadded items ``{input_ids, attention_mask, labels}``; a warning counts the sources and targets cut."""
    sources = tokenizer([p.source for p in pairs], truncation=True, max_length=max_source)
    targets = tokenizer([p.target for p in pairs], truncation=True, max_length=max_target)
    for what, encoded, limit in (("sources", sources, max_source), ("targets", targets, max_target)):
        cut = sum(len(ids) >= limit for ids in encoded["input_ids"])
        if cut:
            logger.warning("%d of %d %s reach max length %d and may be truncated", cut, len(pairs), what, limit)
    # The decoder's start token is prepended by the model (shift right), so targets drop the tokenizer's [CLS].
    start = tokenizer.cls_token_id
    columns = zip(sources["input_ids"], sources["attention_mask"], targets["input_ids"], strict=True)
    return [
        {"input_ids": ids, "attention_mask": mask, "labels": target[1:] if target and target[0] == start else target}
        for ids, mask, target in columns
    ]


def encode_causal(
    tokenizer: Any, pairs: Sequence[TextPair], max_source: int, max_target: int, end_id: int
) -> list[dict]:
    """Decoder-only items: ``input_ids`` = the tokenized source (with the tokenizer's special tokens) followed by the
    target and ``end_id``; ``labels[t]`` is the token the model must predict *at* position t (the next one), -100
    over the prompt. Labels come pre-shifted, so the loss terms read them like a seq2seq model's (no causal shift)
    and stored teacher outputs line up with them."""
    sources = tokenizer([p.source for p in pairs], truncation=True, max_length=max_source)["input_ids"]
    targets = tokenizer([p.target for p in pairs], add_special_tokens=False)["input_ids"]
    items = []
    for prompt, target in zip(sources, targets, strict=True):
        answer = list(target[: max_target - 1]) + [end_id]
        ids = list(prompt) + answer[:-1]  # the last token is only ever predicted, never read
        labels = [IGNORE] * (len(prompt) - 1) + answer
        items.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    return items


def pad_rows(rows: Sequence[Sequence[Any]], value: Any, dtype: torch.dtype = torch.long) -> torch.Tensor:
    """Ragged rows right-padded with ``value`` into one ``(N, max(1, longest))`` tensor."""
    width = max(1, max(len(row) for row in rows))
    return torch.tensor([list(row) + [value] * (width - len(row)) for row in rows], dtype=dtype)


def collate_seq2seq(pad_id: int) -> Callable[[list[dict]], dict[str, Any]]:
    """Items -> ``{"inputs": {input_ids, attention_mask, labels}, "labels": labels}``, plus ``"teacher"`` when the
    items carry stored teacher outputs (top-k, or logits over the student's vocabulary)."""

    def collate(items: list[dict]) -> dict[str, Any]:
        inputs = {
            "input_ids": pad_rows([i["input_ids"] for i in items], pad_id),
            "attention_mask": pad_rows([i["attention_mask"] for i in items], 0),
            "labels": pad_rows([i["labels"] for i in items], IGNORE),
        }
        batch: dict[str, Any] = {"inputs": inputs, "labels": inputs["labels"]}
        if "topk_ids" in items[0]:
            width, k = inputs["labels"].shape[1], items[0]["topk_ids"].shape[-1]
            ids = torch.zeros(len(items), width, k, dtype=torch.long)
            logprobs = torch.full((len(items), width, k), float("-inf"))  # padded positions: no teacher mass
            for row, item in enumerate(items):
                ids[row, : len(item["topk_ids"])] = item["topk_ids"]
                logprobs[row, : len(item["topk_logprobs"])] = item["topk_logprobs"]
            batch["teacher"] = {"topk_ids": ids, "topk_logprobs": logprobs}
        elif "teacher_logits" in items[0]:
            width, vocab = inputs["labels"].shape[1], items[0]["teacher_logits"].shape[-1]
            logits = torch.zeros(len(items), width, vocab)  # padded positions are masked by the labels
            for row, item in enumerate(items):
                logits[row, : len(item["teacher_logits"])] = item["teacher_logits"].float()
            batch["teacher"] = {"logits": logits}
        return batch

    return collate


class SequenceCE(LossTerm):
    """Cross-entropy of the student on the batch's target tokens (references, or the teacher's sequences for
    sequence-level KD), averaged over the non-padded positions."""

    needs_teacher = False

    def forward(self, student_out, teacher_out, batch):
        logits, labels = student_out["logits"], batch["labels"]
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE)


class VocabularyMap:
    """A teacher whose vocabulary is a superset of the student's (:func:`~suite.students.generative.prune_vocabulary`):
    ``teacher_ids[s]`` is the teacher id of student id ``s``.

    The teacher reads the batch in its own ids (:meth:`to_teacher`); its live distribution is read at the student's
    pieces and renormalised over them (:meth:`restrict`). Stored top-k ids are mapped to the student's
    (:meth:`map_topk`): there the tail, the mass outside the k ids, stays explicit."""

    def __init__(self, teacher_ids: Sequence[int]):
        self.teacher_ids = torch.tensor(list(teacher_ids), dtype=torch.long)
        self.size = len(self.teacher_ids)

    def digest(self) -> str:
        """Identifies the map in teacher-output store keys."""
        import hashlib

        return hashlib.sha256(self.teacher_ids.numpy().tobytes()).hexdigest()[:16]

    def to_teacher(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        inputs = dict(batch["inputs"])
        inputs["input_ids"] = self.teacher_ids[inputs["input_ids"]]
        labels = inputs["labels"]
        inputs["labels"] = torch.where(labels == IGNORE, IGNORE, self.teacher_ids[labels.clamp_min(0)])
        return {**batch, "inputs": inputs}

    def restrict(self, teacher_logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """The teacher's logits at the student's pieces: its distribution conditioned on what the student can say.
        (Mass on pieces the student lacks is not a tail the student could match: it has no way to put mass there,
        so counting it would add a constant to every divergence and nothing to the gradient.)"""
        return {"logits": teacher_logits[..., self.teacher_ids]}

    def map_topk(self, ids: torch.Tensor, logprobs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher top-k in teacher ids -> student ids; a piece the student lacks becomes a padded slot (its mass
        joins the tail)."""
        lookup = torch.full((int(self.teacher_ids.max()) + 1,), -1, dtype=torch.long)
        lookup[self.teacher_ids] = torch.arange(self.size)
        student = lookup[ids.clamp(max=len(lookup) - 1)].where(ids < len(lookup), -1)
        return student.clamp_min(0), logprobs.where(student >= 0, float("-inf"))


def seq2seq_forward(model: torch.nn.Module, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """A HF seq2seq model on ``batch["inputs"]``: its decoder reads the labels shifted right (the start token first,
    -100 as padding). The labels themselves are not passed, so the model computes no loss of its own."""
    inputs = dict(batch["inputs"])
    labels = inputs.pop("labels")
    hf = getattr(model, "module", model)  # a FrozenTeacher or a distributed wrapper holds the HF model
    decoder_input_ids = hf.prepare_decoder_input_ids_from_labels(labels=labels)
    return {"logits": model(**inputs, decoder_input_ids=decoder_input_ids).logits}


def causal_forward(model: torch.nn.Module, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """A HF decoder-only model on ``batch["inputs"]`` (items of :func:`encode_causal`: labels already shifted)."""
    inputs = {k: v for k, v in batch["inputs"].items() if k != "labels"}
    return {"logits": model(**inputs).logits}


def is_seq2seq(model: torch.nn.Module) -> bool:
    return bool(getattr(getattr(model, "module", model), "config", None).is_encoder_decoder)


def forward_for(model: torch.nn.Module) -> Callable[[torch.nn.Module, Mapping[str, Any]], dict[str, torch.Tensor]]:
    return seq2seq_forward if is_seq2seq(model) else causal_forward


class OnPolicyMix:
    """GKD's mixed objective: with probability ``fraction`` (lambda) a batch's targets become sequences the student
    samples from the batch's sources (temperature 1), so the teacher corrects the student on its own outputs (the
    train/inference mismatch sequence-level KD leaves). The teacher then scores those sequences live: use it with a
    teacher module in the Distiller, not with stored outputs."""

    def __init__(self, fraction: float, max_new_tokens: int, pad_id: int, seed: int = 0):
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"on-policy fraction must be in [0, 1], got {fraction}")
        self.fraction, self.max_new_tokens, self.pad_id = fraction, max_new_tokens, pad_id
        self.random = random.Random(seed)
        self.sampled_batches = 0

    @torch.no_grad()
    def __call__(self, student: torch.nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
        if self.fraction == 0.0 or self.random.random() >= self.fraction:
            return batch
        inputs = batch["inputs"]
        was_training = student.training
        student.eval()
        sampled = student.generate(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], do_sample=True, top_k=0,
            max_new_tokens=self.max_new_tokens, pad_token_id=self.pad_id,
        )[:, 1:]  # fmt: skip  # drop the decoder start token: the model prepends it again
        student.train(was_training)
        labels = sampled.masked_fill(sampled == self.pad_id, IGNORE)
        self.sampled_batches += 1
        return {**batch, "inputs": {**inputs, "labels": labels}, "labels": labels}


class MixingDistiller(Distiller):
    """A :class:`Distiller` whose batches may be rewritten before both models see them (:class:`OnPolicyMix`)."""

    def __init__(self, *args: Any, batch_transform: Callable[[torch.nn.Module, dict], dict] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_transform = batch_transform

    def forward(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        if self.training and self.batch_transform is not None:
            batch = self.batch_transform(self.student, dict(batch))
        return super().forward(batch)


def teacher_forward(
    vocab: VocabularyMap | None, forward: Callable[[torch.nn.Module, Mapping[str, Any]], dict] = seq2seq_forward
) -> Callable[[torch.nn.Module, Mapping[str, Any]], dict]:
    """How the Distiller asks a live teacher: on the batch itself, or through ``vocab`` (the teacher reads its own
    ids and answers over the student's pieces)."""
    if vocab is None:
        return forward
    return lambda teacher, batch: vocab.restrict(forward(teacher, vocab.to_teacher(batch))["logits"])


def generation_terms(weights: Mapping[str, float], kd: TokenKDConfig | None = None) -> dict[str, LossTerm]:
    """``task`` -> :class:`SequenceCE`, ``kd`` -> :class:`TokenKD`; unknown names are refused."""
    known = {"task": SequenceCE, "kd": lambda: TokenKD(kd)}
    unknown = sorted(set(weights) - set(known))
    if unknown:
        raise ValueError(f"unknown generation terms {unknown}; choose from {sorted(known)}")
    return {name: known[name]() for name in weights}


def train_generator(
    student: torch.nn.Module,
    train: list[dict],
    config: TrainerConfig,
    *,
    pad_id: int,
    terms: Mapping[str, float],
    kd: TokenKDConfig | None = None,
    teacher: torch.nn.Module | None = None,
    on_policy: float = 0.0,
    max_new_tokens: int = 64,
    evaluate: Callable[[Distiller], dict[str, float]] | None = None,
    resume: bool = False,
    vocab: VocabularyMap | None = None,
) -> torch.nn.Module:
    """Train ``student`` on seq2seq items with the weighted ``terms``. ``vocab`` maps a live teacher with a larger
    vocabulary onto the student's (a pruned copy of the teacher's). A ``kd`` term learns from the live
    ``teacher`` or, without one, from top-k stored in the items (:func:`attach_teacher_topk`); ``on_policy`` > 0
    needs the live teacher."""
    if on_policy and teacher is None:
        raise ValueError("on-policy KD needs a live teacher to score the student's own samples")
    if terms.get("kd") and teacher is None and not {"topk_ids", "teacher_logits"} & set(train[0]):
        raise ValueError(
            "a kd term needs a live teacher or items with stored teacher outputs (attach_teacher_topk, "
            "attach_teacher_logits)"
        )
    forward = forward_for(student)
    if on_policy and forward is not seq2seq_forward:
        raise ValueError(
            "on-policy KD samples from encoder-decoder students only; a decoder-only one trains off-policy"
        )
    mix = OnPolicyMix(on_policy, max_new_tokens, pad_id, seed=config.seed) if on_policy else None
    distiller = MixingDistiller(
        student, generation_terms(terms, kd), dict(terms), teacher=teacher, student_forward=forward,
        teacher_forward=teacher_forward(vocab, forward), batch_transform=mix,
    )  # fmt: skip
    Trainer(distiller, config, train, collate_seq2seq(pad_id), evaluate=evaluate).fit(resume)
    return student


@torch.no_grad()
def teacher_topk(
    teacher: torch.nn.Module, items: list[dict], pad_id: int, k: int, batch_size: int = 16,
    vocab: VocabularyMap | None = None,
) -> list:  # fmt: skip
    """Teacher-forced top-k of the teacher's next-token distribution at every target position of each item:
    ``(ids (T, k), logprobs (T, k))`` with log-probs under the full distribution (the tail is kept implicitly).
    With ``vocab`` the teacher reads its own ids and the ids come back in the student's (pieces it lacks: padded)."""
    teacher.eval()
    collate, out = collate_seq2seq(pad_id), []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        batch = collate(chunk)
        logits = forward_for(teacher)(teacher, vocab.to_teacher(batch) if vocab else batch)["logits"]
        top = logits.float().log_softmax(-1).topk(min(k, logits.shape[-1]), dim=-1)
        ids, logprobs = vocab.map_topk(top.indices, top.values) if vocab else (top.indices, top.values)
        for row, item in enumerate(chunk):
            length = len(item["labels"])
            out.append((ids[row, :length].clone(), logprobs[row, :length].clone()))
    return out


def attach_teacher_topk(items: list[dict], topk: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> list[dict]:
    return [{**item, "topk_ids": ids, "topk_logprobs": lp} for item, (ids, lp) in zip(items, topk, strict=True)]


def attach_teacher_logits(items: list[dict], logits: Sequence[torch.Tensor]) -> list[dict]:
    return [{**item, "teacher_logits": row} for item, row in zip(items, logits, strict=True)]


@torch.no_grad()
def teacher_student_logits(
    teacher: torch.nn.Module, items: list[dict], pad_id: int, vocab: VocabularyMap, batch_size: int = 16
) -> list[torch.Tensor]:
    """Teacher-forced logits of the teacher over the student's whole (pruned) vocabulary at every target position,
    ``(T, V_student)`` float16 per item: the full distribution word-level KD needs, small enough to store once
    (a student vocabulary of a few thousand pieces), so off-policy students train without the teacher in memory."""
    teacher.eval()
    collate, out = collate_seq2seq(pad_id), []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        batch = collate(chunk)
        logits = teacher_forward(vocab, forward_for(teacher))(teacher, batch)["logits"]
        out += [logits[row, : len(item["labels"])].half().clone() for row, item in enumerate(chunk)]
    return out


def _through_store(
    teacher_id: str, settings: dict[str, Any], answer: Callable[[list[dict]], list[Any]], items: list[dict],
    store_dir: str | Path,
) -> list[Any]:  # fmt: skip
    """Teacher-forced scoring through the teacher-output store: each item is keyed by ``teacher_id``, its token ids
    and ``settings``, so a rerun (or a resumed run) asks ``answer`` only for what is missing."""
    from suite.teachers import TeacherOutputStore

    class Scorer:  # the store's Teacher protocol
        def __init__(self) -> None:
            self.teacher_id = teacher_id

        def settings(self) -> dict[str, Any]:
            return settings

        def answer(self, inputs: list[dict]) -> list[Any]:
            return answer(inputs)

    keyed = [{k: item[k] for k in ("input_ids", "attention_mask", "labels")} for item in items]
    return TeacherOutputStore(Path(store_dir)).run(Scorer(), keyed, batch_size=16)


def stored_teacher_student_logits(
    teacher: torch.nn.Module, teacher_id: str, items: list[dict], pad_id: int, vocab: VocabularyMap,
    store_dir: str | Path,
) -> list[torch.Tensor]:  # fmt: skip
    """:func:`teacher_student_logits` through the teacher-output store (asked once; a rerun reads the store)."""
    from suite.teachers.base import TeacherOutput

    def answer(inputs: list[dict]) -> list[TeacherOutput]:
        rows = teacher_student_logits(teacher, inputs, pad_id, vocab, batch_size=len(inputs))
        return [TeacherOutput(logits=row) for row in rows]

    settings = {"scoring": "teacher-forced", "student_vocabulary": vocab.digest(), "dtype": "float16"}
    return [o.logits for o in _through_store(teacher_id, settings, answer, items, store_dir)]


def stored_teacher_topk(
    teacher: torch.nn.Module, teacher_id: str, items: list[dict], pad_id: int, k: int, store_dir: str | Path,
    vocab: VocabularyMap | None = None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:  # fmt: skip
    """:func:`teacher_topk` through the teacher-output store (asked once; a rerun reads the store)."""
    from suite.teachers.base import TeacherOutput

    def answer(inputs: list[dict]) -> list[TeacherOutput]:
        scored = teacher_topk(teacher, inputs, pad_id, k, batch_size=len(inputs), vocab=vocab)
        # int32 ids and float16 log-probs: 6 bytes an entry, like the full store's float16 logits
        return [TeacherOutput(topk_ids=ids.int(), topk_logprobs=lp.half()) for ids, lp in scored]

    settings = {"scoring": "teacher-forced", "top_k": k, "student_vocabulary": vocab.digest() if vocab else None,
                "dtype": "int32/float16"}  # fmt: skip
    outputs = _through_store(teacher_id, settings, answer, items, store_dir)
    return [(o.topk_ids.long(), o.topk_logprobs.float()) for o in outputs]


@torch.no_grad()
def generate(
    model: torch.nn.Module, tokenizer: Any, sources: Sequence[str], max_source: int, max_new_tokens: int,
    num_beams: int = 1, batch_size: int = 16,
) -> list[str]:  # fmt: skip
    """Decoded outputs (greedy, or beam search with ``num_beams``), special tokens removed."""
    model.eval()
    texts: list[str] = []
    decoder_only = not is_seq2seq(model)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left" if decoder_only else side  # a decoder-only prompt must end where generation starts
    try:
        for start in range(0, len(sources), batch_size):
            batch = tokenizer(list(sources[start : start + batch_size]), truncation=True, max_length=max_source,
                              padding=True, return_tensors="pt")  # fmt: skip
            batch.pop("token_type_ids", None)
            out = model.generate(**batch, max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False)
            out = out[:, batch["input_ids"].shape[1] :] if decoder_only else out
            texts += tokenizer.batch_decode(out, skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return texts


def encode_for(model: torch.nn.Module, tokenizer: Any, pairs: Sequence[TextPair], max_source: int,
               max_target: int) -> list[dict]:  # fmt: skip
    """:func:`encode_seq2seq` or :func:`encode_causal`, whichever ``model`` reads."""
    if is_seq2seq(model):
        return encode_seq2seq(tokenizer, pairs, max_source, max_target)
    end_id = getattr(model, "module", model).generation_config.eos_token_id
    return encode_causal(tokenizer, pairs, max_source, max_target, end_id)


@torch.no_grad()
def reference_perplexity(
    model: torch.nn.Module, tokenizer: Any, pairs: Sequence[TextPair], max_source: int, max_target: int,
    batch_size: int = 32,
) -> float:  # fmt: skip
    """Corpus perplexity of the references under ``model`` (teacher-forced, every non-padded target token, the end
    token included), in the model's own tokenizer: compare models that share a tokenizer's pieces."""
    from suite.eval import perplexity
    from suite.losses.task import token_nll

    model.eval()
    items, logprobs = encode_for(model, tokenizer, pairs, max_source, max_target), []
    collate = collate_seq2seq(tokenizer.pad_token_id)
    for start in range(0, len(items), batch_size):
        batch = collate(items[start : start + batch_size])
        labels = batch["labels"]
        nll = token_nll(forward_for(model)(model, batch)["logits"], labels)
        logprobs.append(-nll[labels != IGNORE])
    return perplexity(token_logprobs=torch.cat(logprobs))


def teacher_sequences(
    teacher: torch.nn.Module, tokenizer: Any, pairs: Sequence[TextPair], max_source: int, max_new_tokens: int,
    num_beams: int = 4,
) -> list[TextPair]:  # fmt: skip
    """Sequence-level KD targets: each source paired with the teacher's beam-search output instead of its reference."""
    outputs = generate(teacher, tokenizer, [p.source for p in pairs], max_source, max_new_tokens, num_beams)
    return [TextPair(p.source, text) for p, text in zip(pairs, outputs, strict=True)]


def dev_generation_metric(
    tokenizer: Any, dev: Sequence[TextPair], max_source: int, max_new_tokens: int, metric: str = "rougeL"
) -> Callable[[Distiller], dict[str, float]] | None:
    """The evaluation callback's function: ``metric`` (a ROUGE type) of the student's greedy outputs on ``dev``,
    so early stopping and best-weights restore follow what users read, not the loss."""
    if not dev:
        return None
    from suite.eval import rouge

    def evaluate(distiller: Distiller) -> dict[str, float]:
        outputs = generate(distiller.student, tokenizer, [p.source for p in dev], max_source, max_new_tokens)
        return {metric: rouge(outputs, [p.target for p in dev], rouge_types=(metric,))[metric]}

    return evaluate
