"""Evaluate an exported ONNX text classifier on labelled JSONL records (what ``distill eval`` calls).

Runs with the torch-free runtime, so the numbers are those of the deployed model, not of its PyTorch original.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from suite.errors import DataError, MalformedRowError


def read_labelled_jsonl(
    path: str | Path, text_field: str, pair_field: str | None, label_field: str, label_names: list[str]
) -> tuple[list[dict], list[int]]:
    """Records with ``text_field`` (and ``pair_field``) strings, and their labels as class indices.

    A label is a class index in ``0..len(label_names) - 1`` or one of ``label_names``; anything else is an error
    naming the file and line (an out-of-range index would otherwise count as a silent miss).
    """
    records, labels = [], []
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
            labels.append(_label_index(row[label_field], label_names, f"{path}:{number}"))
    return records, labels


def _label_index(value: Any, labels: list[str], where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise DataError(f"{where}: label must be an integer or a label name, got {value!r}")
    if isinstance(value, int):
        if not 0 <= value < len(labels):
            last = len(labels) - 1
            raise DataError(f"{where}: label {value} is out of range for a {len(labels)}-class model (0..{last})")
        return value
    if value not in labels:
        raise DataError(f"{where}: unknown label '{value}' (known: {', '.join(labels)})")
    return labels.index(value)


def evaluate_exported_classifier(
    export_dir: str | Path,
    data: str | Path,
    text_field: str = "text",
    pair_field: str | None = "text_pair",
    label_field: str = "label",
    variant: str = "fp32",
    batch_size: int = 64,
    rating_range: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Accuracy, macro-F1, ECE and mean predictive entropy of the exported model.

    Quadratic weighted kappa only with ``rating_range`` (the lowest and highest class index of an ordinal scale):
    on nominal classes the distance between class indices means nothing, so neither would the kappa.
    """
    from suite.eval import accuracy, expected_calibration_error, macro_f1, predictive_entropy, quadratic_weighted_kappa
    from suite.export.runtime import load_exported

    model = load_exported(export_dir, variant=variant)
    records, labels = read_labelled_jsonl(data, text_field, pair_field, label_field, list(model.labels))
    probabilities = []
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        pairs = [r[pair_field] for r in chunk] if pair_field else None
        probabilities.append(model.predict_proba([r[text_field] for r in chunk], pairs))
    probs = np.concatenate(probabilities)
    predictions = probs.argmax(-1).tolist()
    metrics = {
        "examples": len(records),
        "variant": variant,
        "accuracy": accuracy(predictions, labels),
        "macro_f1": macro_f1(predictions, labels),
        "ece": expected_calibration_error(probs, labels),
        "mean_entropy": float(predictive_entropy(probs).mean()),
    }
    if rating_range is not None:
        metrics["quadratic_weighted_kappa"] = quadratic_weighted_kappa(predictions, labels, rating_range)
    return metrics
