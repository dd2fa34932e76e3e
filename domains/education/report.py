"""The education report: ``education.md`` + ``education.json`` (the run summary) + plots, and the model card."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from domains.education.pipeline import TaskResult
from domains.education.recipe import EducationRecipe
from suite.results import invoked_command, model_entry, write_summary

METRICS = ("accuracy", "macro_f1", "qwk", "ece", "pdr_typos")
TASK_TITLES = {
    "sra": "Short-answer scoring: SemEval-2013 Task 7, SciEntsBank + Beetle (2-way)",
    "verifier": "Math-solution verifier: GSM8K GPT-3 solutions, split by problem",
}


def latency_row(result: TaskResult, model: str, batch: int = 1, variant: str = "fp32") -> dict | None:
    for row in result.bench.get("results", []):
        if (row["model"], row["runtime"], row["variant"], row["batch_size"]) == (
            model, "onnxruntime", variant, batch
        ):  # fmt: skip
            return row
    return None


def torch_row(result: TaskResult, model: str, batch: int) -> dict | None:
    for row in result.bench.get("results", []):
        if (row["model"], row["runtime"], row["batch_size"]) == (model, "torch", batch):
            return row
    return None


def summary(recipe: EducationRecipe, results: Sequence[TaskResult], seconds: float) -> dict[str, Any]:
    from suite.bench.machine import machine_info

    models = {}
    for result in results:
        for name, entry in result.models.items():
            models[name] = model_entry(entry["params"], entry["kd"], latency_row(result, name), entry["metrics"])
    first = results[0].task
    return {
        "command": invoked_command(),
        "machine": machine_info(),
        "teacher": f"{first}_teacher",
        "models": models,
        "tasks": {
            r.task: {
                "teacher": f"{r.task}_teacher",
                "max_length": r.max_length,
                "examples": r.sizes,
                "seed_study": {arch: seed_stats(runs) for arch, runs in r.seed_study.items()},
            }
            for r in results
        },
        "recipe": {
            "teacher": recipe.teacher,
            "teacher_model": recipe.teacher_model,
            "alpha": recipe.alpha,
            "temperature": recipe.temperature,
            "seeds": recipe.seeds,
        },  # fmt: skip
        "seconds": round(seconds, 1),
    }


def seed_stats(runs: dict[str, list[float]]) -> dict[str, Any]:
    """Per-seed accuracies with and without KD and their paired difference (mean, sample std)."""
    diffs = [a - b for a, b in zip(runs["kd"], runs["no_kd"], strict=True)]
    return {
        **runs,
        "kd_minus_no_kd_mean": statistics.fmean(diffs) if diffs else None,
        "kd_minus_no_kd_std": statistics.stdev(diffs) if len(diffs) > 1 else None,
    }


# -- markdown ----------------------------------------------------------------------------------------------------
def _f(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def metrics_table(result: TaskResult, split: str) -> list[str]:
    lines = ["| model | params | KD | " + " | ".join(METRICS) + " |", "|---" * (3 + len(METRICS)) + "|"]
    for name, entry in result.models.items():
        values = entry["metrics"][split]
        cells = [name, f"{entry['params']:,}", "yes" if entry["kd"] else "no"] + [_f(values[m]) for m in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def latency_table(result: TaskResult) -> list[str]:
    header = (
        "| model | ORT fp32 b1 p50 / p99 | ORT int8 b1 p50 | ORT fp32 b32 p50 | PyTorch b1 p50 | PyTorch b32 p50 |"
    )
    lines = [header,
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name in result.export_dirs:
        b1, int8, b32 = (
            latency_row(result, name),
            latency_row(result, name, variant="int8"),
            latency_row(result, name, 32),
        )
        t1, t32 = torch_row(result, name, 1), torch_row(result, name, 32)
        cells = [
            name,
            "–" if b1 is None else f"{b1['p50_ms']:.2f} / {b1['p99_ms']:.2f}",
            _int8_cell(result, name, int8),
            "–" if b32 is None else f"{b32['p50_ms']:.2f}",
            "–" if t1 is None else f"{t1['p50_ms']:.2f}",
            "–" if t32 is None else f"{t32['p50_ms']:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _int8_cell(result: TaskResult, name: str, row: dict | None) -> str:
    if row is not None:
        return f"{row['p50_ms']:.2f}"
    return "rejected (accuracy drop > 1 pt)" if "int8_rejected" in result.models[name] else "–"


def goals(result: TaskResult, stats: dict[str, Any]) -> list[str]:
    """The issue's goals, each with the measured value next to it (per task, tiny KD student vs teacher)."""
    teacher, student = result.models.get(f"{result.task}_teacher"), result.models.get(f"{result.task}_tiny_kd")
    if teacher is None or student is None:
        return []
    lines = ["| goal | measured | met |", "|---|---|---|"]
    for split in [s for s in ("unseen_answers", "unseen_questions", "test") if s in student["metrics"]]:
        ratio = student["metrics"][split]["accuracy"] / teacher["metrics"][split]["accuracy"]
        lines.append(
            f"| student accuracy >= 95% of teacher ({split}) | {ratio:.1%} | {'yes' if ratio >= 0.95 else 'no'} |"
        )
    if student["params"] and teacher["params"]:
        fewer = teacher["params"] / student["params"]
        lines.append(f"| >= 20x fewer parameters | {fewer:.0f}x | {'yes' if fewer >= 20 else 'no'} |")
    t_lat, s_lat = latency_row(result, f"{result.task}_teacher"), latency_row(result, f"{result.task}_tiny_kd")
    if t_lat and s_lat:
        faster = t_lat["p50_ms"] / s_lat["p50_ms"]
        lines.append(f"| >= 10x lower CPU latency (ORT fp32, batch 1, p50) | {faster:.1f}x | {_yes(faster >= 10)} |")
    tiny = stats.get("tiny", {})
    if tiny.get("kd_minus_no_kd_mean") is not None:
        mean, std = tiny["kd_minus_no_kd_mean"], tiny["kd_minus_no_kd_std"]
        spread = "" if std is None else f" ± {100 * std:.2f}"
        n = len(tiny["kd"])
        lines.append(f"| KD student beats no-KD (accuracy, first split, {n} seed(s)) | {100 * mean:+.2f}{spread} pt | "
                     f"{'yes' if mean > 0 else 'no'} |")  # fmt: skip
    return lines


def _yes(met: bool) -> str:
    return "yes" if met else "no"


def _accuracies(values: list[float]) -> str:
    return ", ".join(f"{a:.4f}" for a in values)


def seed_table(stats: dict[str, Any]) -> list[str]:
    lines = [
        "| student | KD accuracy per seed | no-KD accuracy per seed | KD − no-KD (mean ± std, pt) |",
        "|---|---|---|---|",
    ]
    for arch, s in stats.items():
        std = "" if s["kd_minus_no_kd_std"] is None else f" ± {100 * s['kd_minus_no_kd_std']:.2f}"
        mean = "–" if s["kd_minus_no_kd_mean"] is None else f"{100 * s['kd_minus_no_kd_mean']:+.2f}{std}"
        lines.append(f"| {arch} | {_accuracies(s['kd'])} | {_accuracies(s['no_kd'])} | {mean} |")
    return lines


def plots(result: TaskResult, out_dir: Path) -> list[str]:
    """Accuracy vs latency (first split, ORT batch 1) and reliability diagrams of the teacher and tiny students."""
    from suite.bench.report import plot_metric_vs_latency
    from suite.eval import reliability_diagram

    lines, split = [], next(iter(result.models[f"{result.task}_teacher"]["metrics"]))
    points = []
    for name, entry in result.models.items():
        for variant in ("fp32", "int8"):
            row = latency_row(result, name, variant=variant)
            if row is not None and variant == "fp32":
                points.append({"model": name, "variant": variant, "provider": "cpu", "p50_ms": row["p50_ms"],
                               "metric": entry["metrics"][split]["accuracy"]})  # fmt: skip
    if points:
        path = plot_metric_vs_latency(
            points, f"accuracy ({split})", out_dir / f"{result.task}_accuracy_vs_latency.png"
        )
        lines.append(f"![accuracy vs latency]({out_dir.name}/{path.name})")
    labels = None
    for name in (f"{result.task}_teacher", f"{result.task}_tiny_kd", f"{result.task}_tiny_no_kd"):
        entry = result.models.get(name)
        if entry is None:
            continue
        if labels is None:
            labels = result.labels[split]
        path = reliability_diagram(entry["probs"][split], labels, path=out_dir / f"reliability_{name}.png")
        lines.append(f"![reliability {name}]({out_dir.name}/{path.name})")
    return lines


def task_section(result: TaskResult, stats: dict[str, Any], out_dir: Path) -> list[str]:
    lines = [
        f"## {TASK_TITLES[result.task]}",
        "",
        "Examples: " + ", ".join(f"{k} {v:,}" for k, v in result.sizes.items()) + ".",
        "",
    ]
    lines += ["### Goals (tiny KD student vs teacher)", "", *goals(result, stats), ""]
    for split in result.models[f"{result.task}_teacher"]["metrics"]:
        lines += [f"### {split}", "", *metrics_table(result, split), ""]
    lines += ["### KD vs no KD over seeds (accuracy on the first test split)", "", *seed_table(stats), ""]
    if result.export_dirs:
        lines += [f"### Latency (ms; inputs of {result.max_length} tokens; onnxruntime CPU and eager PyTorch)", "",
                  *latency_table(result), ""]  # fmt: skip
    lines += [*plots(result, out_dir), ""]
    return lines


def write_report(recipe: EducationRecipe, results: Sequence[TaskResult], seconds: float) -> dict[str, Any]:
    report_dir = recipe.report_path
    figures = report_dir / "education"
    figures.mkdir(parents=True, exist_ok=True)
    doc = summary(recipe, results, seconds)
    write_summary(report_dir / "education.json", doc)
    machine = doc["machine"]
    lines = [
        "# Education pack: scoring students distilled from a cross-encoder teacher",
        "",
        f"Produced by `{doc['command']}` in {seconds / 60:.1f} min on {machine['cpu_model']} "
        f"({machine['physical_cores']} physical cores, {machine['ram_bytes'] / 2**30:.0f} GiB), "
        f"torch {machine['torch']}, "
        f"onnxruntime {machine.get('onnxruntime')}. Machine-readable: [education.json](education.json).",
        "",
        f"Teacher: `{recipe.teacher}` ({recipe.teacher_model}). Students: a tiny Transformer (<1M parameters, "
        f"its own {recipe.vocab_size}-piece vocabulary) and all-MiniLM-L6-v2 cut to 2 layers; each trained with "
        f"Eq. 1 (alpha {recipe.alpha}, tau {recipe.temperature}) and without KD. Metrics: accuracy, macro-F1, "
        "quadratic weighted kappa, ECE (15 bins), PDR = accuracy drop rate under typos in the answer "
        f"(first {recipe.robustness_examples} examples of each split).",
        "",
    ]
    for result in results:
        lines += task_section(result, doc["tasks"][result.task]["seed_study"], figures)
    (report_dir / "education.md").write_text("\n".join(lines))
    print(f"report: {report_dir / 'education.md'} and {report_dir / 'education.json'}")
    return doc


def write_model_card(recipe: EducationRecipe, results: Sequence[TaskResult], doc: dict[str, Any]) -> Path:
    """``<model_card_dir>/README.md``: what the released students are, how well they do, and where they fail."""
    out = recipe.model_card_path
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Education students (answer scoring and solution verification)",
        "",
        f"Built by `{doc['command']}`; every number below comes from [the report]({_relative(recipe, out)}).",
        "",
        "## Intended use",
        "Scoring short science answers (correct/incorrect) against a teacher-written reference answer, and flagging "
        "worked math solutions whose final answer is likely wrong, on school laptops (CPU, onnxruntime). A score is "
        "advice for a teacher, not a grade: review low-confidence items and every answer a student contests.",
        "",
        "## Models",
        "| model | task | params | KD | accuracy per test split | ORT CPU b1 p50 (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        for name, entry in result.models.items():
            summary_entry = doc["models"][name]
            accuracies = ", ".join(f"{s} {v['accuracy']:.3f}" for s, v in summary_entry["metrics"].items())
            latency = summary_entry["latency_ms_p50"]
            lines.append(f"| {name} | {result.task} | {entry['params']:,} | {'yes' if entry['kd'] else 'no'} | "
                         f"{accuracies} | {'–' if latency is None else f'{latency:.2f}'} |")  # fmt: skip
    lines += [
        "",
        "## Training data",
        "- SemEval-2013 Task 7 SciEntsBank + Beetle, 2-way labels, official splits "
        f"(license: {_license('semeval2013-sra')}).",
        "- GSM8K `example_model_solutions.jsonl`: real GPT-3 solutions labelled correct/incorrect, split by problem; "
        f"GSM8K train rationales augment the teacher only (license: {_license('gsm8k')}).",
        "",
        "## Limitations",
        "- English only; science questions of the SciEntsBank/Beetle kind. Unseen domains score lower than unseen "
        "answers (see the report), so check accuracy on a sample of your own questions before relying on it.",
        "- The verifier reads the solution text, it does not do the arithmetic: it is weak (see the report).",
        "- Inputs longer than the model's max length are truncated.",
        "- Students inherit the teacher's errors and biases; the teacher is a 22M-parameter cross-encoder.",
        "",
        "## Files",
        f"`distill run education` writes the exported models (ONNX, int8, tokenizer, spec.json with parity results "
        f"and sha256 of every file) to `{recipe.output_dir}/export/<model>/`; load one with "
        "`suite.export.runtime.load_exported`.",
        "",
    ]
    path = out / "README.md"
    path.write_text("\n".join(lines))
    return path


def _license(dataset: str) -> str:
    from suite.data import get_spec

    return get_spec(dataset).license


def _relative(recipe: EducationRecipe, card_dir: Path) -> str:
    import os

    return os.path.relpath(recipe.report_path / "education.md", card_dir)
