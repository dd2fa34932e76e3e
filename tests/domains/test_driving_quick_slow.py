"""`distill run driving --profile quick` as a test: the whole pack through the CLI, within its 10-minute budget on
2 cores."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from suite.results import validate_summary
from tests.domains.baseline import compare_with_baseline

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_profile_runs_end_to_end_within_ten_minutes(tmp_path: Path) -> None:
    run, report, card = tmp_path / "run", tmp_path / "run" / "report", tmp_path / "card"
    command = [sys.executable, "-m", "suite.cli", "run", "driving", "--profile", "quick", "--output-dir", str(run),
               "--set", f"report_dir={report}", "--set", f"model_card_dir={card}"]  # fmt: skip
    started = time.perf_counter()
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - started
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert seconds < 600, f"the quick profile took {seconds:.0f} s"

    summary = json.loads((report / "driving.json").read_text())
    validate_summary(summary)
    models = summary["models"]
    assert set(models) == {"expert", "constant-IDLE", "tiny-imitation", "tiny-all"}
    for entry in models.values():
        closed = [m for split, m in entry["metrics"].items() if split != "open_loop"]
        assert all(m["episodes"] == 4 and 0 <= m["collision_rate"] <= 1 for m in closed)
    for name in ("tiny-imitation", "tiny-all"):
        assert 0 <= models[name]["metrics"]["open_loop"]["action_accuracy"] <= 1
        assert (run / "export" / name / "model.onnx").is_file()
    assert compare_with_baseline("driving", models) == []
    assert "driving" in summary["command"] and "quick" in summary["command"]
    markdown = (report / "driving.md").read_text()
    assert summary["command"] in markdown
    assert (report / "driving_collisions.png").stat().st_size > 1000
    assert (card / "README.md").is_file()
