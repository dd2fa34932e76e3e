"""benchmarks.text_budget's own logic on tiny inputs: budgets are met, value selection stays class-balanced, and its
entries join dd.json in the results schema without touching the digits entries."""

from __future__ import annotations

import json

import numpy as np

from benchmarks.text_budget import Task, choose, merge_into_dd, semdedup_to_budget, top_value_per_class
from suite.results import validate_summary


def tiny_task(n: int = 60) -> tuple[Task, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    x = (np.eye(3)[y] + rng.normal(size=(n, 3)) * 0.2).astype(np.float32)
    texts = [(f"case {i} of class {c}", "") for i, c in enumerate(y)]
    return Task("tiny", ["a", "b", "c"], texts, y, texts[:9], y[:9], texts[:9], y[:9]), x


def test_every_selector_returns_the_budget_of_distinct_examples():
    task, x = tiny_task()
    for method in ("random", "minhash", "semdedup", "kcenter", "herding", "shapley", "herding_kd"):
        chosen = choose(method, task, x, x[:9], 12, seed=1, cache={})
        assert len(chosen) == len(set(chosen)) == 12, method
        assert set(chosen) <= set(range(60))
    assert choose("kcenter", task, x, x[:9], 60, seed=0, cache={}) == list(range(60))  # 100%: everything


def test_top_values_are_taken_per_class_in_proportion():
    labels = np.array([0] * 8 + [1] * 4)
    values = np.array([9, 8, 7, 6, 5, 4, 3, 2, 1.0, 0.5, 0.2, 0.1])  # class 0 holds every high value
    chosen = top_value_per_class(values, labels, 6)
    assert sorted(chosen) == [0, 1, 2, 3, 8, 9]  # 4 of class 0, 2 of class 1, the best of each


def test_semdedup_lowers_its_threshold_until_the_budget_fits():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(20, 16))
    x = np.concatenate([base, base + rng.normal(size=(20, 16)) * 0.01])  # 20 near-exact pairs
    assert len(semdedup_to_budget(x, 20, seed=0)) <= 20


def test_entries_merge_into_dd_json_in_the_results_schema(tmp_path):
    dd = tmp_path / "dd.json"
    digits = {"params": 10, "kd": False, "latency_ms_p50": None, "latency_ms_p99": None,
              "metrics": {"test": {"accuracy": 0.9}}}  # fmt: skip
    dd.write_text(json.dumps({"command": "c", "machine": {}, "teacher": "full_data", "models": {"full_data": digits}}))
    row = {"method": "semdedup", "budget": 0.25, "examples": 5, "accuracy": 0.8, "accuracy_std": 0.01}
    result = {"task": "tiny", "rows": {"semdedup_25pct": row}, "student_params": 100, "teacher_params": 900,
              "teacher_accuracy": 0.9, "majority_accuracy": 0.4}  # fmt: skip
    merge_into_dd([result], dd, "python -m benchmarks.text_budget", {})
    merge_into_dd([result], dd, "python -m benchmarks.text_budget", {})  # a rerun replaces, never duplicates
    doc = json.loads(dd.read_text())
    validate_summary(doc)
    assert set(doc["models"]) == {"full_data", "tiny_teacher", "tiny_majority", "tiny_semdedup_25pct"}
    assert doc["models"]["tiny_semdedup_25pct"]["metrics"]["test"]["accuracy"] == 0.8
