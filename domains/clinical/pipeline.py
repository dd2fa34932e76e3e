"""``distill run clinical``: for each task (PubMedQA, Symptom2Disease, MTSamples) its data, then the shared
rationale stages (:mod:`suite.rationale_pack` on :mod:`suite.runner`): teacher -> stored logits -> rationales
(gold, or the teacher's evidence, filtered) -> students x data budgets x methods x seeds -> evaluation next to the
majority class -> label-path export (+ gated int8) -> latency; then the report, the model card and the released
student. Logs and reports carry ids and counts, never note or question text.
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from domains.clinical.data import Example, load_task
from domains.clinical.recipe import ClinicalRecipe
from suite.pair_pack import PairData
from suite.rationale_pack import RationalePack, RationaleTask
from suite.runner import TaskResult, fresh_export_dir
from suite.stages import StageLedger

# Shorthand clinicians write; the perturbation swaps the long form for it (case kept for the first letter only).
ABBREVIATIONS = {
    "patient": "pt", "patients": "pts", "history": "hx", "diagnosis": "dx", "treatment": "tx", "symptoms": "sx",
    "shortness of breath": "SOB", "blood pressure": "BP", "heart rate": "HR", "chest pain": "CP",
    "with": "w/", "without": "w/o", "years old": "yo", "year old": "yo", "fever": "febrile", "medication": "med",
    "medications": "meds", "examination": "exam", "prescription": "rx", "emergency department": "ED",
    "intensive care unit": "ICU", "myocardial infarction": "MI", "hypertension": "HTN", "diabetes": "DM",
    "randomized controlled trial": "RCT", "confidence interval": "CI", "versus": "vs",
}  # fmt: skip
_ABBREVIATION = re.compile(r"\b(" + "|".join(sorted(map(re.escape, ABBREVIATIONS), key=len, reverse=True)) + r")\b",
                           re.IGNORECASE)  # fmt: skip


def clinical_abbreviations(text: str, rng: random.Random) -> str:
    """Every long form of :data:`ABBREVIATIONS` written as its abbreviation (``rng`` unused: deterministic)."""
    return _ABBREVIATION.sub(lambda m: ABBREVIATIONS[m.group(0).lower()], text)


def perturbed(examples: list[Example], n: int) -> list[Example]:
    """The first ``n`` examples written with clinical abbreviations in what a clinician types (the case, not the
    abstract's context). Not in the seeded perturbation registry: the rewrite is deterministic."""
    noisy = [clinical_abbreviations(e.text, random.Random(0)) for e in examples[:n]]
    return [Example(t, e.text_pair, e.label, e.group, e.id, e.rationale)
            for e, t in zip(examples[:n], noisy, strict=True)]  # fmt: skip


def task_data(recipe: ClinicalRecipe, task: str) -> tuple[list[str], PairData]:
    data = load_task(task, recipe.data_paths.get(task))
    splits = data.splits
    train = splits["train"][: recipe.max_train_examples or None]
    tests = {"test": splits["test"][: recipe.max_eval_examples or None]}
    noisy = {"test": perturbed(tests["test"], recipe.robustness_examples)}
    return data.labels, PairData(train, splits["dev"], tests, [], noisy)


def rationale_task(recipe: ClinicalRecipe, task: str, labels: list[str]) -> RationaleTask:
    return RationaleTask(
        name=task, labels=labels, max_length=recipe.max_length[task], teacher=recipe.teacher,
        teacher_model=recipe.teacher_model,
        teacher_trainer=recipe.teacher_trainer, students={}, seeds={"student": recipe.seeds}, variants={},
        kd=recipe.kd, tiny={"vocab_size": recipe.vocab_size}, int8=recipe.int8, bench_repeats=recipe.bench_repeats,
        progress=recipe.progress, budgets=recipe.budgets, methods=recipe.methods,
        rationale_source=recipe.rationale_source[task], differential=recipe.differential,
        equal_steps=recipe.equal_steps, max_rationale=recipe.max_rationale,
        student_size=recipe.student_size, kpod=recipe.kpod, student_trainer=recipe.student_trainer,
        explain_examples=recipe.explain_examples,
    )  # fmt: skip


def split_metrics(probs: np.ndarray, labels: np.ndarray, noisy_probs: np.ndarray, noisy_labels: np.ndarray) -> dict:
    """Accuracy, macro-F1 and ECE on a split; PDR (survey Eq. 27) of accuracy under clinical abbreviations."""
    from suite.eval import accuracy, expected_calibration_error, macro_f1, performance_drop_rate

    predictions, gold = probs.argmax(-1).tolist(), labels.tolist()
    clean_prefix = accuracy(predictions[: len(noisy_labels)], noisy_labels.tolist())
    noisy = accuracy(noisy_probs.argmax(-1).tolist(), noisy_labels.tolist())
    return {"accuracy": accuracy(predictions, gold), "macro_f1": macro_f1(predictions, gold),
            "ece": expected_calibration_error(probs, labels),
            "pdr_abbreviations": performance_drop_rate(clean_prefix, noisy)}  # fmt: skip


def run_task(recipe: ClinicalRecipe, task: str, ledger: StageLedger, resume: bool) -> TaskResult:
    from suite.pair_pack import run_pair_stages

    labels, data = task_data(recipe, task)
    pack = RationalePack(rationale_task(recipe, task, labels), data, split_metrics, ledger, resume)
    out = Path(recipe.output_dir)
    result, trained = run_pair_stages(pack, ledger, out, after=[f"{task}/teacher", f"{task}/rationales"])
    for run in trained:  # the explain path of each first-seed student that learned to write rationales
        name = f"{run.variant.name}_explain"
        if run.seed == run.variant.seeds[0] and run.variant.terms.get("rationale", 0) > 0:
            result.exports[name] = pack.export_explain(run, fresh_export_dir(out / "export" / name))
    return result


def run(recipe: ClinicalRecipe, resume: bool = False) -> dict[str, Any]:
    from domains.clinical.report import write_model_card, write_report

    started, ledger = time.perf_counter(), StageLedger(recipe.output_dir)
    results = [run_task(recipe, task, ledger, resume) for task in recipe.tasks]
    doc = write_report(recipe, results, seconds=time.perf_counter() - started)
    write_model_card(recipe, doc)
    release(recipe, results, doc["command"])
    return doc


def explained(export_dir: Path, cases: list[Example], max_new_tokens: int) -> list[str]:
    """The rationales an exported explain path writes for ``cases``, through its own saved tokenizer."""
    from suite.export.runtime import load_exported

    second = [e.text_pair for e in cases] if any(e.text_pair for e in cases) else None
    return load_exported(export_dir).generate_text([e.text for e in cases], max_new_tokens, text_pairs=second)


def release(recipe: ClinicalRecipe, results: list[TaskResult], command: str, examples: int = 100) -> None:
    """Copy the named exports beside the model card, each checked by its released ONNX files on the first
    ``examples`` test cases: accuracy for a label path, the share of rationales that state a label for an explain
    path."""
    from suite.pair_pack import release_check
    from suite.rationale_pack import stated_answer
    from suite.release import release_named

    task_of = {name: r for r in results for name in r.exports}

    def check(released: Path) -> dict[str, Any]:
        result = task_of[released.name]
        cases = result.pack.data.tests["test"][:examples]
        if not released.name.endswith("_explain"):
            return release_check(released, cases, "test")
        texts = explained(released, cases, recipe.max_rationale)
        stating = [stated_answer(t, result.pack.task.labels) is not None for t in texts]
        return {"split": "test", "examples": len(cases), "max_new_tokens": recipe.max_rationale,
                "rationales_stating_a_label": float(np.mean(stating))}  # fmt: skip

    exports = {name: path for r in results for name, path in r.exports.items()}
    release_named(recipe.release, exports, recipe.model_card_path, command, check)
