"""bench.md and the two plots, written from benchmark rows (one dict per model/variant/provider/batch)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

_COLUMNS = ["model", "variant", "provider", "batch", "tokens", "threads", "p50 ms", "p90 ms", "p99 ms", "items/s",
            "speed-up vs torch"]  # fmt: skip


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}" if value < 1 else f"{value:.{digits}f}"


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """One line per row: latency percentiles in ms, items/s, and torch-eager p50 / this p50 where measured."""
    per_token = any("ms_per_token" in r for r in rows)  # generation students: whole outputs per call
    columns = [*_COLUMNS, "tokens/call", "ms/token"] if per_token else _COLUMNS
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        speedup = r.get("speedup_vs_torch")
        cells = [
            r["model"],
            r["variant"],
            r["provider"],
            str(r["batch_size"]),
            "-" if r.get("seq_len") is None else f"{r['seq_len']} ({r.get('inputs', 'padded')})",
            str(r.get("intra_op_threads", "-")),
            _fmt(r["p50_ms"]),
            _fmt(r["p90_ms"]),
            _fmt(r["p99_ms"]),
            f"{r['throughput']:.1f}",
            "-" if speedup is None else f"{speedup:.2f}x",
        ]
        if per_token:
            cells += [_fmt(r.get("tokens_per_call")), _fmt(r.get("ms_per_token"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _load_line(load: Mapping[str, Any] | None) -> str:
    if not load:
        return ""
    before, after = load["before"], load["after"]
    return (
        f"Load average (1/5/15 min) before: {', '.join(f'{x:.2f}' for x in before)}; after: "
        + ", ".join(f"{x:.2f}" for x in after)
        + "."
    )


def markdown_report(report: Mapping[str, Any]) -> str:
    """bench.md: the machine, the settings, the table, and what was skipped and why."""
    m = report["machine"]
    s = report["settings"]
    head = [
        "# Edge latency benchmark",
        "",
        f"Machine: {m['cpu_model']} ({m['physical_cores']} physical / {m['logical_cores']} logical cores, "
        f"{m['ram_bytes'] / 2**30:.1f} GiB RAM), GPU: {m['gpu'] or 'none'}, {m['platform']}.",
        f"onnxruntime {m['onnxruntime']} (providers: {', '.join(m['onnxruntime_providers'])}), torch {m['torch']}.",
        f"Warm-up {s['warmup']} calls, {s['repeats']} timed calls per row; latency per call of a whole batch. The "
        "configurations of one model and batch are timed call by call in turn, eager PyTorch under "
        "torch.inference_mode with the same threads; speed-up = torch eager p50 / p50 on the same device, batch "
        "and inputs. Tokens: padded to the length, or the median of real examples' lengths (real).",
        _load_line(report.get("load_average")),
        "",
        markdown_table(report["results"]),
    ]
    notes = [f"- {n['model']} {n.get('variant', '')}: {n['reason']}" for n in report["skipped"]]
    notes += [f"- provider {p}: not available in this onnxruntime build" for p in report["unavailable_providers"]]
    return "\n".join(head + (["", "Not measured:", "", *notes] if notes else [])) + "\n"


def _series(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    lines: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        lines[f"{r['model']} {r['variant']} {r['provider']}"].append(r)
    return lines


def plot_latency_vs_batch(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """p50 latency (ms) against batch size, one line per model/variant/provider, log-log axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = sorted(_series(rows).items())
    # The legend sits beside the axes in columns of at most 30 lines: a pack with 17 students x variants has ~50.
    columns = max(1, math.ceil(len(series) / 30))
    fig, ax = plt.subplots(figsize=(7, max(4.5, 0.15 * min(len(series), 30) + 1)))
    for label, points in series:
        points = sorted(points, key=lambda r: r["batch_size"])
        ax.plot([r["batch_size"] for r in points], [r["p50_ms"] for r in points], marker="o", label=label)
    ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="p50 latency (ms)", title="Latency vs batch")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=columns)
    ax.grid(True, which="both", alpha=0.3)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_metric_vs_latency(points: Sequence[Mapping[str, Any]], metric: str, path: Path) -> Path:
    """Task metric against batch-1 p50 latency, one point per student/variant (a series per provider), so a user
    reads off the best student under a latency budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    by_provider: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for p in points:
        by_provider[p["provider"]].append(p)
    for provider, group in sorted(by_provider.items()):
        ax.scatter([p["p50_ms"] for p in group], [p["metric"] for p in group], label=provider)
        for p in group:
            ax.annotate(f"{p['model']} {p['variant']}", (p["p50_ms"], p["metric"]), fontsize=7)
    ax.set(xscale="log", xlabel="batch-1 p50 latency (ms)", ylabel=metric, title=f"{metric} vs latency")
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
