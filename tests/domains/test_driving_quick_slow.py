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

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_profile_runs_end_to_end_within_ten_minutes(tmp_path: Path) -> None:
    run, report, card = tmp_path / "run", tmp_path / "report", tmp_path / "card"
    command = [sys.executable, "-m", "suite.cli", "run", "driving", "--profile", "quick", "--output-dir", str(run),
               "--set", f"report_dir={report}", "--set", f"model_card_dir={card}"]  # fmt: skip
    started = time.perf_counter()
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - started
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert seconds < 600, f"the quick profile took {seconds:.0f} s"

    results = json.loads((run / "results.json").read_text())
    assert results["recipe"]["train_episodes"] == 6 and results["recipe"]["variants"] == ["imitation", "all"]
    assert set(results["closed_loop"]) == {"expert|0", "tiny-imitation|0", "tiny-all|0"}
    for per_scenario in results["closed_loop"].values():
        assert set(per_scenario) == set(results["recipe"]["scenarios"])
        assert all(m["episodes"] == 4 and 0 <= m["collision_rate"] <= 1 for m in per_scenario.values())
    for name in ("tiny-imitation", "tiny-all"):
        assert 0 <= results["open_loop"][f"{name}|0"]["action_accuracy"] <= 1
        assert (run / "export" / name / "model.onnx").is_file()

    summary = json.loads((report / "driving.json").read_text())
    validate_summary(summary)
    assert "driving" in summary["command"] and "quick" in summary["command"]
    markdown = (report / "driving.md").read_text()
    assert summary["command"] in markdown
    assert (report / "driving_collisions.png").stat().st_size > 1000
    assert (card / "README.md").is_file()
