"""suite.bench on tiny exported students, CPU only: report files, rows, speed-ups, absent providers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from suite.bench import benchmark_onnx, benchmark_torch, run_benchmark, synth_inputs
from suite.bench.__main__ import main
from suite.bench.latency import summarize, tokenizer_vocab_size
from suite.bench.run import load_spec, load_torch_student, variant_metric
from suite.errors import ConfigError, ModelNotFoundError
from tests.bench.exported import MAX_LEN, make_text_export, make_vision_export

CORE_KEYS = {"runtime", "provider", "available", "batch_size", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput"}
CORE_KEYS |= {"peak_rss_bytes", "peak_gpu_mem_bytes", "model_bytes", "intra_op_threads", "warmup", "repeats"}


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    return {"text": make_text_export(root / "text", int8=True), "vision": make_vision_export(root / "vision")}


@pytest.fixture
def cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend onnxruntime offers only the CPU provider, whatever build is installed."""
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def report(exports: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
        return run_benchmark(
            [exports["text"], exports["vision"]],
            batch_sizes=(1, 2),
            out_dir=out,
            warmup=1,
            repeats=3,
            metric="accuracy",
            progress=False,
        )


def test_run_benchmark_writes_every_file(report: dict) -> None:
    out = Path(report["files"]["json"]).parent
    for name in ("bench.json", "bench.md", "latency_vs_batch.png", "metric_vs_latency.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "latency_vs_batch.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    on_disk = json.loads((out / "bench.json").read_text())
    assert on_disk["results"] == report["results"]


def test_report_records_the_machine(report: dict) -> None:
    machine = report["machine"]
    assert isinstance(machine["physical_cores"], int) and machine["physical_cores"] >= 1
    assert machine["logical_cores"] >= machine["physical_cores"]
    assert machine["onnxruntime"] == ort.__version__
    assert machine["torch"] == torch.__version__
    assert machine["ram_bytes"] > 0 and machine["cpu_model"]


def test_rows_cover_every_model_variant_runtime_and_batch(report: dict) -> None:
    keys = {(r["model"], r["variant"], r["runtime"], r["batch_size"]) for r in report["results"]}
    expected = {("text", v, "onnxruntime", b) for v in ("fp32", "int8") for b in (1, 2)}
    expected |= {("vision", "fp32", "onnxruntime", b) for b in (1, 2)}
    expected |= {(m, "eager", "torch", b) for m in ("text", "vision") for b in (1, 2)}
    assert keys == expected
    for row in report["results"]:
        assert row.keys() >= CORE_KEYS
        assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
        assert row["throughput"] == pytest.approx(row["batch_size"] / (row["mean_ms"] / 1e3))
        assert row["peak_rss_bytes"] > 0 and row["peak_gpu_mem_bytes"] is None


def test_speedup_is_torch_p50_over_onnx_p50(report: dict) -> None:
    rows = report["results"]
    torch_p50 = {(r["model"], r["batch_size"]): r["p50_ms"] for r in rows if r["runtime"] == "torch"}
    for r in rows:
        if r["runtime"] == "onnxruntime":
            assert r["speedup_vs_torch"] == pytest.approx(torch_p50[(r["model"], r["batch_size"])] / r["p50_ms"])


def test_absent_providers_are_reported_not_raised(report: dict) -> None:
    assert report["unavailable_providers"] == ["cuda", "tensorrt"]
    assert {r["provider"] for r in report["results"]} == {"cpu", "torch-cpu"}
    reasons = {(s["model"], s["variant"]): s["reason"] for s in report["skipped"]}
    assert reasons[("text", "fp16")] == "no model.fp16.onnx"
    assert reasons[("vision", "int8")] == "no model.int8.onnx"


def test_markdown_has_one_line_per_row(report: dict) -> None:
    text = Path(report["files"]["markdown"]).read_text()
    table = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(table) == 1 + len(report["results"])
    assert "speed-up vs torch" in table[0]
    assert "provider cuda: not available" in text


def test_benchmark_onnx_absent_provider(exports: dict[str, Path], cpu_only: None) -> None:
    spec = load_spec(exports["text"])
    result = benchmark_onnx(exports["text"] / "model.onnx", spec, "cuda", batch_size=1)
    assert result["available"] is False and result["provider"] == "cuda"
    assert benchmark_onnx(exports["text"] / "model.onnx", spec, "TensorrtExecutionProvider", 1)["available"] is False


def test_benchmark_onnx_records_settings(exports: dict[str, Path], cpu_only: None) -> None:
    spec = load_spec(exports["text"])
    result = benchmark_onnx(exports["text"] / "model.onnx", spec, "cpu", 3, seq_len=7, warmup=0, repeats=2)
    assert (result["batch_size"], result["seq_len"], result["repeats"]) == (3, 7, 2)
    assert result["model_bytes"] == (exports["text"] / "model.onnx").stat().st_size
    assert result["intra_op_threads"] >= 1
    path = exports["text"] / "model.onnx"
    bound = benchmark_onnx(path, spec, "cpu", 1, repeats=1, io_binding=True, intra_op_threads=1)
    assert bound["io_binding"] is True and bound["intra_op_threads"] == 1 and bound["p50_ms"] > 0


def test_benchmark_torch_same_shape_as_onnx(exports: dict[str, Path]) -> None:
    spec = load_spec(exports["vision"])
    model = load_torch_student(exports["vision"], spec)
    inputs = {"images": torch.from_numpy(synth_inputs(spec, 2)["pixel_values"])}
    result = benchmark_torch(model, inputs, "cpu", warmup=0, repeats=2)
    assert result.keys() >= CORE_KEYS
    assert (result["runtime"], result["provider"], result["batch_size"]) == ("torch", "torch-cpu", 2)
    assert result["model_bytes"] == sum(t.nbytes for t in model.state_dict().values())


@pytest.mark.gpu
def test_cuda_rows(exports: dict[str, Path]) -> None:
    """Eager CUDA always (with the allocator peak); onnxruntime CUDA with IO binding where onnxruntime-gpu is."""
    spec = load_spec(exports["text"])
    vocab = tokenizer_vocab_size(exports["text"])  # ids past the embedding would be a device-side assert on CUDA
    inputs = [torch.from_numpy(v) for v in synth_inputs(spec, 2, vocab_size=vocab).values()]
    eager = benchmark_torch(load_torch_student(exports["text"], spec), inputs, "cuda", warmup=1, repeats=3)
    assert eager["provider"] == "torch-cuda" and eager["peak_gpu_mem_bytes"] > 0
    result = benchmark_onnx(exports["text"] / "model.onnx", spec, "cuda", 2, warmup=1, repeats=3, io_binding=True)
    assert result["available"] is False or (result["p50_ms"] > 0 and result["gpu_mem_source"])


def test_rebuilt_torch_student_matches_onnx(exports: dict[str, Path]) -> None:
    spec = load_spec(exports["text"])
    model = load_torch_student(exports["text"], spec)
    feeds = synth_inputs(spec, 2, seq_len=5, vocab_size=30)
    session = ort.InferenceSession(str(exports["text"] / "model.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model(*(torch.from_numpy(v) for v in feeds.values()))["logits"].numpy()
    np.testing.assert_allclose(session.run(None, feeds)[0], expected, atol=1e-5)


def test_synth_inputs_shapes_and_ranges() -> None:
    inputs = [{"name": n, "dtype": "int64", "shape": ["batch", "sequence"]} for n in ("input_ids", "attention_mask")]
    text = {"inputs": inputs, "max_length": MAX_LEN}
    feeds = synth_inputs(text, 4, vocab_size=20)
    assert feeds["input_ids"].shape == (4, MAX_LEN) and feeds["input_ids"].dtype == np.int64
    assert feeds["input_ids"].min() >= 5 and feeds["input_ids"].max() < 20
    assert (feeds["attention_mask"] == 1).all()
    assert synth_inputs({**text, "max_length": None}, 1)["input_ids"].shape == (1, 128)
    image = {"inputs": [{"name": "x", "dtype": "float32", "shape": ["b", 3, "h", "w"]}], "image_size": [3, 8, 6]}
    assert synth_inputs(image, 2)["x"].shape == (2, 3, 8, 6)


def test_summarize_percentiles_and_throughput() -> None:
    stats = summarize([0.001, 0.002, 0.003, 0.004], batch_size=4)
    assert stats["p50_ms"] == pytest.approx(2.5)
    assert stats["p90_ms"] == pytest.approx(3.7)
    assert stats["throughput"] == pytest.approx(1600.0)


def test_variant_metric_per_variant_or_parity_drop() -> None:
    spec = {"parity": {"int8": {"metric_drop": 0.02}, "fp16": {"metric_drop": None}}}
    assert variant_metric({"accuracy": 0.9}, spec, "fp32", "accuracy") == 0.9
    assert variant_metric({"accuracy": 0.9}, spec, "int8", "accuracy") == pytest.approx(0.88)
    assert variant_metric({"accuracy": 0.9}, spec, "fp16", "accuracy") is None
    assert variant_metric({"int8": {"accuracy": 0.7}}, spec, "int8", "accuracy") == 0.7
    assert variant_metric({"f1": 0.5}, spec, "fp32", "accuracy") is None


def test_errors_are_one_line_suite_errors(tmp_path: Path, exports: dict[str, Path]) -> None:
    with pytest.raises(ModelNotFoundError, match="no spec.json"):
        run_benchmark([tmp_path], out_dir=tmp_path / "out")
    with pytest.raises(ConfigError, match="providers: unknown rocm"):
        run_benchmark([exports["text"]], providers=("cpu", "rocm"), out_dir=tmp_path / "out")


def test_cli_main(exports: dict[str, Path], tmp_path: Path, cpu_only: None, capsys: pytest.CaptureFixture) -> None:
    argv = [str(exports["text"]), "--batch", "1", "--repeats", "2", "--warmup", "0", "--variants", "fp32"]
    assert main([*argv, "--providers", "cpu", "cuda", "--no-torch", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "| text | fp32 | cpu | 1 |" in printed
    report = json.loads((tmp_path / "bench.json").read_text())
    assert [r["runtime"] for r in report["results"]] == ["onnxruntime"]
    assert report["unavailable_providers"] == ["cuda"]


def test_directory_written_by_suite_export(tmp_path: Path, cpu_only: None) -> None:
    """The contract end to end: suite.export writes the directory, run_benchmark reads it and rebuilds the student
    (the "tiny-text" factory, whose tokenizer kwarg points into the export)."""
    from suite.export import export_student, text_classifier_spec
    from suite.students.text import build_vocab_tokenizer, tiny_text_classifier
    from tests.bench.exported import TEXTS

    tokenizer = build_vocab_tokenizer(TEXTS * 4, vocab_size=120)
    kwargs = {"num_labels": 2, "dim": 8, "layers": 1, "heads": 2, "ffn": 16, "dropout": 0.0}
    torch.manual_seed(0)
    model = tiny_text_classifier(tokenizer=tokenizer, **kwargs).eval()

    def batch(texts: list[str]) -> dict[str, torch.Tensor]:
        return dict(tokenizer(texts, padding=True, return_tensors="pt"))

    out = export_student(
        model,
        text_classifier_spec(2, max_length=32),
        batch(["the park"]),
        [batch(TEXTS[:3]), batch([*TEXTS, "the park is green and the cat sat on the mat"])],
        tmp_path / "exported",
        tokenizer=tokenizer,
        metrics={"accuracy": 0.6},
        student_name="tiny-text",
        student_kwargs={**kwargs, "tokenizer": tokenizer},
        int8=True,
    )
    report = run_benchmark([out], batch_sizes=(1,), out_dir=tmp_path / "bench", warmup=0, repeats=2, progress=False)
    rows = {(r["variant"], r["provider"]) for r in report["results"]}
    assert rows == {("fp32", "cpu"), ("int8", "cpu"), ("eager", "torch-cpu")}
    assert all(r["seq_len"] == 32 for r in report["results"])


# -- hygiene ---------------------------------------------------------------------------------------------------


def test_configurations_are_timed_call_by_call_in_turn() -> None:
    from suite.bench.latency import Timed, time_interleaved

    calls: list[str] = []

    def timed(name: str) -> Timed:
        return Timed(lambda: calls.append(name), lambda: None, lambda: None, {"batch_size": 1}, lambda peak: {})

    rows = time_interleaved([timed("a"), timed("b")], warmup=2, repeats=5, block=2)
    # warm-up per configuration, then turns of one untimed call and up to 2 timed ones, until 5 are timed
    assert calls == ["a"] * 2 + ["b"] * 2 + (["a"] * 3 + ["b"] * 3) * 2 + ["a"] * 2 + ["b"] * 2
    assert [r["repeats"] for r in rows] == [5, 5]


def test_both_runtimes_share_threads_and_eager_runs_in_inference_mode(exports: dict[str, Path], cpu_only: None,
                                                                       tmp_path: Path) -> None:  # fmt: skip
    import torch

    from suite.export.package import load_torch_student

    seen = []
    spec = json.loads((exports["text"] / "spec.json").read_text())
    model = load_torch_student(exports["text"])
    model.register_forward_hook(lambda *_: seen.append(torch.is_inference_mode_enabled()))
    from suite.bench.latency import prepare_torch, time_interleaved, tokenizer_vocab_size

    feeds = synth_inputs(spec, 1, vocab_size=tokenizer_vocab_size(exports["text"]))
    time_interleaved([prepare_torch(model, [torch.from_numpy(v) for v in feeds.values()])], 1, 2)
    assert seen and all(seen)
    threads = torch.get_num_threads()
    report = run_benchmark([exports["text"]], batch_sizes=(1,), variants=("fp32",), out_dir=tmp_path, warmup=1,
                           repeats=2, intra_op_threads=1, progress=False)  # fmt: skip
    assert {r["intra_op_threads"] for r in report["results"]} == {1}
    assert {r["runtime"] for r in report["results"]} == {"onnxruntime", "torch"}
    assert torch.get_num_threads() == threads  # restored
    assert len(report["load_average"]["before"]) == 3


def test_a_busy_machine_is_refused_above_max_load(exports: dict[str, Path], monkeypatch, tmp_path: Path) -> None:
    import os

    from suite.errors import ConfigError

    monkeypatch.setattr(os, "getloadavg", lambda: (7.5, 3.0, 1.0))
    with pytest.raises(ConfigError, match="load average 7.50 is above --max-load 1"):
        run_benchmark([exports["text"]], batch_sizes=(1,), out_dir=tmp_path, max_load=1.0, progress=False)


def test_real_length_rows_beside_the_padded_ones(exports: dict[str, Path], cpu_only: None, tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text(
        "".join(json.dumps({"text": t, "text_pair": "a cat"}) + "\n" for t in ["the cat", "a dog ran"] * 8)
    )
    report = run_benchmark([exports["text"], exports["vision"]], batch_sizes=(2,), variants=("fp32",), warmup=1,
                           repeats=2, out_dir=tmp_path / "out", real_data=data, progress=False)  # fmt: skip
    text = [r for r in report["results"] if r["model"] == exports["text"].name]
    kinds = {(r["runtime"], r["inputs"]): r["seq_len"] for r in text}
    spec = json.loads((exports["text"] / "spec.json").read_text())
    assert kinds[("onnxruntime", "padded")] == kinds[("torch", "padded")] == spec["max_length"]
    assert kinds[("onnxruntime", "real")] == kinds[("torch", "real")] < spec["max_length"]
    assert all(r["speedup_vs_torch"] is not None for r in text if r["runtime"] == "onnxruntime")
    vision = [r for r in report["results"] if r["model"] == exports["vision"].name]
    assert {r["inputs"] for r in vision} == {"padded"}  # images have no token length


def test_the_latency_plot_of_a_pack_with_many_students_keeps_its_legend_without_warnings(tmp_path):
    import warnings

    from PIL import Image

    from suite.bench.report import plot_latency_vs_batch

    rows = [{"model": f"task_b{b}_method{m}", "variant": v, "provider": "CPUExecutionProvider", "batch_size": n,
             "p50_ms": 1.0 + m + n / 8} for b in (10, 25, 50, 100) for m in range(4) for v in ("fp32", "int8", "fp16")
            for n in (1, 8, 32)]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns when a crowded figure cannot be laid out
        path = plot_latency_vs_batch(rows, tmp_path / "latency_vs_batch.png")
    width, height = Image.open(path).size
    assert width > 7 * 120  # the 48-line legend sits beside the axes, not over them
