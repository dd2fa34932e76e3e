"""Edge-latency benchmark of exported students: onnxruntime per provider and variant, next to eager PyTorch.

    from suite.bench import run_benchmark
    report = run_benchmark(["exports/tiny-text"], batch_sizes=(1, 8, 32), out_dir="runs/bench")

Command line: ``python -m suite.bench EXPORT_DIR... [--batch 1 8 32] [--providers cpu cuda tensorrt]``.
onnxruntime, matplotlib and psutil are imported inside the functions that use them.
"""

from suite.bench.latency import benchmark_onnx, benchmark_torch, synth_inputs
from suite.bench.machine import machine_info
from suite.bench.run import run_benchmark

__all__ = ["benchmark_onnx", "benchmark_torch", "machine_info", "run_benchmark", "synth_inputs"]
