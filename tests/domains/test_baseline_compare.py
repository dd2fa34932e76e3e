"""The before/after comparison the slow quick-profile tests make catches a moved number and a lost model."""

from __future__ import annotations

import copy
import json

from tests.domains.baseline import FIXTURES, compare_with_baseline


def as_summary(pack: str) -> dict:
    baseline = json.loads((FIXTURES / f"{pack}.json").read_text())["models"]
    return {name: {"metrics": copy.deepcopy(splits)} for name, splits in baseline.items()}


def test_the_baseline_matches_itself_and_flags_moves_beyond_tolerance() -> None:
    for pack in ("education", "driving"):
        assert compare_with_baseline(pack, as_summary(pack)) == []
    moved = as_summary("education")
    moved["sra_tiny_kd"]["metrics"]["unseen_answers"]["accuracy"] += 0.03
    del moved["verifier_teacher"]
    problems = compare_with_baseline("education", moved)
    assert problems[0] == "verifier_teacher: missing" and "sra_tiny_kd unseen_answers accuracy" in problems[1]
    crashed = as_summary("driving")
    for metrics in crashed["tiny-all"]["metrics"].values():
        if "collision_rate" in metrics:
            metrics["collision_rate"] = min(1.0, metrics["collision_rate"] + 0.5)
    assert any("tiny-all: mean collision rate" in p for p in compare_with_baseline("driving", crashed))
