"""Benchmark exported student directories side by side with eager PyTorch, and write the report.

An exported directory (written by :mod:`suite.export`) holds ``model.onnx`` (fp32) and optionally
``model.int8.onnx`` / ``model.fp16.onnx``, a ``spec.json`` describing the inputs, and, when ``spec["torch"]`` is
set, the ``student.safetensors`` that rebuilds the PyTorch model for the eager comparison in the same run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from suite.bench.latency import (
    GPU_PROVIDERS,
    PROVIDERS,
    benchmark_onnx,
    benchmark_torch,
    provider_available,
    short_provider,
    synth_inputs,
    tokenizer_vocab_size,
)
from suite.bench.machine import machine_info
from suite.bench.report import markdown_report, plot_latency_vs_batch, plot_metric_vs_latency
from suite.errors import ConfigError, ModelNotFoundError

VARIANT_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx", "fp16": "model.fp16.onnx"}
BENCHMARKED_FAMILIES = ("text-classifier", "vision")


def load_spec(export_dir: Path) -> dict[str, Any]:
    path = export_dir / "spec.json"
    if not path.is_file():
        raise ModelNotFoundError(f"{export_dir}: no spec.json; pass a directory written by `distill export`")
    return json.loads(path.read_text())


def load_torch_student(export_dir: Path, spec: Mapping[str, Any]) -> Any:
    """The PyTorch student rebuilt from ``spec["torch"]`` (registry name, kwargs, verified safetensors), or None
    when the directory was exported without one."""
    if not spec.get("torch"):
        return None
    from suite.export.package import load_torch_student as rebuild

    return rebuild(export_dir)


def variant_metric(metrics: Mapping[str, Any], spec: Mapping[str, Any], variant: str, metric: str) -> float | None:
    """``metrics[variant][metric]`` when metrics.json has per-variant entries; else the top-level value for fp32
    and, for other variants, that value minus ``spec["parity"][variant]["metric_drop"]``."""
    per_variant = metrics.get(variant)
    if isinstance(per_variant, Mapping) and isinstance(per_variant.get(metric), int | float):
        return float(per_variant[metric])
    value = metrics.get(metric)
    if not isinstance(value, int | float):
        return None
    if variant == "fp32":
        return float(value)
    drop = spec.get("parity", {}).get(variant, {}).get("metric_drop")
    return None if drop is None else float(value) - drop


def _skip(model: str, reason: str, **where: str) -> dict[str, str]:
    return {"model": model, **where, "reason": reason}


def _onnx_jobs(
    export_dir: Path,
    spec: Mapping[str, Any],
    providers: Sequence[str],
    variants: Sequence[str],
    batch_sizes: Sequence[int],
    options: Mapping[str, Any],
    skipped: list[dict[str, str]],
) -> list[tuple[str, Callable[[], dict[str, Any]], dict[str, Any]]]:
    model, jobs = export_dir.name, []
    for variant in variants:
        path = export_dir / VARIANT_FILES[variant]
        if not path.is_file():
            skipped.append(_skip(model, f"no {path.name}", variant=variant))
            continue
        for provider in providers:
            if variant == "fp16" and provider == "cpu":
                skipped.append(_skip(model, "fp16 graphs are benchmarked on GPU providers only", variant=variant))
                continue
            gpu = provider in GPU_PROVIDERS
            for batch in batch_sizes:
                kwargs = dict(options, io_binding=gpu)
                job = lambda p=path, pr=provider, b=batch, kw=kwargs: benchmark_onnx(p, spec, pr, b, **kw)  # noqa: E731
                jobs.append((f"{model} {variant} {provider} b{batch}", job, {"model": model, "variant": variant}))
    return jobs


def _torch_jobs(
    export_dir: Path,
    spec: Mapping[str, Any],
    devices: Sequence[str],
    batch_sizes: Sequence[int],
    options: Mapping[str, Any],
    skipped: list[dict[str, str]],
) -> list[tuple[str, Callable[[], dict[str, Any]], dict[str, Any]]]:
    import torch

    model_name = export_dir.name
    module = load_torch_student(export_dir, spec)
    if module is None:
        skipped.append(_skip(model_name, 'spec.json has no "torch" entry; no eager comparison', variant="eager"))
        return []
    vocab, jobs = tokenizer_vocab_size(export_dir), []
    for device in devices:
        for batch in batch_sizes:
            feeds = synth_inputs(spec, batch, options["seq_len"], vocab)
            inputs = [torch.from_numpy(feeds[i["name"]]) for i in spec["inputs"]]  # positional, as exported

            def job(d: str = device, x: list = inputs) -> dict[str, Any]:
                return benchmark_torch(module, x, d, options["warmup"], options["repeats"])

            jobs.append((f"{model_name} torch {device} b{batch}", job, {"model": model_name, "variant": "eager"}))
    return jobs


def _add_speedups(rows: list[dict[str, Any]]) -> None:
    """speed-up = torch-eager p50 / p50, matched on model, device (cpu, or cuda for GPU providers) and batch."""
    eager = {(r["model"], r["provider"], r["batch_size"]): r["p50_ms"] for r in rows if r["runtime"] == "torch"}
    for r in rows:
        if r["runtime"] == "onnxruntime":
            device = "cuda" if r["provider"] in GPU_PROVIDERS else "cpu"
            reference = eager.get((r["model"], f"torch-{device}", r["batch_size"]))
            r["speedup_vs_torch"] = None if reference is None else reference / r["p50_ms"]


def _metric_points(
    export_dirs: Iterable[Path], rows: Sequence[Mapping[str, Any]], metric: str
) -> list[dict[str, Any]]:
    points = []
    for export_dir in export_dirs:
        path = export_dir / "metrics.json"
        if not path.is_file():
            continue
        metrics, spec = json.loads(path.read_text()), load_spec(export_dir)
        for r in rows:
            if r["model"] != export_dir.name or r["runtime"] != "onnxruntime" or r["batch_size"] != 1:
                continue
            value = variant_metric(metrics, spec, r["variant"], metric)
            if value is not None:
                points.append({**{k: r[k] for k in ("model", "variant", "provider", "p50_ms")}, "metric": value})
    return points


def _check_choices(name: str, values: Sequence[str], allowed: Iterable[str]) -> None:
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ConfigError(f"{name}: unknown {', '.join(unknown)} (choose from {', '.join(allowed)})")


def run_benchmark(
    export_dirs: Sequence[str | Path],
    batch_sizes: Sequence[int] = (1, 8, 32),
    providers: Sequence[str] = ("cpu", "cuda", "tensorrt"),
    variants: Sequence[str] = ("fp32", "int8", "fp16"),
    torch_eager: bool = True,
    out_dir: str | Path = "runs/bench",
    *,
    warmup: int = 10,
    repeats: int = 50,
    seq_len: int | None = None,
    metric: str | None = None,
    intra_op_threads: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Benchmark every variant of every exported dir on every available provider and batch size.

    Writes ``bench.json`` (machine, settings, rows, skips), ``bench.md``, ``latency_vs_batch.png`` and, when
    ``metric`` names a key found in ``<dir>/metrics.json``, ``metric_vs_latency.png``. Providers missing from this
    onnxruntime build are listed under ``unavailable_providers``; they never raise.
    """
    from suite.progress import progress_bar

    providers = [short_provider(p) for p in providers]
    _check_choices("providers", providers, PROVIDERS)
    _check_choices("variants", variants, VARIANT_FILES)
    dirs = [Path(d) for d in export_dirs]
    specs = {d: load_spec(d) for d in dirs}
    available = [p for p in providers if provider_available(p)]
    options = {"seq_len": seq_len, "warmup": warmup, "repeats": repeats, "intra_op_threads": intra_op_threads}
    skipped: list[dict[str, str]] = []
    jobs = []
    for d in dirs:
        if specs[d]["family"] not in BENCHMARKED_FAMILIES:
            skipped.append(_skip(d.name, f"family {specs[d]['family']!r}: encoder/decoder latency is not benchmarked"))
            continue
        jobs += _onnx_jobs(d, specs[d], available, variants, batch_sizes, options, skipped)
        if torch_eager:
            jobs += _torch_jobs(d, specs[d], _torch_devices(available), batch_sizes, options, skipped)
    rows = []
    with progress_bar(len(jobs), "bench", "run", enabled=progress) as bar:
        for label, job, tags in jobs:
            bar.set_postfix(run=label)
            rows.append({**tags, **job()})
            bar.update(1)
    _add_speedups(rows)
    report = {
        "machine": machine_info(),
        "settings": {"batch_sizes": list(batch_sizes), "providers": providers, "variants": list(variants), **options},
        "unavailable_providers": [p for p in providers if p not in available],
        "results": rows,
        "skipped": skipped,
    }
    return _write(report, dirs, Path(out_dir), metric)


def _torch_devices(available: Sequence[str]) -> list[str]:
    import torch

    gpu = torch.cuda.is_available() and any(p in GPU_PROVIDERS for p in available)
    return ["cpu", "cuda"] if gpu else ["cpu"]


def _write(report: dict[str, Any], dirs: Sequence[Path], out: Path, metric: str | None) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": out / "bench.json", "markdown": out / "bench.md"}
    if report["results"]:
        files["latency_plot"] = plot_latency_vs_batch(report["results"], out / "latency_vs_batch.png")
    points = _metric_points(dirs, report["results"], metric) if metric else []
    if points:
        files["metric_plot"] = plot_metric_vs_latency(points, metric, out / "metric_vs_latency.png")
    report["files"] = {k: str(v) for k, v in files.items()}
    files["markdown"].write_text(markdown_report(report))
    files["json"].write_text(json.dumps(report, indent=2))
    return report
