"""Two CPU processes (gloo) under ``accelerate launch``: passes over the data, steps, schedule and resume position."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

SCRIPT = Path(__file__).with_name("_ddp_script.py")
ROOT = Path(__file__).resolve().parents[2]


def launch(output_dir: Path, *args: str) -> list[dict]:
    accelerate = Path(sys.executable).with_name("accelerate")
    # torchrun's launcher (--multi_gpu) with ACCELERATE_USE_CPU: two gloo processes on the CPU. (`--cpu` alone
    # would use one process, or mpirun.)
    command = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", str(SCRIPT), str(output_dir), *args]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads((output_dir / f"rank-{rank}-seen.json").read_text()) for rank in (0, 1)]


def test_two_processes_make_two_passes_with_one_schedule(tmp_path: Path) -> None:
    ranks = launch(tmp_path / "full")
    for runs in ranks:
        (run,) = runs
        assert run["processes"] == 2
        # 40 examples, batch 4, 2 processes: 5 batches each per epoch, groups of 2, 2 and 1 -> 3 steps an epoch.
        assert run["steps_per_epoch"] == 3 and run["total_steps"] == 6
        assert run["global_step"] == 6 and run["scheduler_position"] == 6
        assert len(run["seen"]) == 2 * 5 * 4
    seen = Counter(ranks[0][0]["seen"] + ranks[1][0]["seen"])
    assert set(seen) == set(range(40)) and set(seen.values()) == {2}, "each example once per epoch, 2 epochs"


def test_two_processes_resume_mid_epoch_where_they_stopped(tmp_path: Path) -> None:
    launch(tmp_path, "--max-steps", "2")  # 4 of 5 batches per process in epoch 0
    ranks = launch(tmp_path, "--resume")
    for first, second in ranks:
        assert first["global_step"] == 2 and len(first["seen"]) == 4 * 4
        assert second["global_step"] == 6 and len(second["seen"]) == 40 - 16
    seen = Counter(id_ for runs in ranks for run in runs for id_ in run["seen"])
    assert set(seen) == set(range(40)) and set(seen.values()) == {2}, "nothing replayed, nothing skipped"
