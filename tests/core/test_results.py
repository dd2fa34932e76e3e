"""The run summary: schema validation that lists every problem, model entries without NaN, the invoked command."""

from __future__ import annotations

import json
import math
import sys

import pytest

from suite.results import invoked_command, model_entry, validate_summary, write_summary


def good_summary() -> dict:
    return {
        "command": "distill run education",
        "machine": {"cpu": "test"},
        "teacher": "teacher",
        "models": {
            "teacher": model_entry(22_000_000, False, {"p50_ms": 4.0, "p99_ms": 6.5}, {"test": {"accuracy": 0.8}}),
            "student": model_entry(600_000, True, None, {"test": {"accuracy": 0.75, "f1": 0.7}}),
        },
        "tasks": ["sra"],  # a domain's extra key
    }


def test_validate_summary_accepts_a_good_summary():
    validate_summary(good_summary())


def test_validate_summary_lists_every_problem():
    summary = good_summary()
    del summary["machine"]
    summary["teacher"] = "gpt"
    summary["models"]["student"]["params"] = 6.0e5
    summary["models"]["student"]["kd"] = "yes"
    summary["models"]["teacher"]["params"] = True  # a bool is not a parameter count
    del summary["models"]["teacher"]["latency_ms_p99"]
    summary["models"]["teacher"]["metrics"]["test"] = 0.8
    with pytest.raises(ValueError) as info:
        validate_summary(summary)
    message = str(info.value)
    assert message.startswith("run summary: ")
    problems = message.removeprefix("run summary: ").split("; ")
    assert sorted(problems) == sorted(
        [
            "missing key 'machine'",
            "teacher 'gpt' is not an entry of models",
            "models.teacher: missing 'latency_ms_p99'",
            "models.teacher.params must be an int",
            "models.teacher.metrics.test must map metric names to values",
            "models.student.params must be an int",
            "models.student.kd must be a bool",
        ]
    )


def test_validate_summary_names_each_missing_top_level_key():
    with pytest.raises(ValueError) as info:
        validate_summary({})
    for key in ("command", "machine", "teacher", "models"):
        assert f"missing key '{key}'" in str(info.value)


def test_model_entry_turns_undefined_metrics_into_null():
    entry = model_entry(
        7, 1, None, {"dev": {"accuracy": 0.5, "auc": float("nan")}, "test": {"ece": float("inf"), "f1": -math.inf}}
    )
    assert entry == {
        "params": 7,
        "kd": True,
        "latency_ms_p50": None,
        "latency_ms_p99": None,
        "metrics": {"dev": {"accuracy": 0.5, "auc": None}, "test": {"ece": None, "f1": None}},
    }
    row = {"model": "student", "batch_size": 1, "p50_ms": 1.25, "p90_ms": 2.0, "p99_ms": 3}
    entry = model_entry(7, False, row, {})
    assert (entry["latency_ms_p50"], entry["latency_ms_p99"]) == (1.25, 3.0)
    assert isinstance(entry["latency_ms_p99"], float) and entry["kd"] is False


def test_summary_models_turn_undefined_metrics_into_null_for_every_seed_view(tmp_path):
    """A majority baseline that scores 0 on a prefix has an undefined drop rate: null in means, std and first seed."""
    from suite.runner import ModelResult, summary_models

    nan = float("nan")
    baseline = ModelResult.single("baseline", {"test": {"accuracy": 0.0, "pdr": nan}})
    student = ModelResult("student", 10, True, [0], {0: {"test": {"pdr": nan}}}, {"test": {"pdr": 0.1}},
                          {"test": {"pdr": nan}})  # fmt: skip
    models = summary_models({"majority": baseline, "student": student}, {})
    assert models["majority"]["metrics_first_seed"]["test"]["pdr"] is None
    assert models["student"]["metrics_first_seed"]["test"]["pdr"] is None
    assert models["student"]["metrics_std"]["test"]["pdr"] is None
    json.dumps(models, allow_nan=False)  # what write_summary requires


def test_write_summary_round_trips(tmp_path):
    summary = good_summary()
    summary["models"]["student"]["metrics"]["test"]["auc"] = None
    path = write_summary(tmp_path / "reports" / "summary.json", summary)
    assert path == tmp_path / "reports" / "summary.json"
    assert json.loads(path.read_text()) == summary


def test_write_summary_refuses_an_invalid_summary(tmp_path):
    summary = good_summary()
    summary["teacher"] = "missing"
    with pytest.raises(ValueError, match="teacher 'missing'"):
        write_summary(tmp_path / "summary.json", summary)
    assert not (tmp_path / "summary.json").exists()


def test_invoked_command_is_what_a_user_types(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/home/me/.venv/bin/distill", "run", "education", "--task", "sra and more"])
    assert invoked_command() == "distill run education --task 'sra and more'"
    monkeypatch.setattr(sys, "argv", ["/repo/suite/cli.py", "run", "education"])
    assert invoked_command() == "distill run education"
    monkeypatch.setattr(sys, "argv", ["scripts/other.py", "--x"])
    assert invoked_command() == "other.py --x"
