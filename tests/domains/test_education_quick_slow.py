"""`make demo` as a test: `distill run education --profile quick` on the real data (under 10 minutes on 2 cores;
the time is measured in the README, not asserted here), compared with the numbers recorded before the refactor."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from suite.results import validate_summary
from tests.domains.baseline import compare_with_baseline

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_profile_runs_end_to_end_on_the_real_data(tmp_path: Path) -> None:
    run, report = tmp_path / "run", tmp_path / "report"
    command = [sys.executable, "-m", "suite.cli", "run", "education", "--profile", "quick", "--output-dir", str(run),
               "--set", f"report_dir={report}", "--set", f"model_card_dir={tmp_path / 'card'}"]  # fmt: skip
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert finished.returncode == 0, finished.stderr[-3000:]
    summary = json.loads((report / "education.json").read_text())
    validate_summary(summary)
    # No accuracy bar: ~40 teacher steps leave the quick teacher near the majority class (the full profile is the
    # result); here every model must be scored on every split with metrics in range.
    for name, entry in summary["models"].items():
        for split, values in entry["metrics"].items():
            assert 0 <= values["accuracy"] <= 1 and 0 <= values["ece"] <= 1, (name, split, values)
    assert summary["models"]["sra_tiny_kd"]["params"] * 20 <= summary["models"]["sra_teacher"]["params"]
    assert (run / "export" / "sra_tiny_kd" / "model.onnx").is_file()
    assert (report / "education.md").read_text().count("| sra_teacher (teacher) |") >= 3
    assert compare_with_baseline("education", summary["models"]) == []
