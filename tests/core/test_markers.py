"""``make test-all`` (``-m "slow or not slow"``) must not run GPU tests on a machine without a GPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
GPU_TESTS = ("test_cuda_latency_and_peak_memory", "test_cuda_rows")  # the gpu-marked tests of the files below


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the deselection that happens without a CUDA device")
def test_slow_or_not_slow_selects_no_gpu_test_without_a_gpu() -> None:
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "slow or not slow",
               "tests/bench/test_bench.py", "tests/eval/test_eval_efficiency.py"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    collected = [line.split("::")[-1].split("[")[0] for line in done.stdout.splitlines() if "::" in line]
    assert "test_parameter_count_counts_tied_weights_once_and_trainable_only" in collected, done.stdout
    assert not set(GPU_TESTS) & set(collected)
    assert "2 deselected" in done.stdout
