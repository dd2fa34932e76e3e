"""A MIMIC-style input schema for users with credentialed data (MIMIC-III/IV notes never ship with this project).

One JSON object per line::

    {"id": "10001-1", "note": "<discharge summary or progress note text>", "label": "sepsis",
     "labs": [{"name": "lactate", "value": 4.1, "unit": "mmol/L", "hours": -2.0}, ...],   # optional
     "rationale": "<why, if a clinician wrote it>"}                                      # optional

``hours`` is the lab's time relative to the note (negative: before). The labs become a compact text block appended
as the pair's second segment, latest value per test first, so the same cross-encoder teacher and students read
them (``lactate 4.1 mmol/L (-2 h); creatinine 1.9 mg/dL (-6 h)``). A malformed line is named by file and line
(:class:`~suite.errors.MalformedRowError`), or skipped and counted with ``skip_bad_rows``. Note
text is never logged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from domains.clinical.data import Example
from suite.data.rows import BadRow, RowPolicy, json_object, jsonl_rows

MAX_LABS = 20  # the latest values of at most this many tests: the rest would be cut by max_length anyway


def _lab(entry: Any) -> tuple[str, float, str, float]:
    if not isinstance(entry, dict):
        raise BadRow("each lab must be an object with name, value, unit and hours")
    try:
        name, value = str(entry["name"]).strip(), float(entry["value"])
        unit, hours = str(entry.get("unit", "")).strip(), float(entry.get("hours", 0.0))
    except (KeyError, TypeError, ValueError) as error:
        raise BadRow(f"lab {entry.get('name', '?')!r}: {type(error).__name__} in name / value / hours") from None
    if not name:
        raise BadRow("a lab has an empty name")
    return name, value, unit, hours


def lab_summary(labs: list[Any]) -> str:
    """``name value unit (hours h)`` of the latest value of each test, latest tests first."""
    latest: dict[str, tuple[str, float, str, float]] = {}
    for entry in map(_lab, labs):
        if entry[0] not in latest or entry[3] > latest[entry[0]][3]:
            latest[entry[0]] = entry
    ordered = sorted(latest.values(), key=lambda lab: -lab[3])[:MAX_LABS]
    return "; ".join(f"{n} {v:g}{' ' + u if u else ''} ({h:+g} h)" for n, v, u, h in ordered)


def load_notes(
    path: str | Path, labels: list[str] | None = None, skip_bad_rows: bool = False
) -> tuple[list[str], list[Example]]:
    """``(labels, examples)`` from a notes JSONL; ``labels`` fixes the label order (default: sorted as found)."""
    path, policy = Path(path), RowPolicy(skip_bad_rows)
    records = []
    for line, raw in jsonl_rows(path):
        with policy.guard(path, line):
            row = json_object(raw)
            note, label = row.get("note"), row.get("label")
            if not isinstance(note, str) or not note.strip():
                raise BadRow("'note' must be non-empty text")
            if not isinstance(label, str) or not label.strip():
                raise BadRow("'label' must be non-empty text")
            if labels is not None and label not in labels:
                raise BadRow(f"label {label!r} is not one of {labels}")
            labs = row.get("labs", [])
            if not isinstance(labs, list):
                raise BadRow("'labs' must be a list")
            records.append({"id": str(row.get("id", line)), "note": note, "label": label, "labs": lab_summary(labs),
                            "rationale": str(row.get("rationale") or "")})  # fmt: skip
    records = policy.finish({"notes": records})["notes"]
    names = labels or sorted({r["label"] for r in records})
    examples = [Example(r["note"], r["labs"], names.index(r["label"]), r["id"], r["id"], r["rationale"])
                for r in records]  # fmt: skip
    return names, examples
