"""The MIMIC-style notes schema on synthetic fixtures: labs summarised latest first, bad lines named by file and
line (or skipped and counted), label order fixed when given."""

from __future__ import annotations

import json

import pytest

from domains.clinical.notes import lab_summary, load_notes
from suite.errors import MalformedRowError

NOTES = [  # synthetic: written for this test, no real patient
    {"id": "a-1", "note": "Febrile, hypotensive, lactate rising.", "label": "sepsis",
     "labs": [{"name": "lactate", "value": 2.0, "unit": "mmol/L", "hours": -8},
              {"name": "lactate", "value": 4.1, "unit": "mmol/L", "hours": -2},
              {"name": "creatinine", "value": 1.9, "unit": "mg/dL", "hours": -6}]},
    {"id": "a-2", "note": "Chest pain radiating to the left arm.", "label": "acs", "rationale": "Typical angina."},
]  # fmt: skip


def write(tmp_path, rows) -> str:
    path = tmp_path / "notes.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return str(path)


def test_notes_become_pairs_with_a_lab_summary(tmp_path):
    labels, examples = load_notes(write(tmp_path, NOTES))
    assert labels == ["acs", "sepsis"]
    first, second = examples
    assert first.text == NOTES[0]["note"] and first.label == 1 and first.id == "a-1"
    assert first.text_pair == "lactate 4.1 mmol/L (-2 h); creatinine 1.9 mg/dL (-6 h)"  # latest value, latest first
    assert second.text_pair == "" and second.rationale == "Typical angina." and second.label == 0


def test_a_malformed_line_is_named_or_skipped_and_counted(tmp_path):
    bad_lab = {"id": "c", "note": "x", "label": "acs", "labs": [{"name": "k", "value": "high"}]}
    rows = [*NOTES, {"id": "b", "note": "", "label": "acs"}, "{not json", bad_lab]
    path = write(tmp_path, rows)
    with pytest.raises(MalformedRowError, match=r"notes.jsonl:3: .*'note' must be non-empty"):
        load_notes(path)
    _, kept = load_notes(path, skip_bad_rows=True)
    assert [e.id for e in kept] == ["a-1", "a-2"]


def test_a_fixed_label_order_refuses_unknown_labels(tmp_path):
    labels, examples = load_notes(write(tmp_path, NOTES), labels=["sepsis", "acs", "other"])
    assert labels == ["sepsis", "acs", "other"] and [e.label for e in examples] == [0, 1]
    with pytest.raises(MalformedRowError, match="not one of"):
        load_notes(write(tmp_path, NOTES), labels=["sepsis"])


def test_lab_summary_keeps_at_most_twenty_tests():
    labs = [{"name": f"t{i}", "value": i, "hours": -i} for i in range(30)]
    assert lab_summary(labs).count(";") == 19 and lab_summary(labs).startswith("t0 0 (+0 h)")
