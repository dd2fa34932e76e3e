"""The machine-readable summary every ``distill run`` writes next to its report.

Schema (one JSON object)::

    {"command": str, "machine": {...}, "teacher": <name of the teacher's entry in models>,
     "models": {name: {"params": int, "kd": bool, "latency_ms_p50": float, "latency_ms_p99": float,
                       "metrics": {split: {metric: float}}}},
     ...any extra keys a domain adds}

Latency is batch-1 onnxruntime CPU; ``kd`` is false for the teacher and for students trained without KD. A value
that was not measured is ``null`` (never a made-up number).
"""

from __future__ import annotations

import json
import math
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MODEL_KEYS = ("params", "kd", "latency_ms_p50", "latency_ms_p99", "metrics")


def invoked_command() -> str:
    """The command line this process was started with, as a user would type it (``distill run ...``)."""
    program = Path(sys.argv[0]).name
    return shlex.join(["distill" if program in ("distill", "cli.py", "-c") else program, *sys.argv[1:]])


def model_entry(
    params: int, kd: bool, latency: Mapping[str, float] | None, metrics: Mapping[str, Mapping[str, float]]
) -> dict[str, Any]:
    """One ``models`` entry; ``latency`` is a benchmark row with ``p50_ms``/``p99_ms`` (None: not measured)."""
    return {
        "params": int(params),
        "kd": bool(kd),
        "latency_ms_p50": None if latency is None else float(latency["p50_ms"]),
        "latency_ms_p99": None if latency is None else float(latency["p99_ms"]),
        "metrics": finite_metrics(metrics),
    }


def finite_metrics(metrics: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float | None]]:
    """``{split: {metric: value}}`` with NaN and infinities as None (JSON has no NaN)."""
    return {split: {k: _finite(v) for k, v in values.items()} for split, values in metrics.items()}


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None  # JSON has no NaN; a metric undefined on a split is null


def validate_summary(summary: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` listing every way ``summary`` departs from the schema."""
    problems = [f"missing key '{k}'" for k in ("command", "machine", "teacher", "models") if k not in summary]
    models = summary.get("models", {})
    if not isinstance(models, Mapping):
        raise ValueError("run summary: models must map model names to entries")
    if "teacher" in summary and summary["teacher"] not in models:
        problems.append(f"teacher '{summary['teacher']}' is not an entry of models")
    for name, entry in models.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("metrics", {}), Mapping):
            problems.append(f"models.{name} must be a mapping with a metrics mapping")
            continue
        problems += [f"models.{name}: missing '{k}'" for k in MODEL_KEYS if k not in entry]
        if not isinstance(entry.get("params"), int) or isinstance(entry.get("params"), bool):
            problems.append(f"models.{name}.params must be an int")
        if not isinstance(entry.get("kd"), bool):
            problems.append(f"models.{name}.kd must be a bool")
        for split, values in entry.get("metrics", {}).items():
            if not isinstance(values, Mapping):
                problems.append(f"models.{name}.metrics.{split} must map metric names to values")
    if problems:
        raise ValueError("run summary: " + "; ".join(problems))


def write_summary(path: str | Path, summary: Mapping[str, Any]) -> Path:
    """Validate and write ``summary`` as indented JSON; returns the path."""
    validate_summary(summary)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")  # NaN is not JSON; model_entry maps it
    return path
