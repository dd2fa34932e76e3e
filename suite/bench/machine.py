"""What a benchmark ran on: a latency number means nothing without the machine next to it."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any


def _cpuinfo_value(keys: tuple[str, ...], cpuinfo: Path) -> str | None:
    """The value of the first line of /proc/cpuinfo whose key is one of ``keys``; None without one (or the file)."""
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in keys:
                return value.strip()
    return None


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The first ``model name`` in /proc/cpuinfo; ``platform.processor()`` elsewhere (or on ARM boards)."""
    return _cpuinfo_value(("model name", "Model"), cpuinfo) or platform.processor() or platform.machine()


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The instruction-set flags of the first CPU in /proc/cpuinfo (x86 ``flags``, ARM ``Features``); empty
    elsewhere."""
    return set((_cpuinfo_value(("flags", "Features"), cpuinfo) or "").split())


# x86 AVX-512 / AMX bf16 instructions, ARM's bf16 extension: oneDNN runs bf16 convolutions and matmuls on them
# natively. Without them it emulates bf16, which can be slower than fp32.
NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}


def cpu_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU has bf16 instructions (whatever GPU there is)."""
    return bool(cpu_flags(cpuinfo) & NATIVE_BF16_FLAGS)


def native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether training here can run in bf16 natively: a CUDA GPU that supports it, else a CPU with bf16
    instructions."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.is_bf16_supported()
    except ImportError:
        return False
    return cpu_bf16(cpuinfo)


def gpu_name() -> str | None:
    """GPU 0's name from PyTorch when it sees CUDA, else from ``nvidia-smi``, else None."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"]
        try:
            out = subprocess.run(query, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        except (subprocess.SubprocessError, OSError):
            return None
        return out.splitlines()[0] if out else None
    return None


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def machine_info() -> dict[str, Any]:
    """Platform, CPU model, whether the CPU has bf16 instructions, physical/logical cores, RAM, GPU, and the
    onnxruntime / torch versions. The bf16 flag matters to timings: ``mixed_precision=auto`` trains in bf16 only
    on such a CPU, and "AMD EPYC" names CPUs with and without it."""
    import psutil

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cpu_bf16": cpu_bf16(),
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": os.cpu_count(),
        "ram_bytes": psutil.virtual_memory().total,
        "onnxruntime": _version("onnxruntime"),
        "torch": _version("torch"),
        "gpu": gpu_name(),
    }
    try:
        import onnxruntime as ort

        info["onnxruntime_providers"] = ort.get_available_providers()
    except ImportError:
        info["onnxruntime_providers"] = []
    return info
