"""Efficiency helpers: parameter count, size on disk, FLOPs, latency, peak memory, and derived ratios."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch
from torch import nn

from suite.eval import (
    compression_ratio,
    flops,
    latency,
    parameter_count,
    peak_memory,
    retention,
    size_on_disk,
    speedup,
)


def test_parameter_count_counts_tied_weights_once_and_trainable_only():
    layer = nn.Linear(10, 20)
    assert parameter_count(layer) == 10 * 20 + 20
    layer.bias.requires_grad_(False)
    assert parameter_count(layer, trainable_only=True) == 200
    tied = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    tied[1].weight = tied[0].weight
    assert parameter_count(tied) == 16


def test_size_on_disk_of_file_and_directory(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.bin").write_bytes(b"x" * 100)
    (tmp_path / "sub" / "b.bin").write_bytes(b"y" * 23)
    assert size_on_disk(tmp_path / "a.bin") == 100
    assert size_on_disk(tmp_path) == 123
    with pytest.raises(FileNotFoundError):
        size_on_disk(tmp_path / "missing")


def test_flops_of_linear():
    assert flops(nn.Linear(10, 20), torch.randn(4, 10)) == 2 * 4 * 10 * 20


def test_flops_accepts_positional_and_keyword_inputs():
    class Bilinear(nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return a @ b  # (3, 5) @ (5, 7): 2 * 3 * 5 * 7

    a, b = torch.randn(3, 5), torch.randn(5, 7)
    assert flops(Bilinear(), (a, b)) == 210
    assert flops(Bilinear(), {"a": a, "b": b}) == 210


def test_latency_reports_order_statistics():
    calls = []

    def work():
        calls.append(1)
        time.sleep(0.002)

    stats = latency(work, warmup=2, repeats=5)
    assert len(calls) == 7
    assert stats["repeats"] == 5
    assert 2.0 <= stats["min_ms"] <= stats["median_ms"] <= stats["p90_ms"]
    with pytest.raises(ValueError, match="repeats >= 1"):
        latency(work, repeats=0)


def test_cpu_peak_memory_sees_a_large_allocation():
    # ru_maxrss is a process-lifetime high-water mark, so measure in a fresh process where earlier tests left none.
    code = (
        "import numpy as np, psutil\n"
        "from suite.eval.efficiency import peak_memory\n"
        "before = peak_memory(lambda: None)\n"
        "extra = max(before - psutil.Process().memory_info().rss, 0) + 300 * 2**20  # well over the 150 MiB floor\n"
        "after = peak_memory(lambda: np.ones(extra // 8).sum())\n"
        "print(after - before)\n"
    )
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert int(finished.stdout) >= 150 * 2**20


def test_ratios():
    assert retention(0.9, 1.0) == pytest.approx(0.9)
    assert compression_ratio(110e6, 22e6) == pytest.approx(5.0)
    assert speedup(120.0, 30.0) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="student_latency is 0"):
        speedup(1.0, 0.0)


@pytest.mark.gpu
def test_cuda_latency_and_peak_memory():
    layer = nn.Linear(256, 256).cuda()
    x = torch.randn(64, 256, device="cuda")
    stats = latency(lambda: layer(x), device="cuda", warmup=3, repeats=10)
    assert 0 < stats["median_ms"] <= stats["p90_ms"]
    peak = peak_memory(lambda: torch.empty(64 * 2**20, dtype=torch.uint8, device="cuda"), device="cuda")
    assert peak >= 64 * 2**20
