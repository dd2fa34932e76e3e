"""Text-pair classification distillation: the stages every scoring recipe shares (survey Eq. 1).

A *pair* is ``(text, text_pair)`` with an integer label: (question + reference, student answer) for short-answer
scoring, (problem, solution) for a verifier. The stages:

1. :func:`fine_tune_cross_encoder` fine-tunes an encoder teacher on the pairs with the one training loop.
2. :func:`stored_teacher_logits` asks any teacher backend (local HF model, OpenAI-compatible endpoint, ...) through
   the teacher-output store, so a rerun asks it nothing.
3. :func:`train_pair_student` trains a student with hard-label CE and, with ``kd``, soft-label KD from the stored
   teacher logits.
4. :func:`predict_proba` scores pairs with any of them.

Packs (``suite.pair_pack`` for the stages around these, ``domains/education``) only choose data, models and weights.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from suite.distiller import Distiller, as_output_dict
from suite.errors import ConfigError
from suite.losses import MultiTeacherConfig, MultiTeacherKD, SoftLabelKD, SoftLabelKDConfig, TaskLoss
from suite.losses.bayesian import EnsembleDistributionKD, TeacherPrior
from suite.losses.self_distillation import MutualKD
from suite.trainer import Trainer, TrainerConfig

Pair = tuple[str, str]
logger = logging.getLogger(__name__)


def encode_pairs(tokenizer: Any, pairs: Sequence[Pair], labels: Sequence[int], max_length: int) -> list[dict]:
    """Tokenised items (``input_ids``, ``attention_mask``[, ``token_type_ids``], ``label``), unpadded."""
    if len(pairs) != len(labels):
        raise ValueError(f"{len(pairs)} pairs but {len(labels)} labels")
    if not pairs:
        return []
    texts, text_pairs = zip(*pairs, strict=True)
    text_pairs = text_pairs if any(text_pairs) else None  # single texts: no empty second segment
    encoded = tokenizer(list(texts), list(text_pairs) if text_pairs else None, truncation=True, max_length=max_length)
    warn_truncated(tokenizer, texts, text_pairs, encoded["input_ids"], max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
    return [{**{k: encoded[k][i] for k in keys}, "label": int(y)} for i, y in enumerate(labels)]


def count_truncated(tokenizer: Any, texts: Sequence[str], text_pairs: Sequence[str] | None,
                    ids: Sequence[list[int]], max_length: int) -> int:  # fmt: skip
    """How many pairs ``max_length`` cut. Only pairs that came out at exactly ``max_length`` can have been cut, so
    only those are tokenised again in full."""
    full = [i for i, row in enumerate(ids) if len(row) >= max_length]
    if not full:
        return 0
    second = [text_pairs[i] for i in full] if text_pairs else None
    untruncated = tokenizer([texts[i] for i in full], second)["input_ids"]
    return sum(len(row) > max_length for row in untruncated)


def warn_truncated(tokenizer: Any, texts: Sequence[str], text_pairs: Sequence[str] | None,
                   ids: Sequence[list[int]], max_length: int) -> int:  # fmt: skip
    """Log a warning with the count when ``max_length`` cut any pair (a silent cut hides lost answers); returns it."""
    cut = count_truncated(tokenizer, texts, text_pairs, ids, max_length)
    if cut:
        logger.warning(
            "%d of %d pairs (%.0f%%) are longer than max_length=%d tokens and were truncated; raise max_length if "
            "the cut part matters", cut, len(ids), 100 * cut / len(ids), max_length,
        )  # fmt: skip
    return cut


def attach_teacher_logits(items: list[dict], logits: torch.Tensor) -> list[dict]:
    """Items with ``teacher_logits`` (one row each), for soft-label KD."""
    if len(items) != len(logits):
        raise ValueError(f"{len(logits)} teacher logit rows for {len(items)} items")
    return [{**item, "teacher_logits": row} for item, row in zip(items, logits, strict=True)]


def make_collate(tokenizer: Any) -> Callable[[list[dict]], dict[str, Any]]:
    """Pad a list of items into the Distiller's batch: ``inputs``, ``labels`` and, when present, ``teacher``."""

    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        features = [{k: v for k, v in item.items() if k not in ("label", "teacher_logits")} for item in items]
        inputs = dict(tokenizer.pad(features, return_tensors="pt"))
        batch: dict[str, Any] = {"inputs": inputs, "labels": torch.tensor([item["label"] for item in items])}
        if "teacher_logits" in items[0]:
            batch["teacher"] = {"logits": torch.stack([item["teacher_logits"] for item in items])}
        return batch

    return collate


@torch.no_grad()
def predict_proba(model: torch.nn.Module, tokenizer: Any, items: list[dict], batch_size: int = 64) -> np.ndarray:
    """(N, C) class probabilities. Items are scored in length order (less padding) and returned in input order."""
    collate = make_collate(tokenizer)
    model.eval()
    order = sorted(range(len(items)), key=lambda i: len(items[i]["input_ids"]))
    probs: list[torch.Tensor] = []
    for start in range(0, len(order), batch_size):
        batch = collate([items[i] for i in order[start : start + batch_size]])
        probs.append(as_output_dict(model(**batch["inputs"]))["logits"].float().softmax(-1))
    if not probs:
        return np.zeros((0, 0), dtype=np.float32)
    stacked = torch.cat(probs).numpy()
    out = np.empty_like(stacked)
    out[order] = stacked
    return out


def item_labels(items: list[dict]) -> np.ndarray:
    return np.array([item["label"] for item in items], dtype=np.int64)


def dev_accuracy(tokenizer: Any, dev: list[dict]) -> Callable[[Distiller], dict[str, float]] | None:
    """The evaluation callback's function: accuracy of the student on ``dev`` (None when dev is empty)."""
    if not dev:
        return None
    labels = item_labels(dev)

    def evaluate(distiller: Distiller) -> dict[str, float]:
        predictions = predict_proba(distiller.student, tokenizer, dev).argmax(-1)
        return {"accuracy": float((predictions == labels).mean())}

    return evaluate


def fine_tune_cross_encoder(
    model: torch.nn.Module,
    tokenizer: Any,
    train: list[dict],
    dev: list[dict],
    config: TrainerConfig,
    resume: bool = False,
    freeze_embeddings: bool = True,
) -> torch.nn.Module:
    """Fine-tune ``model`` (a classifier over pairs) on hard labels with the one training loop.

    ``freeze_embeddings`` keeps the word embeddings fixed: on a small set they barely move, and skipping their
    gradient saves memory and about a third of each step on CPU.
    """
    if freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    distiller = Distiller(model, {"task": TaskLoss()}, {"task": 1.0})
    Trainer(distiller, config, train, make_collate(tokenizer), evaluate=dev_accuracy(tokenizer, dev)).fit(resume)
    return model


# layers: intermediate-layer KD from a live teacher (LayerMapKD); exits: self-distillation (ShallowExits); prior:
# Bayesian KD's teacher-informed prior, weighted by lambda (TeacherPrior); end2: ensemble distribution distillation
# (EnsembleDistributionKD, an ensemble of teachers)
PAIR_TERMS = ("task", "kd", "layers", "exits", "prior", "end2", "mutual")  # mutual: a peer trained alongside


def pair_terms(
    weights: Mapping[str, float], kd: SoftLabelKDConfig | None = None, multi: MultiTeacherConfig | None = None,
    built: Mapping[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The named loss terms of a pair classifier: ``task`` (hard-label CE), ``kd`` (soft-label KD; with ``multi``,
    multi-teacher KD on items whose ``teacher_logits`` stack K teachers) and terms the caller ``built`` (``layers``:
    a :class:`~suite.losses.layer_map.LayerMapKD`, which needs the models' widths)."""
    built = dict(built or {})
    unknown = sorted(set(weights) - set(PAIR_TERMS))
    if unknown:
        raise ValueError(f"unknown loss terms {unknown} for a pair classifier (known: {', '.join(PAIR_TERMS)})")
    kd_term = (lambda: MultiTeacherKD(multi)) if multi else (lambda: SoftLabelKD(kd or SoftLabelKDConfig()))
    factories = {"task": TaskLoss, "kd": kd_term, "prior": TeacherPrior, "end2": EnsembleDistributionKD,
                 "mutual": MutualKD}  # fmt: skip
    missing = sorted(set(weights) - set(factories) - set(built))
    if missing:
        raise ValueError(f"loss terms {missing} must be built by the caller (they need the models)")
    return {name: built[name] if name in built else factories[name]() for name in weights}


def with_attentions(model: torch.nn.Module, batch: Mapping[str, Any]) -> dict[str, Any]:
    """A forward that also returns attention maps (for intermediate-layer KD from a live teacher)."""
    return as_output_dict(model(**batch["inputs"], output_attentions=True))


def train_pair_student(
    student: torch.nn.Module,
    tokenizer: Any,
    train: list[dict],
    dev: list[dict],
    config: TrainerConfig,
    *,
    terms: Mapping[str, float],
    kd: SoftLabelKDConfig | None = None,
    multi: MultiTeacherConfig | None = None,
    teacher: torch.nn.Module | None = None,
    built: Mapping[str, Any] | None = None,
    resume: bool = False,
) -> torch.nn.Module:
    """Train ``student`` on ``train`` items with the named, weighted ``terms``; a ``kd`` term needs items with
    ``teacher_logits``.

    ``{"task": alpha, "kd": 1 - alpha}`` is survey Eq. 1:
    ``L = alpha * CE(y, p_s) + (1 - alpha) * tau^2 * KL(p_t^tau || p_s^tau)``; ``{"task": 1.0}`` is the hard-label
    baseline that isolates what the teacher adds.
    """
    if terms.get("kd") and teacher is None and "teacher_logits" not in train[0]:
        raise ValueError("a kd term needs items with teacher_logits (see attach_teacher_logits)")
    live = {"student_forward": with_attentions, "teacher_forward": with_attentions} if teacher is not None else {}
    distiller = Distiller(student, pair_terms(terms, kd, multi, built), dict(terms), teacher=teacher, **live)
    Trainer(distiller, config, train, make_collate(tokenizer), evaluate=dev_accuracy(tokenizer, dev)).fit(resume)
    return student


def stored_teacher_logits(
    teacher: Any, pairs: Sequence[Pair], store_dir: str | Path, batch_size: int = 64
) -> torch.Tensor:
    """(N, C) teacher logits for ``pairs`` from any backend, answered through the teacher-output store.

    The store keys each answer by teacher id, input and settings, so a rerun (or an interrupted run resumed) asks
    the teacher only for what is missing.
    """
    from suite.teachers import TeacherOutputStore

    store = TeacherOutputStore(Path(store_dir))
    # Asked in length order so each batch pads little; the store keys by input, so order never changes an answer.
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    inputs = [{"text": pairs[i][0], "text_pair": pairs[i][1]} for i in order]
    outputs = store.run(teacher, inputs, batch_size=batch_size)
    logits = torch.empty(len(pairs), *outputs[0].logits.shape) if outputs else torch.empty(0)
    for position, output in zip(order, outputs, strict=True):
        logits[position] = output.logits
    return logits.float()


def with_output_dir(config: TrainerConfig, output_dir: str | Path, **changes: Any) -> TrainerConfig:
    """A copy of ``config`` writing to ``output_dir`` (and any other field changed)."""
    return TrainerConfig(**{**vars(config), "output_dir": str(output_dir), **changes})


# -- the lexical-overlap baseline ----------------------------------------------------------------------------------
def overlap_features(pairs: Sequence[Pair]) -> np.ndarray:
    """Per pair: Jaccard of the two texts' content words, the share of the second text's words found in the first
    and of the first's in the second, and both lengths (log words). What a scorer that only matches words sees."""
    import re

    from suite.eval.eraser import STOPWORDS

    def words(text: str) -> set[str]:
        return set(re.findall(r"[a-z0-9]+", text.lower())) - STOPWORDS  # numbers count: "100 degrees", "A: 42"

    rows = []
    for text, text_pair in pairs:
        a, b = words(text), words(text_pair)
        both = len(a & b)
        rows.append([both / max(1, len(a | b)), both / max(1, len(b)), both / max(1, len(a)),
                     np.log1p(len(a)), np.log1p(len(b))])  # fmt: skip
    return np.asarray(rows, dtype=np.float64)


def overlap_baseline(train: Sequence[Pair], labels: Sequence[int], num_labels: int):
    """A logistic regression on :func:`overlap_features`, fitted on the training pairs: returns pairs -> (N, C)
    class probabilities. A teacher that cannot beat word matching has not learned the task."""
    from sklearn.linear_model import LogisticRegression

    present = sorted(set(labels))
    model = LogisticRegression(max_iter=1000).fit(overlap_features(train), labels) if len(present) > 1 else None

    def predict(pairs: Sequence[Pair]) -> np.ndarray:
        out = np.zeros((len(pairs), num_labels))
        if model is None:  # one class in training: it is the only answer
            out[:, present[0]] = 1.0
        elif pairs:
            out[:, model.classes_] = model.predict_proba(overlap_features(pairs))
        return out

    return predict


# -- Bayesian KD: posterior samples of a trained student ----------------------------------------------------------
@dataclasses.dataclass
class PosteriorConfig:
    """SGLD sampling after training (Bayesian KD, survey 3.2): ``samples`` > 0 turns it on."""

    samples: int = 0  # posterior samples kept
    burn_in: int = 50  # SGLD steps before the first kept sample
    thin: int = 10  # SGLD steps between kept samples
    lr: float = 1e-6  # SGLD step size (its noise has variance lr)
    batch_size: int = 32
    seed: int = 0


def posterior_predictions(
    student: torch.nn.Module, tokenizer: Any, train: list[dict], terms: Mapping[str, float],
    splits: Mapping[str, list[dict]], config: PosteriorConfig,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Run SGLD from the trained weights on the student's own objective (``terms``: task + lambda x prior) and return,
    per split, the class probabilities of every kept sample ``(S, N, C)``. The student's weights are restored after.
    """
    from suite.losses.bayesian import SGLD

    distiller = Distiller(student, pair_terms(terms), dict(terms))
    saved = {k: v.detach().clone() for k, v in student.state_dict().items()}
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = SGLD(distiller.trainable_parameters(), lr=config.lr, num_data=len(train), generator=generator)
    collate, rng = make_collate(tokenizer), np.random.default_rng(config.seed)
    kept: dict[str, list[np.ndarray]] = {split: [] for split in splits}
    for step in range(config.burn_in + config.thin * config.samples):
        student.train()
        batch = collate([train[i] for i in rng.choice(len(train), min(config.batch_size, len(train)), replace=False)])
        optimizer.zero_grad()
        loss = distiller(batch)["loss"]
        if not torch.isfinite(loss):  # the chain left the posterior: every later sample would be NaN
            student.load_state_dict(saved)
            raise ConfigError(f"posterior.lr: SGLD diverged at step {step} (loss {loss.item()}) with lr "
                              f"{config.lr:g}; lower the step size")  # fmt: skip
        loss.backward()
        optimizer.step()
        if step >= config.burn_in and (step - config.burn_in + 1) % config.thin == 0:
            for split, items in splits.items():
                kept[split].append(predict_proba(student, tokenizer, items))
    student.load_state_dict(saved)
    return {split: np.stack(probs) for split, probs in kept.items()}
