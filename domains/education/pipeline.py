"""``distill run education``: for each task (short-answer scoring, solution verification) its data, then the shared
pair-classification stages (:mod:`suite.pair_pack` on :mod:`suite.runner`): teacher -> store -> students x loss
variants x seeds -> evaluation next to the majority class -> export (+ gated int8) -> latency; then one report, the
model card and the released student.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from domains.education.data import (
    LABELS,
    SRA_SPLITS,
    VERIFIER_SPLITS,
    Example,
    agreement_rule,
    load_sra,
    load_verifier,
    problem_split,
)
from domains.education.own_data import SPLITS as OWN_SPLITS
from domains.education.own_data import load_own
from domains.education.recipe import OWN_DATA_RUBRIC, SRA_RUBRIC, VERIFIER_RUBRIC, EducationRecipe
from suite.augment import TransferConfig
from suite.errors import ConfigError
from suite.pair_pack import (
    PairData,
    PairTask,
    fill_teacher_stores,
    release_pair_models,
    run_pair_task,
    train_pair_students,
)
from suite.stages import StageLedger

PERTURBATION = "char_typos"  # answers typed in a hurry: the noise a school deployment sees most


def perturbed(examples: list[Example], n: int) -> list[Example]:
    """The first ``n`` examples with typos in the answer (the part a student writes)."""
    from suite.eval import perturb

    noisy = perturb([e.text_pair for e in examples[:n]], PERTURBATION, seed=0)
    return [Example(e.text, answer, e.label, e.group) for e, answer in zip(examples[:n], noisy, strict=True)]


def load_task(recipe: EducationRecipe, task: str) -> PairData:
    rules: dict = {}
    if recipe.data.path:
        splits, names, extra = load_own(recipe.data)[1], OWN_SPLITS, []
    elif task == "sra":
        splits, names, extra = load_sra(recipe.sra_path, recipe.sra_corpus, recipe.sra_references), SRA_SPLITS, []
    else:
        splits = load_verifier(recipe.gsm8k_path, recipe.verifier_test_fraction, recipe.verifier_rationales,
                               seed=recipe.seeds[0], agreement=recipe.verifier_agreement)  # fmt: skip
        names, extra = VERIFIER_SPLITS, splits.get("rationales", [])
        # the untrained self-consistency rule: a learned verifier must beat it to be worth shipping
        rules = {"agreement": agreement_rule} if recipe.verifier_agreement else {}
    train = list(splits["train"])
    random.Random(0).shuffle(train)
    train = train[: recipe.max_train_examples or None]
    tests = {name: splits[name][: recipe.max_eval_examples or None] for name in names if name in splits}
    train, dev = dev_cut(train, recipe.dev_fraction, recipe.dev_answers_fraction if "unseen_answers" in tests else 0)
    noisy = {name: perturbed(examples, recipe.robustness_examples) for name, examples in tests.items()}
    return PairData(train, dev, tests, extra, noisy, rules)


def dev_cut(train: list[Example], questions: float, answers: float) -> tuple[list[Example], list[Example]]:
    """(train, dev): dev holds out whole questions (like the unseen-questions test split) and, for a task also
    tested on new answers to seen questions, a share of the other questions' answers (like unseen answers), so the
    checkpoint a run keeps is the one that does both, not the one that happens to do well on a few held-out
    questions. An answer's cut hashes its text with its question: the same answer twice falls on one side."""

    def held(e: Example) -> bool:
        return problem_split(e.group, questions, salt="dev") == "test" or (
            answers > 0 and problem_split(f"{e.group}\n{e.text_pair}", answers, salt="dev-answers") == "test"
        )

    return [e for e in train if not held(e)], [e for e in train if held(e)]


def task_labels(recipe: EducationRecipe) -> list[str]:
    return load_own(recipe.data)[0] if recipe.data.path else LABELS


def rubric(recipe: EducationRecipe, task: str, labels: list[str]) -> str:
    if task == "verifier":
        return VERIFIER_RUBRIC
    if not recipe.data.path:
        return SRA_RUBRIC
    # {text} and {text_pair} stay for the teacher to fill per example; the grades are known now
    return OWN_DATA_RUBRIC.replace("{labels}", ", ".join(labels))


def listed_for(names: list[str], variants: dict) -> list[str] | None:
    """The names of a recipe list (ensemble_variants, transfer_variants) that are variants of this task; ``None``
    when the list names variants but none of this task's (then the task has no such variant)."""
    mine = [n for n in names if n in variants]
    return None if names and not mine else mine


def pair_task(recipe: EducationRecipe, task: str) -> PairTask:
    """The recipe's settings for one task, in the shared stages' terms."""
    labels, variants = task_labels(recipe), recipe.variants_of(task)
    ensemble_variants = listed_for(recipe.ensemble_variants, variants)
    transfer_variants = listed_for(recipe.transfer_variants, variants)
    return PairTask(
        name=task, labels=labels, max_length=recipe.max_length(task), teacher=recipe.teacher,
        teacher_model=recipe.teacher_model, teacher_trainer=recipe.teacher_trainer(task),
        students={s: recipe.tiny_trainer if s == "tiny" else recipe.minilm2_trainer for s in recipe.students},
        seeds={s: recipe.seeds_of(s) for s in recipe.students}, variants=variants, kd=recipe.kd,
        tiny={"dim": recipe.tiny_dim, "layers": recipe.tiny_layers, "vocab_size": recipe.vocab_size,
              "embed_init": recipe.tiny_embed_init, "segments": recipe.tiny_segments,
              "exact_match": recipe.tiny_exact_match},
        int8=recipe.int8, bench_repeats=recipe.bench_repeats, progress=recipe.progress,
        teacher_url=recipe.teacher_url, teacher_served_model=recipe.teacher_served_model,
        rubric=rubric(recipe, task, labels), ensemble=recipe.ensemble_of(task) if ensemble_variants is not None else 1,
        neighbours=recipe.teacher_neighbours if recipe.ensemble_task(task) and ensemble_variants is not None else 0,
        multi=recipe.multi_teacher, leave_one_out=recipe.leave_one_teacher_out,
        transfer=recipe.transfer if transfer_variants is not None else TransferConfig(), layer_map=recipe.layer_map,
        exits=recipe.exits, posterior=recipe.posterior, ensemble_variants=ensemble_variants or [],
        calibrated_variants=[n for n in recipe.calibrated_variants if n in variants],
        transfer_variants=transfer_variants or [],
        student_variants=recipe.student_variants,
    )  # fmt: skip


def split_metrics(probs: np.ndarray, labels: np.ndarray, noisy_probs: np.ndarray, noisy_labels: np.ndarray) -> dict:
    """Accuracy, macro-F1, QWK, ECE on a split; PDR (survey Eq. 27) of accuracy under answer typos on its prefix;
    accuracy on the 80% of answers the model is surest of (the rest would go to a teacher)."""
    from suite.eval import accuracy, expected_calibration_error, macro_f1, performance_drop_rate, selective_accuracy
    from suite.eval import quadratic_weighted_kappa as qwk

    predictions = probs.argmax(-1).tolist()
    clean_prefix = accuracy(predictions[: len(noisy_labels)], noisy_labels.tolist())
    noisy = accuracy(noisy_probs.argmax(-1).tolist(), noisy_labels.tolist())
    gold = labels.tolist()
    classes = (0, probs.shape[1] - 1)  # grades in class order: QWK reads them as ordinal
    return {"accuracy": accuracy(predictions, gold), "macro_f1": macro_f1(predictions, gold),
            "qwk": qwk(predictions, gold, rating_range=classes), "ece": expected_calibration_error(probs, labels),
            "pdr_typos": performance_drop_rate(clean_prefix, noisy),
            "selective_accuracy_80": selective_accuracy(probs, labels, coverage=0.8)}  # fmt: skip


def train_teachers(recipe: EducationRecipe, ledger: StageLedger, resume: bool) -> dict[str, Any]:
    """A teachers-only sitting: the teacher stages of ``teacher_members`` for every task and their stores."""
    built = {}
    for task in recipe.tasks:
        spec = pair_task(recipe, task)
        built[task] = [m for m in recipe.teacher_members if m < spec.ensemble]
        fill_teacher_stores(spec, load_task(recipe, task), ledger, resume, built[task])
    print("teachers-only sitting done: " + ", ".join(f"{t} members {m}" for t, m in built.items()))
    return {"teachers": built}


def train_students(recipe: EducationRecipe, ledger: StageLedger, resume: bool) -> dict[str, Any]:
    """A students-only sitting: this sitting's tasks' and seeds' students, trained and kept for the publishing one."""
    built = {task: train_pair_students(pair_task(recipe, task), load_task(recipe, task), split_metrics, ledger, resume)
             for task in recipe.tasks}  # fmt: skip
    print("students-only sitting done: " + ", ".join(f"{t} {len(v)} students" for t, v in built.items()))
    return {"students": built}


def run(recipe: EducationRecipe, resume: bool = False) -> dict[str, Any]:
    """Run every task of the recipe end to end and write the report; returns the summary."""
    from domains.education.report import write_model_card, write_report

    if not recipe.tasks:
        raise ConfigError("tasks: nothing to run")
    started, ledger, out = time.perf_counter(), StageLedger(recipe.output_dir), Path(recipe.output_dir)
    if recipe.teacher_members:
        return train_teachers(recipe, ledger, resume)
    if recipe.students_only:
        return train_students(recipe, ledger, resume)
    results = [run_pair_task(pair_task(recipe, task), load_task(recipe, task), split_metrics, ledger, out, resume)
               for task in recipe.tasks]  # fmt: skip
    doc = write_report(recipe, results, seconds=time.perf_counter() - started)
    write_model_card(recipe, doc)
    release_pair_models(recipe.release, results, recipe.model_card_path, doc["command"], recipe.release_check_examples)
    return doc
