"""The shared report writer: every pack's markdown report and model card start from the same tables.

A pack adds its own sections (goals, plots, domain tables) as lists of markdown lines; the tables here carry the
run's trivial baselines and flag every model that does not beat them, so no goal is judged against a teacher or
student that a constant predictor matches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from suite.runner import ModelResult, beats_baselines, fastest_latency, latency, summary_models


def number(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return (
        f"{value:.{digits}f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else str(value)
    )


def run_summary(
    results: Mapping[str, ModelResult], bench: Mapping[str, Any], teacher: str, seconds: float, **extra: Any
) -> dict[str, Any]:
    """The run summary (:mod:`suite.results` schema): command, machine, teacher, every model, wall time, and the
    pack's own keys."""
    from suite.bench.machine import machine_info
    from suite.results import invoked_command

    return {"command": invoked_command(), "machine": bench.get("machine") or machine_info(), "teacher": teacher,
            "models": summary_models(results, bench), **extra, "seconds": round(seconds, 1)}  # fmt: skip


def header(title: str, summary: Mapping[str, Any], seconds: float, json_name: str) -> list[str]:
    machine = summary["machine"]
    bf16 = {True: ", bf16 instructions", False: ", no bf16 instructions"}.get(machine.get("cpu_bf16"), "")
    return [
        f"# {title}",
        "",
        f"Produced by `{summary['command']}` in {seconds / 60:.1f} min on {machine.get('cpu_model', 'unknown CPU')} "
        f"({machine.get('physical_cores', '?')} physical cores{bf16}, {machine.get('ram_bytes', 0) / 2**30:.0f} GiB), "
        f"torch {machine.get('torch', '?')}, onnxruntime {machine.get('onnxruntime', '?')}. "
        f"Machine-readable: [{json_name}]({json_name}).",
        "",
    ]


def _cell(entry: ModelResult, split: str, metric: str, digits: int = 3) -> str:
    if metric not in entry.metrics[split]:
        return "–"  # not measured for this model (a baseline has no teacher to agree with)
    mean = number(entry.metrics[split][metric], digits)
    if len(entry.seeds) < 2:
        return mean
    return f"{mean} ± {number(entry.std[split][metric], digits)}"


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
    names: Sequence[str], bench: Mapping[str, Any], columns: Sequence[tuple[Any, ...]],
    rejected: Mapping[str, Mapping[str, str]] | None = None,
) -> list[str]:  # fmt: skip
    """One row per exported model; ``columns`` are ``(label, runtime, variant, batch)``, or with a fifth item, the
    thread count (otherwise the first measured). A variant the export gate rejected reads "rejected" (the reason is
    in the export's spec.json)."""
    lines = ["| model | " + " | ".join(c[0] for c in columns) + " |", "|---" * (1 + len(columns)) + "|"]
    for name in names:
        cells = []
        for _, runtime, variant, batch, *threads in columns:
            row = latency(bench, name, runtime, variant, batch, *threads)
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


def _met(met: bool) -> str:
    return "yes" if met else "**no**"


TEACHER_MARGIN = 0.02  # a teacher must beat every baseline by this much (absolute) before a goal is judged against it


def teacher_vs_baselines(results: Mapping[str, ModelResult], teacher: str, metric: str,
                         margin: float = TEACHER_MARGIN) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Per split: the teacher's ``metric``, the best baseline's, and whether the teacher leads it by ``margin``. It
    goes into the run summary; a split where it does not lead judges no goal."""
    out = {}
    for split, values in results[teacher].metrics.items():
        bases = {n: r.metrics[split][metric] for n, r in results.items()
                 if r.role == "baseline" and metric in r.metrics.get(split, {})}  # fmt: skip
        if metric not in values or not bases:
            continue
        best = max(bases, key=bases.__getitem__)
        out[split] = {"metric": metric, "teacher": values[metric], "best_baseline": best, "baseline": bases[best],
                      "margin": margin, "beats": values[metric] >= bases[best] + margin}  # fmt: skip
    return out


def teacher_flags(checks: Mapping[str, Mapping[str, Any]], teacher: str) -> list[str]:
    """A bold warning per split where the teacher does not lead the baselines (empty when it does everywhere)."""
    return [f"**Flag: `{teacher}` does not beat the baselines on {split} by {c['margin']:.0%} "
            f"({c['metric']} {c['teacher']:.3f} vs `{c['best_baseline']}` {c['baseline']:.3f}): the distillation "
            f"goals on {split} are not applicable.**" for split, c in checks.items() if not c["beats"]]  # fmt: skip


def retention_goals(
    results: Mapping[str, ModelResult], bench: Mapping[str, Any], teacher: str, student: str, metric: str,
    retain: float = 0.95, fewer: float = 20, faster: float = 10,
) -> list[str]:  # fmt: skip
    """The usual distillation goals, each with its measured value: the student keeps ``retain`` of the teacher's
    ``metric`` on every split, with ``fewer`` x fewer parameters and ``faster`` x lower batch-1 ORT latency. A split
    on which the teacher does not beat the baselines judges no goal (a student matching it proves nothing)."""
    if teacher not in results or student not in results:
        return []
    t, s = results[teacher], results[student]
    lines = ["| goal | measured | met |", "|---|---|---|"]
    checks = teacher_vs_baselines(results, teacher, metric)
    for split in s.metrics:
        c = checks.get(split)
        if c is not None and not c["beats"]:
            lines.append(f"| teacher beats every baseline by {c['margin']:.0%} ({split}) | no: {c['teacher']:.3f} vs "
                         f"{c['baseline']:.3f} | not applicable: **no goal is judged on {split}** |")  # fmt: skip
            continue
        ratio = s.metrics[split][metric] / t.metrics[split][metric]
        lines.append(
            f"| student {metric} >= {retain:.0%} of teacher ({split}) | {ratio:.1%} | {_met(ratio >= retain)} |"
        )
    if s.params and t.params:
        lines.append(
            f"| >= {fewer:g}x fewer parameters | {t.params / s.params:.0f}x | {_met(t.params / s.params >= fewer)} |"
        )
    lines += latency_goal(bench, teacher, student, faster)
    return lines


def latency_goal(bench: Mapping[str, Any], teacher: str, student: str, faster: float) -> list[str]:
    """The batch-1 ORT fp32 p50 ratio, at the benchmark's first thread count for both. Where more thread counts were
    measured, the goal is judged with each model at its faster one (how each would be deployed), the same-threads
    ratio beside it."""
    t_lat, s_lat = latency(bench, teacher), latency(bench, student)
    if not (t_lat and s_lat):
        return []
    same = t_lat["p50_ms"] / s_lat["p50_ms"]
    t_best, s_best = fastest_latency(bench, teacher), fastest_latency(bench, student)
    best = t_best["p50_ms"] / s_best["p50_ms"]
    goal = f">= {faster:g}x lower CPU latency (ORT fp32, batch 1, p50"
    if t_best is t_lat and s_best is s_lat:
        return [f"| {goal}) | {same:.1f}x | {_met(same >= faster)} |"]
    threads = f"{t_best.get('intra_op_threads')} vs {s_best.get('intra_op_threads')} threads"
    return [f"| {goal}; each model at its faster thread count) | "
            f"{best:.1f}x ({t_best['p50_ms']:.2f} vs {s_best['p50_ms']:.2f} ms, {threads}; "
            f"{same:.1f}x at {t_lat.get('intra_op_threads')} threads each) | {_met(best >= faster)} |"]  # fmt: skip


def split_columns_table(
    results: Mapping[str, ModelResult], splits: Sequence[str], metric: str, digits: int = 3
) -> list[str]:
    """One metric, one column per split (mean ± std over seeds) and their mean: e.g. closed-loop scenarios."""
    import statistics

    lines = ["| model | seeds | " + " | ".join(splits) + " | mean |", "|---" * (len(splits) + 3) + "|"]
    for name, entry in results.items():
        label = name if entry.role == "student" else f"{name} ({entry.role})"
        cells = [_cell(entry, split, metric, digits) for split in splits]
        mean = statistics.fmean(entry.metrics[split][metric] for split in splits)
        lines.append(f"| {label} | {len(entry.seeds) or '–'} | " + " | ".join(cells) + f" | {number(mean, digits)} |")
    return lines


def split_bars(results: Mapping[str, ModelResult], splits: Sequence[str], metric: str, path: Path, title: str) -> Path:
    """Grouped bars of one metric per split, one bar per model (error bars: std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    width = 0.8 / len(results)
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(splits) + 0.4 * len(results)), 4))
    for i, (name, entry) in enumerate(results.items()):
        means = [entry.metrics[s][metric] for s in splits]
        stds = [entry.std[s][metric] for s in splits] if len(entry.seeds) > 1 else None
        label = name if entry.role == "student" else f"{name} ({entry.role})"
        ax.bar(np.arange(len(splits)) + i * width, means, width, yerr=stds, label=label, capsize=2)
    ax.set_xticks(np.arange(len(splits)) + 0.4 - width / 2, splits)
    ax.set(ylabel=metric, title=title)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def metric_latency_plot(results: Mapping[str, ModelResult], bench: Mapping[str, Any], split: str, metric: str,
                        path: Path) -> Path | None:  # fmt: skip
    """``metric`` on ``split`` against batch-1 ORT fp32 p50 latency, one point per exported model."""
    from suite.bench.report import plot_metric_vs_latency

    measured = {
        name: row for name, entry in results.items() if split in entry.metrics and (row := latency(bench, name))
    }
    points = [{"model": name, "variant": "fp32", "provider": "cpu", "p50_ms": row["p50_ms"],
               "metric": results[name].metrics[split][metric]} for name, row in measured.items()]  # fmt: skip
    return plot_metric_vs_latency(points, f"{metric} ({split})", path) if points else None


def model_card(
    path: Path, title: str, summary: Mapping[str, Any], report: Path, metric: str,
    sections: Mapping[str, Sequence[str]],
) -> Path:  # fmt: skip
    """``path/README.md``: the title, the command and report every number comes from, a table of the run's models
    (first, exported seed: ``metric`` per test split and batch-1 ORT CPU latency), then the pack's ``sections``
    (heading -> lines: intended use, training data, limitations, files)."""
    import os

    lines = [f"# {title}", "",
             f"Built by `{summary['command']}`; every number below comes from "
             f"[the report]({os.path.relpath(report, path)}).", "",
             f"## Models (the exported, first-seed model of each variant; {metric} per split)",
             f"| model | params | KD | {metric} | ORT CPU b1 p50 (ms) |", "|---|---|---|---|---|"]  # fmt: skip
    for name, entry in summary["models"].items():
        measured = {split: v[metric] for split, v in entry["metrics_first_seed"].items() if metric in v}
        values = ", ".join(f"{split} {number(v)}" for split, v in measured.items())
        lines.append(f"| {name} | {number(entry['params'] or None)} | {'yes' if entry['kd'] else 'no'} | {values} "
                     f"| {number(entry['latency_ms_p50'], 2)} |")  # fmt: skip
    for heading, body in sections.items():
        lines += ["", f"## {heading}", *body]
    return write_markdown(path / "README.md", [*lines, ""])


def write_markdown(path: Path, lines: Sequence[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(line for line in lines if line is not None) + "\n")
    return path
