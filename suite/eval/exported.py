"""Evaluate an exported ONNX text classifier on labelled JSONL records (what ``distill eval`` calls).

Runs with the torch-free runtime, so the numbers are those of the deployed model, not of its PyTorch original.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from suite.errors import MalformedRowError


def read_labelled_jsonl(path: str | Path, text_field: str, pair_field: str | None, label_field: str) -> list[dict]:
    """Records with ``text_field`` (and ``pair_field``) strings and an integer or label-name ``label_field``."""
    records = []
    path = Path(path)
    with path.open(encoding="utf-8") as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise MalformedRowError(path, number, f"invalid JSON ({error.msg})") from None
            fields = [text_field, label_field] + ([pair_field] if pair_field else [])
            missing = [f for f in fields if not isinstance(row, dict) or f not in row]
            if missing:
                raise MalformedRowError(path, number, f"missing field '{missing[0]}'")
            records.append(row)
    return records


def _label_index(value: Any, labels: list[str], where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{where}: label must be an integer or a label name, got {value!r}")
    if isinstance(value, int):
        return value
    if value not in labels:
        raise ValueError(f"{where}: unknown label '{value}' (known: {', '.join(labels)})")
    return labels.index(value)


def evaluate_exported_classifier(
    export_dir: str | Path,
    data: str | Path,
    text_field: str = "text",
    pair_field: str | None = "text_pair",
    label_field: str = "label",
    variant: str = "fp32",
    batch_size: int = 64,
) -> dict[str, Any]:
    """Accuracy, macro-F1, quadratic weighted kappa, ECE and mean predictive entropy of the exported model."""
    from suite.eval import accuracy, expected_calibration_error, macro_f1, predictive_entropy, quadratic_weighted_kappa
    from suite.export.runtime import load_exported

    model = load_exported(export_dir, variant=variant)
    records = read_labelled_jsonl(data, text_field, pair_field, label_field)
    labels = [_label_index(r[label_field], list(model.labels), f"{data}:{i + 1}") for i, r in enumerate(records)]
    probabilities = []
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        pairs = [r[pair_field] for r in chunk] if pair_field else None
        probabilities.append(model.predict_proba([r[text_field] for r in chunk], pairs))
    probs = np.concatenate(probabilities)
    predictions = probs.argmax(-1).tolist()
    return {
        "examples": len(records),
        "variant": variant,
        "accuracy": accuracy(predictions, labels),
        "macro_f1": macro_f1(predictions, labels),
        "quadratic_weighted_kappa": quadratic_weighted_kappa(predictions, labels),
        "ece": expected_calibration_error(probs, labels),
        "mean_entropy": float(predictive_entropy(probs).mean()),
    }
