"""Kill a training run with SIGKILL mid-epoch, resume it, and get bit-identical weights."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).with_name("_train_script.py")
ROOT = Path(__file__).resolve().parents[2]


def run(output_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(output_dir), *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    full = run(tmp_path / "full")
    assert full.returncode == 0, full.stderr

    # 72 examples / batch 8 = 9 steps per epoch; step 13 is mid-epoch 2, one step after the checkpoint at 12.
    killed = run(tmp_path / "killed", "--kill-at-step", "13")
    assert killed.returncode == -signal.SIGKILL
    latest = (tmp_path / "killed" / "checkpoints" / "latest").read_text()
    assert latest == "step-00000012"
    assert not (tmp_path / "killed" / "final.pt").exists()

    resumed = run(tmp_path / "killed", "--resume")
    assert resumed.returncode == 0, resumed.stderr

    expected = torch.load(tmp_path / "full" / "final.pt", weights_only=True)
    actual = torch.load(tmp_path / "killed" / "final.pt", weights_only=True)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name

    # The logged losses after the resume point match the uninterrupted run step for step.
    def losses(path: Path) -> dict[int, float]:
        lines = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: r["loss"] for r in lines if r["kind"] == "train"}

    full_losses, resumed_losses = losses(tmp_path / "full"), losses(tmp_path / "killed")
    # The killed run logged step 13 before dying; the resumed run logs it again, once.
    logged = [json.loads(line) for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if r["kind"] == "train"] == list(range(1, 28))
    assert sorted(full_losses) == list(range(1, 28))
    for step in range(13, 28):
        assert resumed_losses[step] == full_losses[step], step
