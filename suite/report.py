"""The shared report writer: every pack's markdown report and model card start from the same tables.

A pack adds its own sections (goals, plots, domain tables) as lists of markdown lines; the tables here carry the
run's trivial baselines and flag every model that does not beat them, so no goal is judged against a teacher or
student that a constant predictor matches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from suite.runner import ModelResult, beats_baselines, latency


def number(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return (
        f"{value:.{digits}f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else str(value)
    )


def header(title: str, summary: Mapping[str, Any], seconds: float, json_name: str) -> list[str]:
    machine = summary["machine"]
    return [
        f"# {title}",
        "",
        f"Produced by `{summary['command']}` in {seconds / 60:.1f} min on {machine.get('cpu_model', 'unknown CPU')} "
        f"({machine.get('physical_cores', '?')} physical cores, {machine.get('ram_bytes', 0) / 2**30:.0f} GiB), "
        f"torch {machine.get('torch', '?')}, onnxruntime {machine.get('onnxruntime', '?')}. "
        f"Machine-readable: [{json_name}]({json_name}).",
        "",
    ]


def _cell(entry: ModelResult, split: str, metric: str) -> str:
    mean = number(entry.metrics[split][metric])
    if len(entry.seeds) < 2:
        return mean
    return f"{mean} ± {number(entry.std[split][metric])}"


def metrics_table(
    results: Mapping[str, ModelResult], split: str, metrics: Sequence[str], primary: str, higher_is_better: bool = True
) -> list[str]:
    """model | params | KD | seeds | metrics (mean ± std over seeds). Teachers and baselines are marked; a model that
    does not beat every baseline on ``primary`` is flagged in bold."""
    lines = ["| model | params | KD | seeds | " + " | ".join(metrics) + " |", "|---" * (4 + len(metrics)) + "|"]
    for name, entry in results.items():
        if split not in entry.metrics:
            continue
        baseline = entry.role == "baseline"
        label = f"{name} ({entry.role})" if entry.role != "student" else name
        if not baseline and not beats_baselines(results, name, split, primary, higher_is_better):
            label = f"**{name} (does not beat a baseline on {primary})**"
        params = "–" if baseline or not entry.params else f"{entry.params:,}"
        cells = [label, params, "yes" if entry.kd else "no", str(len(entry.seeds) or "–")]
        lines.append("| " + " | ".join(cells + [_cell(entry, split, m) for m in metrics]) + " |")
    return lines


def latency_table(
    names: Sequence[str], bench: Mapping[str, Any], columns: Sequence[tuple[str, str, str, int]],
    rejected: Mapping[str, Mapping[str, str]] | None = None,
) -> list[str]:  # fmt: skip
    """One row per exported model; ``columns`` are ``(label, runtime, variant, batch)``. A variant the export gate
    rejected reads "rejected" (the reason is in the export's spec.json)."""
    lines = ["| model | " + " | ".join(c[0] for c in columns) + " |", "|---" * (1 + len(columns)) + "|"]
    for name in names:
        cells = []
        for _, runtime, variant, batch in columns:
            row = latency(bench, name, runtime, variant, batch)
            if row is not None:
                cells.append(f"{row['p50_ms']:.2f} / {row['p99_ms']:.2f}")
            elif variant in (rejected or {}).get(name, {}):
                cells.append("rejected by its accuracy gate")
            else:
                cells.append("–")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def paired_seed_table(
    results: Mapping[str, ModelResult], pairs: Sequence[tuple[str, str, str]], split: str, metric: str
) -> list[str]:
    """``(label, with_name, without_name)`` pairs trained on the same seeds: per-seed values and the paired
    difference (mean ± sample std, in points of ``metric`` x 100)."""
    import statistics

    lines = ["| student | with, per seed | without, per seed | difference (mean ± std, pt) |", "|---|---|---|---|"]
    for label, with_name, without_name in pairs:
        if with_name not in results or without_name not in results:
            continue
        a, b = results[with_name], results[without_name]
        seeds = [s for s in a.seeds if s in b.seeds]
        xs = [a.per_seed[s][split][metric] for s in seeds]
        ys = [b.per_seed[s][split][metric] for s in seeds]
        diffs = [100 * (x - y) for x, y in zip(xs, ys, strict=True)]
        spread = f" ± {statistics.stdev(diffs):.2f}" if len(diffs) > 1 else ""
        mean = f"{statistics.fmean(diffs):+.2f}{spread}" if diffs else "–"
        lines.append(f"| {label} | {', '.join(f'{x:.4f}' for x in xs)} | {', '.join(f'{y:.4f}' for y in ys)} "
                     f"| {mean} |")  # fmt: skip
    return lines


def write_markdown(path: Path, lines: Sequence[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(line for line in lines if line is not None) + "\n")
    return path
