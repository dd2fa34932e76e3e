"""Complexity and efficiency (survey section 6.1): size, FLOPs, latency, peak memory, and teacher/student ratios.

A benchmark warms up, synchronises the device, and reports a dict (CONVENTIONS 9): :func:`latency` runs the
callable ``warmup`` times untimed, then times ``repeats`` calls with ``torch.cuda.synchronize`` around each when the
device is CUDA, so queued kernels are counted in the call that launched them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


def parameter_count(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters; tied (shared) parameters count once, as ``module.parameters()`` yields them once.

    ``trainable_only`` counts those with ``requires_grad`` (e.g. adapters on a frozen backbone).
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def size_on_disk(path: str | Path) -> int:
    """Bytes of a file, or of every file below a directory (recursively; symlinks are not followed)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def flops(module: nn.Module, example_inputs: torch.Tensor | tuple | dict[str, Any]) -> int:
    """Floating-point operations of one forward pass, counted by ``torch.utils.flop_counter.FlopCounterMode``.

    A multiply-add counts as 2 FLOPs (``nn.Linear(i, o)`` on ``(B, i)``: ``2*B*i*o``); bias adds, activations and
    normalisations are not counted, which is the usual convention for matmul-dominated models.
    ``example_inputs`` is one tensor, a tuple of positional arguments, or a dict of keyword arguments.
    Runs under ``torch.no_grad`` and leaves the module's train/eval mode as it is.
    """
    from torch.utils.flop_counter import FlopCounterMode

    args, kwargs = _call_arguments(example_inputs)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*args, **kwargs)
    return int(counter.get_total_flops())


def _call_arguments(example_inputs: torch.Tensor | tuple | dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
    if isinstance(example_inputs, dict):
        return (), example_inputs
    if isinstance(example_inputs, tuple):
        return example_inputs, {}
    return (example_inputs,), {}


def _synchronizer(device: str | torch.device) -> Callable[[], None]:
    device = torch.device(device)
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def latency(
    fn: Callable[[], Any], device: str | torch.device = "cpu", warmup: int = 3, repeats: int = 20
) -> dict[str, float]:
    """Wall-clock latency of ``fn()`` in milliseconds: ``{"median_ms", "p90_ms", "mean_ms", "min_ms", "repeats"}``.

    ``device`` is where ``fn`` runs; for CUDA each timed call is bracketed by ``torch.cuda.synchronize`` (kernels are
    asynchronous). Wrap the model call in ``torch.inference_mode()`` inside ``fn`` to time inference.
    """
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1, got {warmup} and {repeats}")
    sync = _synchronizer(device)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000.0)
    ms = np.asarray(times)
    return {
        "median_ms": float(np.median(ms)),
        "p90_ms": float(np.percentile(ms, 90)),
        "mean_ms": float(ms.mean()),
        "min_ms": float(ms.min()),
        "repeats": repeats,
    }


def peak_memory(fn: Callable[[], Any], device: str | torch.device = "cpu") -> int:
    """Peak memory in bytes while running ``fn()`` once.

    CUDA: ``torch.cuda.max_memory_allocated`` after resetting the peak statistics, i.e. the tensors ``fn`` holds at
    its peak (plus what was already allocated), without the caching allocator's reserve or the CUDA context.
    CPU: the process's peak resident set size (``getrusage`` ``ru_maxrss``), a high-water mark since the process
    started that cannot be reset, so it bounds ``fn``'s peak from above; measure in a fresh process for a tight value.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device))
    import resource
    import sys

    fn()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB on Linux


def _ratio(numerator: float, denominator: float, what: str) -> float:
    if denominator == 0:
        raise ValueError(f"{what} is 0; the ratio is undefined")
    return numerator / denominator


def retention(student_metric: float, teacher_metric: float) -> float:
    """Performance retention, student / teacher metric (survey 6.1 reports 0.90-0.95 as typical).

    For higher-is-better metrics; for a loss or perplexity take teacher / student instead.
    """
    return _ratio(student_metric, teacher_metric, "teacher_metric")


def compression_ratio(teacher_params: float, student_params: float) -> float:
    """teacher / student size (parameters or bytes); 10.0 means the student is ten times smaller."""
    return _ratio(teacher_params, student_params, "student_params")


def speedup(teacher_latency: float, student_latency: float) -> float:
    """teacher / student latency; 4.0 means the student answers four times faster."""
    return _ratio(teacher_latency, student_latency, "student_latency")
