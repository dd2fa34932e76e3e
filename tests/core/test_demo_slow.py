"""`make demo` as a test: the quick profile of the built-in example on the real data (about 10 minutes on 2 cores)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from suite.data import load_dataset

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_profile_learns_more_than_the_majority_class(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "suite.cli", "run", "--profile", "quick", "--output-dir", str(tmp_path)]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert finished.returncode == 0, finished.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    labels = [r["label"] for r in load_dataset("semeval2013-sra", corpus="sciEntsBank")["unseen_answers"]]
    majority = max(labels.count(0), labels.count(1)) / len(labels)
    for name in ("teacher", "student_kd", "student_no_kd"):
        assert results[name]["unseen_answers"] > majority, (name, results[name], majority)
    assert results["student_kd"]["params"] * 20 <= results["teacher"]["params"]
