"""Rationale distillation end to end: where rationales come from, how they become training items, and the one
training call for label-only, logit-KD, step-by-step and KPOD students (:mod:`suite.losses.rationale`).

Rationale sources share one shape, :class:`Rationale` (text + the answer it states):
- gold rationales in the data (PubMedQA's long answers) via :func:`gold_rationales`;
- any teacher backend (a local generator or an OpenAI-compatible endpoint) asked with a ClinRaGen-style
  structured prompt (findings -> reasoning -> answer) through the teacher-output store, so every input is asked
  once (:func:`teacher_rationales`).
:func:`keep_consistent` drops rationales whose stated answer disagrees with the label and counts them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from suite.callbacks import Callback
from suite.distiller import Distiller, as_output_dict
from suite.eval.eraser import STOPWORDS
from suite.generative import pad_rows
from suite.losses.kd import SoftLabelKD, SoftLabelKDConfig
from suite.losses.rationale import IGNORE, RationaleCE, RationaleConfig, idf_weights, rationale_steps
from suite.losses.task import TaskLoss
from suite.trainer import Trainer, TrainerConfig


@dataclass(frozen=True)
class Rationale:
    text: str
    stated_answer: str | None  # the answer the rationale commits to (None: it states none)


@dataclass(frozen=True)
class RationaleExample:
    text: str
    label: int
    rationale: str = ""  # empty: this example trains the label path only
    text_pair: str = ""  # a second segment (a question's context), tokenized as a pair


# -- sources -----------------------------------------------------------------------------------------------------
def gold_rationales(texts: Sequence[str], labels: Sequence[str]) -> list[Rationale]:
    """Gold rationales as written in the data, stating the gold label."""
    return [Rationale(t, label) for t, label in zip(texts, labels, strict=True)]


STRUCTURED_PROMPT = (
    "Read the case below. First write 'Reasoning:' and explain, step by step and in at most {sentences} short "
    "sentences, what in the case supports the answer. Then write 'Answer:' followed by exactly one of: {choices}.\n\n"
    "Case:\n{case}"
)
_ANSWER = re.compile(r"answer\s*:\s*(.+)", re.IGNORECASE)
_REASONING = re.compile(r"reasoning\s*:\s*(.*?)(?=answer\s*:|$)", re.IGNORECASE | re.DOTALL)


def structured_prompt(case: str, choices: Sequence[str], sentences: int = 4) -> str:
    return STRUCTURED_PROMPT.format(case=case, choices=", ".join(choices), sentences=sentences)


def parse_structured(answer: str, choices: Sequence[str]) -> Rationale:
    """``Reasoning: ... Answer: <choice>`` -> the reasoning and the choice it names (None when it names none of
    ``choices``: the rationale is kept but cannot pass :func:`keep_consistent`)."""
    reasoning = _REASONING.search(answer)
    text = (reasoning.group(1) if reasoning else answer).strip()
    stated = _ANSWER.search(answer)
    named = stated.group(1).strip().strip(".").lower() if stated else ""
    match = next((c for c in choices if named.startswith(c.lower())), None)
    return Rationale(text, match)


def teacher_rationales(backend: Any, cases: Sequence[str], choices: Sequence[str], store_dir: str | Path,
                       sentences: int = 4, progress: bool = True) -> list[Rationale]:  # fmt: skip
    """Ask ``backend`` (anything with the teacher protocol that answers text) the structured prompt for every
    case, through the teacher-output store (asked once; a rerun reads the store)."""
    from suite.teachers import TeacherOutputStore

    prompts = [structured_prompt(case, choices, sentences) for case in cases]
    outputs = TeacherOutputStore(Path(store_dir)).run(backend, prompts, progress=progress)
    return [parse_structured(o.text or "", choices) for o in outputs]


def keep_consistent(examples: Sequence[RationaleExample], rationales: Sequence[Rationale],
                    label_names: Sequence[str]) -> tuple[list[RationaleExample], int]:  # fmt: skip
    """Attach each rationale to its example when the answer it states is the example's label; otherwise the
    example keeps no rationale (it still trains the label path). Returns the examples and how many were dropped."""
    out, dropped = [], 0
    for example, rationale in zip(examples, rationales, strict=True):
        agrees = rationale.stated_answer is not None and rationale.stated_answer == label_names[example.label]
        dropped += not agrees
        out.append(RationaleExample(example.text, example.label, rationale.text if agrees else ""))
    return out, dropped


# -- items -------------------------------------------------------------------------------------------------------
def encode_items(tokenizer: Any, examples: Sequence[RationaleExample], max_source: int, max_rationale: int,
                 boundaries: Sequence[str] = (".", ";")) -> list[dict]:  # fmt: skip
    """Items ``{input_ids, attention_mask, label, rationale_labels, rationale_weights, rationale_steps}``; the
    rationale fields are empty lists for an example without a rationale. Weights: the IDF proxy of KPOD's token
    importance over this set's rationales; steps: sentences (a new step after each boundary piece)."""
    second = [e.text_pair for e in examples] if any(e.text_pair for e in examples) else None
    sources = tokenizer([e.text for e in examples], second, truncation=True, max_length=max_source)
    rationales = tokenizer([e.rationale for e in examples], truncation=True, max_length=max_rationale)["input_ids"]
    start = tokenizer.cls_token_id
    rationales = [ids[1:] if ids and ids[0] == start else ids for ids in rationales]  # the decoder adds its start
    rationales = [ids if e.rationale else [] for ids, e in zip(rationales, examples, strict=True)]
    specials = [i for i in (tokenizer.pad_token_id, tokenizer.sep_token_id, tokenizer.unk_token_id) if i is not None]
    weights = idf_weights(rationales, ignore=specials)
    marks = [tokenizer.convert_tokens_to_ids(b) for b in boundaries]
    return [
        {"input_ids": ids, "attention_mask": mask, "label": e.label, "rationale_labels": r, "rationale_weights": w,
         "rationale_steps": rationale_steps(r, marks)}
        for ids, mask, e, r, w in zip(sources["input_ids"], sources["attention_mask"], examples, rationales, weights,
                                      strict=True)
    ]  # fmt: skip


def collate(pad_id: int, with_rationales: bool) -> Callable[[list[dict]], dict[str, Any]]:
    """Items -> ``{"inputs": {input_ids, attention_mask[, rationale_labels]}, "labels", "rationale_*"[, "teacher"]}``.
    Without ``with_rationales`` the student is never handed rationale labels (its decoder does not run)."""

    def collate_batch(items: list[dict]) -> dict[str, Any]:
        inputs = {"input_ids": pad_rows([i["input_ids"] for i in items], pad_id, torch.long),
                  "attention_mask": pad_rows([i["attention_mask"] for i in items], 0, torch.long)}  # fmt: skip
        batch: dict[str, Any] = {"inputs": inputs, "labels": torch.tensor([i["label"] for i in items])}
        if with_rationales:
            labels = pad_rows([i["rationale_labels"] for i in items], IGNORE, torch.long)
            inputs["rationale_labels"] = labels
            batch |= {"rationale_labels": labels,
                      "rationale_weights": pad_rows([i["rationale_weights"] for i in items], 0.0, torch.float),
                      "rationale_steps": pad_rows([i["rationale_steps"] for i in items], -1, torch.long)}  # fmt: skip
        if "teacher_logits" in items[0]:
            batch["teacher"] = {"logits": torch.stack([torch.as_tensor(i["teacher_logits"]) for i in items]).float()}
        return batch

    return collate_batch


# -- training ----------------------------------------------------------------------------------------------------
class ProgressSchedule(Callback):
    """Tells a :class:`RationaleCE` how far training is (KPOD's easy-to-hard schedule reads it). With
    ``select_after_ramp``, a checkpoint from before every rationale step counts cannot be kept as the best: dev
    accuracy alone would pick a student that never learned its rationales' hardest steps (one Symptom2Disease seed
    kept step 153 of 765 and stated its own label in 25% of its rationales)."""

    def __init__(self, term: RationaleCE):
        self.term = term

    def on_train_begin(self, trainer: Trainer) -> None:
        config, state = self.term.config, trainer.state
        if config.start_fraction < 1.0 and config.select_after_ramp:
            state.select_from_step = math.ceil(config.ramp * state.total_steps)
        self._set(trainer)

    def on_step_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        self._set(trainer)

    def _set(self, trainer: Trainer) -> None:
        state = trainer.state
        self.term.progress = state.global_step / max(1, state.total_steps)


def rationale_terms(weights: Mapping[str, float], rationale: RationaleConfig | None = None,
                    kd: SoftLabelKDConfig | None = None) -> dict[str, Any]:  # fmt: skip
    """``task`` -> label CE, ``rationale`` -> :class:`RationaleCE` (Eq. 4/5), ``kd`` -> soft-label KD on the label
    logits (survey Eq. 1); a zero weight drops its term (so ``rationale: 0`` is label-only training exactly)."""
    known = {"task": TaskLoss, "rationale": lambda: RationaleCE(rationale), "kd": lambda: SoftLabelKD(kd)}
    unknown = sorted(set(weights) - set(known))
    if unknown:
        raise ValueError(f"unknown rationale terms {unknown}; choose from {sorted(known)}")
    return {name: known[name]() for name, w in weights.items() if w > 0}


def train_rationale_student(
    student: torch.nn.Module, items: list[dict], config: TrainerConfig, *, pad_id: int, weights: Mapping[str, float],
    rationale: RationaleConfig | None = None, kd: SoftLabelKDConfig | None = None,
    evaluate: Callable[[Distiller], dict[str, float]] | None = None, resume: bool = False,
) -> torch.nn.Module:  # fmt: skip
    """Train a :class:`~suite.students.rationale.RationaleStudent` with ``weights`` over ``task``, ``rationale``
    (lambda) and ``kd`` (stored teacher logits in the items: :func:`suite.pairs.attach_teacher_logits`)."""
    terms = rationale_terms(weights, rationale, kd)
    if "kd" in terms and "teacher_logits" not in items[0]:
        raise ValueError("a kd term needs the teacher's logits in the items (suite.pairs.attach_teacher_logits)")
    with_rationales = "rationale" in terms
    if with_rationales and not any(i["rationale_labels"] for i in items):
        raise ValueError("the rationale term needs items with rationales (none of these has one)")
    distiller = Distiller(student, terms, {n: float(weights[n]) for n in terms})
    callbacks = [ProgressSchedule(terms["rationale"])] if with_rationales else []
    Trainer(distiller, config, items, collate(pad_id, with_rationales), evaluate=evaluate,
            callbacks=callbacks).fit(resume)  # fmt: skip
    return student


# -- extractive rationales from a classifier teacher's attribution -----------------------------------------------


def token_attributions(
    model: torch.nn.Module, batch: Mapping[str, torch.Tensor], targets: torch.Tensor
) -> torch.Tensor:
    r"""Gradient x input saliency (Simonyan et al. 2014; Shrikumar et al. 2017) of each token for the target
    class: :math:`s_t = |\sum_d e_{t,d}\, \partial z_y / \partial e_{t,d}|` at the input embeddings (any model with
    ``get_input_embeddings``). ``(B, T)``, 0 at padding."""
    captured: list[torch.Tensor] = []

    def keep(module, inputs, output):
        if output.requires_grad:
            output.retain_grad()
        else:  # a frozen teacher: make its embedding output the leaf the gradient is read at
            output.requires_grad_(True)
        captured.append(output)

    handle = model.get_input_embeddings().register_forward_hook(keep)
    try:
        model.eval()
        with torch.enable_grad():
            logits = as_output_dict(model(**batch))["logits"]
            logits.gather(1, targets.view(-1, 1)).sum().backward()
    finally:
        handle.remove()
    embeddings = captured[0]
    scores = (embeddings * embeddings.grad).sum(-1).abs().detach()
    model.zero_grad(set_to_none=True)
    return scores * batch["attention_mask"]


def evidence_words(tokenizer: Any, text: str, scores: torch.Tensor, top_words: int = 5) -> list[str]:
    """The ``top_words`` highest-scoring content words of ``text`` (a word scores its best piece), in text order."""
    encoding = tokenizer(text, truncation=True, max_length=len(scores), return_offsets_mapping=True)
    best: dict[int, float] = {}
    for position, word in enumerate(encoding.word_ids()):
        if word is not None and position < len(scores):
            best[word] = max(best.get(word, 0.0), float(scores[position]))
    spans = {w: encoding.word_to_chars(w) for w in best}
    words = {w: text[s.start : s.end] for w, s in spans.items()}
    content = [w for w in best if words[w].isalpha() and len(words[w]) > 2 and words[w].lower() not in STOPWORDS]
    unique: dict[str, int] = {}  # a word said twice is one piece of evidence: keep its best-scoring occurrence
    for w in sorted(content, key=lambda w: -best[w]):
        unique.setdefault(words[w].lower(), w)
    chosen = sorted(list(unique.values())[:top_words])
    return [words[w] for w in chosen]


def attribution_rationales(
    model: torch.nn.Module, tokenizer: Any, texts: Sequence[str], label_names: Sequence[str], max_length: int = 256,
    top_words: int = 5, batch_size: int = 16, differential: bool = False,
) -> list[Rationale]:  # fmt: skip
    """Extractive rationales from a classifier teacher (ERASER-style evidence, verbalised): the words its
    gradient x input saliency ranks highest for its own prediction, in text order, then its answer:
    ``"the case mentions fever, cough and chills, pointing to flu ."``. With ``differential``, the teacher's
    runner-up is named too, as a clinician's differential diagnosis would: ``"the case mentions fever, cough and
    chills; next most likely pneumonia; pointing to flu ."`` (a piece of the teacher's dark knowledge that the
    label alone does not carry). The stated answer is the teacher's prediction, so :func:`keep_consistent` drops
    the cases the teacher gets wrong."""
    out: list[Rationale] = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        batch = dict(tokenizer(chunk, truncation=True, max_length=max_length, padding=True, return_tensors="pt"))
        with torch.no_grad():
            ranked = as_output_dict(model.eval()(**batch))["logits"].argsort(-1, descending=True)
        scores = token_attributions(model, batch, ranked[:, 0])
        for text, row, order in zip(chunk, scores, ranked.tolist(), strict=True):
            words = evidence_words(tokenizer, text, row, top_words)
            listed = ", ".join(words[:-1]) + f" and {words[-1]}" if len(words) > 1 else "".join(words) or "nothing"
            answer = label_names[order[0]]
            runner_up = f"; next most likely {label_names[order[1]]};" if differential and len(order) > 1 else ","
            out.append(Rationale(f"the case mentions {listed}{runner_up} pointing to {answer} .", answer))
    return out
