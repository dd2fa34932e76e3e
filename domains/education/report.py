"""The education report: ``education.md`` + ``education.json`` (the run summary) + plots, and the model card. The
tables come from the shared writer (:mod:`suite.report`); this module adds the goals, the KD study and the plots."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from domains.education.recipe import EducationRecipe
from suite.pair_pack import PairTaskResult as TaskResult
from suite.pair_pack import labels_of
from suite.report import header, latency_table, metrics_table, number, paired_seed_table, write_markdown
from suite.results import invoked_command, write_summary
from suite.runner import beats_baselines, latency, rejected_variants, summary_models

METRICS = ("accuracy", "macro_f1", "qwk", "ece", "pdr_typos")
TASK_TITLES = {
    "sra": "Short-answer scoring: SemEval-2013 Task 7, SciEntsBank + Beetle (2-way)",
    "verifier": "Math-solution verifier: GSM8K GPT-3 solutions, split by problem",
}
LATENCY_COLUMNS = [("ORT fp32 b1 p50 / p99", "onnxruntime", "fp32", 1), ("ORT int8 b1", "onnxruntime", "int8", 1),
                   ("ORT fp32 b32", "onnxruntime", "fp32", 32), ("PyTorch b1", "torch", "", 1),
                   ("PyTorch b32", "torch", "", 32)]  # fmt: skip


def summary(recipe: EducationRecipe, results: Sequence[TaskResult], seconds: float) -> dict[str, Any]:
    from suite.bench.machine import machine_info

    models: dict[str, Any] = {}
    for result in results:
        models |= summary_models(result.results, result.bench)
    return {
        "command": invoked_command(), "machine": machine_info(), "teacher": f"{results[0].task}_teacher",
        "models": models,
        "tasks": {r.task: {"teacher": f"{r.task}_teacher", "max_length": r.pack.task.max_length,
                           "examples": r.pack.data.sizes()} for r in results},
        "recipe": {"teacher": recipe.teacher, "teacher_model": recipe.teacher_model, "variants": recipe.variants,
                   "kd": {"temperature": recipe.kd.temperature}, "seeds": recipe.seeds},
        "seconds": round(seconds, 1),
    }  # fmt: skip


def goals(result: TaskResult) -> list[str]:
    """The issue's goals, each with the measured value next to it (per task, tiny KD student vs teacher)."""
    task, models = result.task, result.results
    teacher, student = models.get(f"{task}_teacher"), models.get(f"{task}_tiny_kd")
    if teacher is None or student is None:
        return []
    lines = ["| goal | measured | met |", "|---|---|---|"]
    for split in student.metrics:
        if not beats_baselines(models, f"{task}_teacher", split, "accuracy"):
            lines.append(f"| teacher beats the majority class ({split}) | no | **no goal is judged on {split}** |")
            continue
        ratio = student.metrics[split]["accuracy"] / teacher.metrics[split]["accuracy"]
        lines.append(f"| student accuracy >= 95% of teacher ({split}) | {ratio:.1%} | {_yes(ratio >= 0.95)} |")
    if student.params and teacher.params:
        fewer = teacher.params / student.params
        lines.append(f"| >= 20x fewer parameters | {fewer:.0f}x | {_yes(fewer >= 20)} |")
    t_lat, s_lat = latency(result.bench, f"{task}_teacher"), latency(result.bench, f"{task}_tiny_kd")
    if t_lat and s_lat:
        faster = t_lat["p50_ms"] / s_lat["p50_ms"]
        lines.append(f"| >= 10x lower CPU latency (ORT fp32, batch 1, p50) | {faster:.1f}x | {_yes(faster >= 10)} |")
    return lines


def _yes(met: bool) -> str:
    return "yes" if met else "no"


def plots(result: TaskResult, out_dir: Path) -> list[str]:
    """Accuracy vs latency (first split, ORT batch 1) and reliability diagrams of the teacher and tiny students."""
    from suite.bench.report import plot_metric_vs_latency
    from suite.eval import reliability_diagram

    split, lines, points = next(iter(result.pack.data.tests)), [], []
    for name, entry in result.results.items():
        row = latency(result.bench, name)
        if row is not None:
            points.append({"model": name, "variant": "fp32", "provider": "cpu", "p50_ms": row["p50_ms"],
                           "metric": entry.metrics[split]["accuracy"]})  # fmt: skip
    if points:
        path = plot_metric_vs_latency(
            points, f"accuracy ({split})", out_dir / f"{result.task}_accuracy_vs_latency.png"
        )
        lines.append(f"![accuracy vs latency]({out_dir.name}/{path.name})")
    labels = labels_of(result.pack.data.tests[split])
    for name in (f"{result.task}_teacher", f"{result.task}_tiny_kd", f"{result.task}_tiny_no_kd"):
        if name in result.pack.probs:
            path = reliability_diagram(
                result.pack.probs[name][split], labels, path=out_dir / f"reliability_{name}.png"
            )
            lines.append(f"![reliability {name}]({out_dir.name}/{path.name})")
    return lines


def task_section(recipe: EducationRecipe, result: TaskResult, out_dir: Path) -> list[str]:
    task, first = result.task, next(iter(result.pack.data.tests))
    lines = [f"## {TASK_TITLES[task]}", "",
             "Examples: " + ", ".join(f"{k} {v:,}" for k, v in result.pack.data.sizes().items()) + ".", "",
             "### Goals (tiny KD student vs teacher)", "", *goals(result), ""]  # fmt: skip
    for split in result.pack.data.tests:
        lines += [f"### {split}", "", *metrics_table(result.results, split, METRICS, primary="accuracy"), ""]
    pairs = [(arch, f"{task}_{arch}_kd", f"{task}_{arch}_no_kd") for arch in recipe.students]
    lines += [f"### KD vs no KD over seeds (accuracy on {first})", "",
              *paired_seed_table(result.results, pairs, first, "accuracy"), ""]  # fmt: skip
    if result.exports:
        rejected = {name: rejected_variants(path) for name, path in result.exports.items()}
        lines += [f"### Latency (ms, p50 / p99; inputs of {result.pack.task.max_length} tokens)", "",
                  *latency_table(list(result.exports), result.bench, LATENCY_COLUMNS, rejected), ""]  # fmt: skip
    return lines + [*plots(result, out_dir), ""]


def write_report(recipe: EducationRecipe, results: Sequence[TaskResult], seconds: float) -> dict[str, Any]:
    report_dir = recipe.report_path
    figures = report_dir / "education"
    figures.mkdir(parents=True, exist_ok=True)
    doc = summary(recipe, results, seconds)
    write_summary(report_dir / "education.json", doc)
    weights = "; ".join(f"`{n}` = " + " + ".join(f"{w:g} x {t}" for t, w in terms.items())
                        for n, terms in recipe.variants.items())  # fmt: skip
    lines = header("Education pack: scoring students distilled from a cross-encoder teacher", doc, seconds,
                   "education.json") + [
        f"Teacher: `{recipe.teacher}` ({recipe.teacher_model}). Students: a tiny Transformer (<1M parameters, its own "
        f"{recipe.vocab_size}-piece vocabulary) and all-MiniLM-L6-v2 cut to 2 layers, each trained with every loss "
        f"variant ({weights}; KD temperature {recipe.kd.temperature:g}; `task` is hard-label CE, `kd` soft-label KD, "
        "survey Eq. 1). The majority class of the training labels is the baseline every model must beat. Metrics: "
        "accuracy, macro-F1, quadratic weighted kappa, ECE (15 bins), PDR = accuracy drop rate under typos in the "
        f"answer (first {recipe.robustness_examples} examples of each split). Mean ± std over training seeds.", "",
    ]  # fmt: skip
    for result in results:
        lines += task_section(recipe, result, figures)
    write_markdown(report_dir / "education.md", lines)
    print(f"report: {report_dir / 'education.md'} and {report_dir / 'education.json'}")
    return doc


def write_model_card(recipe: EducationRecipe, results: Sequence[TaskResult], doc: dict[str, Any]) -> Path:
    """``<model_card_dir>/README.md``: what the released students are, how well they do, and where they fail."""
    out = recipe.model_card_path
    report = os.path.relpath(recipe.report_path / "education.md", out)
    lines = ["# Education students (answer scoring and solution verification)", "",
             f"Built by `{doc['command']}`; every number below comes from [the report]({report}).", "",
             "## Intended use",
             "Scoring short science answers (correct/incorrect) against a teacher-written reference answer, and "
             "flagging worked math solutions whose final answer is likely wrong, on school laptops (CPU, "
             "onnxruntime). "
             "A score is advice for a teacher, not a grade: review low-confidence items and every answer a student "
             "contests.", "",
             "## Models (the exported, first-seed model of each variant)",
             "| model | params | KD | accuracy per test split | ORT CPU b1 p50 (ms) |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name, entry in doc["models"].items():
        accuracies = ", ".join(f"{s} {v['accuracy']:.3f}" for s, v in entry["metrics_first_seed"].items())
        lines.append(f"| {name} | {number(entry['params'] or None)} | {'yes' if entry['kd'] else 'no'} | {accuracies} "
                     f"| {number(entry['latency_ms_p50'], 2)} |")  # fmt: skip
    lines += [
        "", "## Training data",
        "- SemEval-2013 Task 7 SciEntsBank + Beetle, 2-way labels, official splits "
        f"(license: {_license('semeval2013-sra')}).",
        "- GSM8K `example_model_solutions.jsonl`: real GPT-3 solutions labelled correct/incorrect, split by problem; "
        f"GSM8K train rationales augment the teacher only (license: {_license('gsm8k')}).", "",
        "## Limitations",
        "- English only; science questions of the SciEntsBank/Beetle kind. Unseen domains score lower than unseen "
        "answers (see the report), so check accuracy on a sample of your own questions before relying on it.",
        "- The verifier reads the solution text, it does not do the arithmetic: it is weak (see the report).",
        "- Inputs longer than the model's max length are truncated.",
        "- Students inherit the teacher's errors and biases; the teacher is a 22M-parameter cross-encoder.", "",
        "## Files",
        "`distill run education` writes the exported models (ONNX, int8 where it passes its accuracy gate, tokenizer, "
        f"spec.json with parity results and sha256 of every file) to `{recipe.output_dir}/export/<model>/`; load one "
        "with `suite.export.runtime.load_exported`.", "",
    ]  # fmt: skip
    return write_markdown(out / "README.md", lines)


def _license(dataset: str) -> str:
    from suite.data import get_spec

    return get_spec(dataset).license
