"""The clinical report: ``clinical.md`` + ``clinical.json`` (the run summary) and the model card. Tables come from
the shared writer (:mod:`suite.report`); this module adds the data-budget study and the goals. Ids and counts only:
no case text reaches the report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from domains.clinical.recipe import ClinicalRecipe
from suite.report import (
    TEACHER_MARGIN,
    header,
    latency_table,
    metrics_table,
    model_card,
    retention_goals,
    run_summary,
    teacher_flags,
    teacher_vs_baselines,
)
from suite.report import write_markdown as write
from suite.results import write_summary
from suite.runner import ModelResult, TaskResult, beats_baselines, rejected_variants

METRICS = ("accuracy", "macro_f1", "ece", "pdr_abbreviations")
RATIONALE_METRICS = {  # metric -> column; ERASER scores sit beside the same for random words of equal count
    "gold": ("rationale_agreement", "rationale_rougeL", "rationale_bertscore_f1"),
    "teacher": ("rationale_agreement", "comprehensiveness", "comprehensiveness_random", "sufficiency",
                "sufficiency_random", "cited_words"),
}  # fmt: skip
TITLES = {
    "pubmedqa": "PubMedQA PQA-L: question + abstract -> yes / no / maybe (official 500 test PMIDs)",
    "symptom2disease": "Symptom2Disease: symptom description -> 24 diagnoses (split by duplicate group)",
    "mtsamples": "MTSamples-500: transcription -> specialty",
}
LATENCY_COLUMNS = [("ORT fp32 b1 p50 / p99", "onnxruntime", "fp32", 1), ("ORT int8 b1", "onnxruntime", "int8", 1),
                   ("PyTorch b1", "torch", "", 1)]  # fmt: skip


def _name(task: str, share: float, method: str) -> str:
    return f"{task}_b{round(100 * share)}_{method}"


def budget_table(recipe: ClinicalRecipe, results: dict[str, ModelResult], task: str) -> list[str]:
    """Accuracy (test, mean ± std over seeds) of every method at every budget."""
    methods = list(recipe.methods)
    lines = ["| budget | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for share in recipe.budgets:
        cells = []
        for method in methods:
            r = results.get(_name(task, share, method))
            cells.append(f"{r.metrics['test']['accuracy']:.3f} ± {r.std['test']['accuracy']:.3f}" if r else "–")
        lines.append(f"| {share:.0%} | " + " | ".join(cells) + " |")
    return lines


def goals(recipe: ClinicalRecipe, results: dict[str, ModelResult], task: str) -> list[str]:
    """Step-by-step vs label-only at every budget and at 50% vs label-only at 100%; rationale agreement. None is
    judged when the teacher does not beat the majority class."""
    if not beats_baselines(results, f"{task}_teacher", "test", "accuracy", margin=TEACHER_MARGIN):
        probe = (" Nothing cheaper does either: fit on the same labelled cases offline, TF-IDF and frozen MiniLM "
                 "probes stay within the majority class's reach ([pubmedqa_probe.md](pubmedqa_probe.md))."
                 if task == "pubmedqa" else "")  # fmt: skip
        return [f"- the teacher does not beat the baselines on test by {TEACHER_MARGIN:.0%}: no distillation goal is "
                f"judged.{probe}"]  # fmt: skip

    def accuracy(share: float, method: str, of: str = "metrics") -> float | None:
        r = results.get(_name(task, share, method))
        return getattr(r, of)["test"]["accuracy"] if r else None

    lines = []
    pairs = [(s, accuracy(s, "step_by_step"), accuracy(s, "label_only")) for s in recipe.budgets]
    pairs = [(s, a, b) for s, a, b in pairs if a is not None and b is not None]
    if pairs:
        beaten = [s for s, a, b in pairs if a > b]
        shown = ", ".join(f"{s:.0%}: {a:.3f} vs {b:.3f}" for s, a, b in pairs)
        met = len(beaten) == len(pairs)
        # The goal is on means; say when a margin is smaller than the seeds' own spread.
        spreads = {s: max(accuracy(s, "step_by_step", "std"), accuracy(s, "label_only", "std")) for s, _, _ in pairs}
        within = [s for s, a, b in pairs if abs(a - b) < spreads[s]]
        spread = (f" Margins at {', '.join(f'{s:.0%}' for s in within)} are smaller than one seed std."
                  if within else "")  # fmt: skip
        lines.append(f"- step-by-step beats label-only at every budget ({shown}): "
                     f"{'met' if met else '**not met**'}.{spread}")  # fmt: skip
    half, full = accuracy(0.5, "step_by_step"), accuracy(1.0, "label_only")
    if half is not None and full is not None:
        kd = accuracy(0.5, "logit_kd")
        cause = (f" Logit KD on the same 50%, which learns the teacher's whole class distribution, reaches {kd:.3f}: "
                 "the data budget, not the loss, sets the ceiling, and rationales made of the words the teacher "
                 "attended to carry less than its soft labels." if half < full and kd is not None and kd < full
                 else "")  # fmt: skip
        lines.append(f"- step-by-step on 50% of the data {half:.3f} vs label-only on 100% {full:.3f}: "
                     f"{'met' if half >= full else '**not met**'}.{cause}")  # fmt: skip
    agreement = {n: r.metrics["test"]["rationale_agreement"] for n, r in results.items()
                 if n.startswith(f"{task}_") and "rationale_agreement" in r.metrics.get("test", {})}  # fmt: skip
    if agreement:
        worst = min(agreement, key=agreement.get)
        by_budget = ", ".join(f"{s:.0%} {agreement[n]:.0%}" for s in recipe.budgets
                              if (n := _name(task, s, "step_by_step")) in agreement)  # fmt: skip
        lines.append(f"- rationales state the student's own label: lowest {agreement[worst]:.1%} (`{worst}`; goal "
                     f">= 90%): {'met' if agreement[worst] >= 0.9 else '**not met**'}. Step-by-step by budget: "
                     f"{by_budget}.")  # fmt: skip
    return lines


def task_section(recipe: ClinicalRecipe, result: TaskResult) -> list[str]:
    task, pack = result.task, result.pack
    kept = sum(bool(r) for r in pack.rationales)
    best = max((n for n, r in result.results.items() if r.role == "student"),
               key=lambda n: result.results[n].metrics["test"]["accuracy"], default=None)  # fmt: skip
    lines = [
        f"## {TITLES[task]}",
        "",
        "Examples: " + ", ".join(f"{k} {v:,}" for k, v in pack.data.sizes().items()) + f". Rationales "
        f"({pack.task.rationale_source}): {kept} of {len(pack.data.train)} kept, {len(pack.data.train) - kept} "
        "dropped (their stated answer is not the label).",
        "",
        "### Goals",
        "",
        *teacher_flags(teacher_vs_baselines(result.results, f"{task}_teacher", "accuracy"), f"{task}_teacher"),
        *goals(recipe, result.results, task),
    ]
    if best:
        lines += ["", *retention_goals(result.results, result.bench, f"{task}_teacher", best, "accuracy", fewer=10,
                                       faster=5)]  # fmt: skip
    lines += ["", "### Accuracy by data budget (test, mean ± std over seeds)", "",
              *budget_table(recipe, result.results, task), "", "### test", "",
              *metrics_table(result.results, "test", METRICS, primary="accuracy"), ""]  # fmt: skip
    lines += rationale_section(result)
    label_paths = {n: p for n, p in result.exports.items() if not n.endswith("_explain")}
    if label_paths:
        rejected = {name: rejected_variants(path) for name, path in label_paths.items()}
        lines += [f"### Latency of the label path (ms, p50 / p99; inputs of {pack.task.max_length} tokens)", "",
                  *latency_table(list(label_paths), result.bench, LATENCY_COLUMNS, rejected), ""]  # fmt: skip
    return lines


def rationale_section(result: TaskResult) -> list[str]:
    """The written rationales of every explaining student (first explain_examples test cases): agreement with its
    own label, and against gold (ROUGE-L, BERTScore F1) or, for extractive evidence, ERASER faithfulness."""
    explaining = {n: r for n, r in result.results.items() if "rationale_agreement" in r.metrics.get("test", {})}
    if not explaining:
        return []
    source = result.pack.task.rationale_source
    note = ("against the authors' gold long answers" if source == "gold" else "ERASER comprehensiveness (higher: "
            "removing the cited words takes the label away) and sufficiency (lower: the cited words alone keep it), "
            "each beside the same for as many random words of the case")  # fmt: skip
    return [
        f"### Rationales the students write ({note})",
        "",
        *metrics_table(explaining, "test", RATIONALE_METRICS[source], primary="rationale_agreement"),
        "",
    ]


def write_report(recipe: ClinicalRecipe, results: Sequence[TaskResult], seconds: float) -> dict[str, Any]:
    out = recipe.report_path
    models = {name: entry for r in results for name, entry in r.results.items()}
    bench = {"results": [row for r in results for row in r.bench.get("results", [])]}
    doc = run_summary(models, bench, f"{results[0].task}_teacher", seconds, tasks={
        r.task: {"teacher": f"{r.task}_teacher", "max_length": r.pack.task.max_length, "examples": r.pack.data.sizes(),
                 "rationales_kept": sum(bool(x) for x in r.pack.rationales),
                 "teacher_vs_baselines": teacher_vs_baselines(r.results, f"{r.task}_teacher", "accuracy")}
        for r in results
    }, recipe={"budgets": recipe.budgets, "methods": recipe.methods, "seeds": recipe.seeds})  # fmt: skip
    write_summary(out / "clinical.json", doc)
    lines = header("Clinical decision support: students that answer and explain, distilled from a MiniLM teacher",
                   doc, seconds, "clinical.json") + [
        "Teacher: all-MiniLM-L6-v2 fine-tuned per task (cross-encoder). Students: a T5-shaped encoder-decoder "
        f"({recipe.student_size}) on its own {recipe.vocab_size}-piece vocabulary whose encoder feeds a label head; "
        "only the label path is exported. Methods (survey 3.1): `label_only` (CE), `logit_kd` (CE + soft-label KD, "
        "Eq. 1), `step_by_step` (CE + the rationale as a second task, Eq. 4), `kpod` (step-by-step with IDF token "
        "weights and easy-to-hard rationale steps, Eq. 5). Rationales: PubMedQA's gold long answers; elsewhere the "
        "teacher's gradient x input evidence (its top content words), kept only when they state the gold label. "
        "Baseline: the majority class. PDR: accuracy drop rate when the case is written with clinical abbreviations "
        f"(first {recipe.robustness_examples} test cases). Rationale agreement: share of the first "
        f"{recipe.explain_examples} test cases whose generated rationale states the student's own label."
        + (" Every data budget trains for the optimizer steps the whole training set gets in "
           f"{recipe.student_trainer.epochs} epochs, checked on dev as often as a whole-set epoch, keeping the best "
           "dev checkpoint (a 10% student stopped after a tenth of the updates was still improving)."
           if recipe.equal_steps else ""), "",
    ]  # fmt: skip
    for result in results:
        lines += task_section(recipe, result)
    write(out / "clinical.md", lines)
    print(f"report: {out / 'clinical.md'}")
    return doc


def write_model_card(recipe: ClinicalRecipe, doc: dict[str, Any]) -> Path:
    return model_card(recipe.model_card_path, "Clinical decision-support students", doc,
                      recipe.report_path / "clinical.md", "accuracy", {
        "Intended use": ["Suggesting a likely diagnosis or answer, with the evidence it rests on, for a clinician to "
                         "check; never a diagnosis. Runs on local hardware: no case text leaves the machine."],
        "Training data": ["PubMedQA PQA-L (MIT), Symptom2Disease (license unverified: MIT / Apache-2.0 mirrors), "
                          "MTSamples-500 (CC0 on Kaggle / mtsamples.com terms)."],
        "Limitations": ["English only; Symptom2Disease descriptions are synthetic first-person texts, not notes; "
                        "MTSamples specialties overlap (a surgery note is often also orthopedic)."],
    })  # fmt: skip
