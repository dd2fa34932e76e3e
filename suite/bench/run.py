"""Benchmark exported student directories side by side with eager PyTorch, and write the report.

An exported directory (written by :mod:`suite.export`) holds ``model.onnx`` (fp32) and optionally
``model.int8.onnx`` / ``model.fp16.onnx``, a ``spec.json`` describing the inputs, and, when ``spec["torch"]`` is
set, the ``student.safetensors`` that rebuilds the PyTorch model for the eager comparison in the same run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from suite.bench.generation import GENERATION_FAMILIES, add_per_token, generation_timed, prompts_for
from suite.bench.latency import (
    GPU_PROVIDERS,
    PROVIDERS,
    Timed,
    physical_cores,
    prepare_onnx,
    prepare_torch,
    provider_available,
    short_provider,
    synth_inputs,
    time_interleaved,
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


def _onnx_timed(
    export_dir: Path,
    spec: Mapping[str, Any],
    providers: Sequence[str],
    variants: Sequence[str],
    batch: int,
    options: Mapping[str, Any],
    skipped: list[dict[str, str]],
    feeds: list[dict[str, Any]] | None,
) -> list[tuple[dict[str, Any], Timed]]:
    model, timed = export_dir.name, []
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
            prepared = prepare_onnx(path, spec, provider, batch, options["seq_len"], io_binding=gpu,
                                    intra_op_threads=options["intra_op_threads"], feeds=feeds)  # fmt: skip
            timed.append(({"model": model, "variant": variant}, prepared))
    return timed


def _torch_timed(
    export_dir: Path,
    spec: Mapping[str, Any],
    devices: Sequence[str],
    batch: int,
    options: Mapping[str, Any],
    skipped: list[dict[str, str]],
    feeds: list[dict[str, Any]] | None,
) -> list[tuple[dict[str, Any], Timed]]:
    import torch

    module = load_torch_student(export_dir, spec)
    if module is None:
        skipped.append(_skip(export_dir.name, 'spec.json has no "torch" entry; no eager comparison', variant="eager"))
        return []
    names = [i["name"] for i in spec["inputs"]]
    example = synth_inputs(spec, batch, options["seq_len"], tokenizer_vocab_size(export_dir))
    positional = [torch.from_numpy(example[n]) for n in names]  # as exported
    real = [[torch.from_numpy(f[n]) for n in names] for f in feeds] if feeds else None
    return [({"model": export_dir.name, "variant": "eager"}, prepare_torch(module, positional, d, batches=real))
            for d in devices]  # fmt: skip


def check_load(max_load: float | None) -> list[float]:
    """The 1/5/15-minute load averages; a warning on a busy machine, a refusal above ``max_load``."""
    load = list(os.getloadavg())
    cores = os.cpu_count() or 1
    if max_load is not None and load[0] > max_load:
        raise ConfigError(f"bench: load average {load[0]:.2f} is above --max-load {max_load:g}; timings would lie")
    if load[0] > 0.5 * cores:
        print(f"warning: load average {load[0]:.2f} on {cores} logical cores: other work will inflate the timings")
    return load


def _set_torch_threads(threads: int) -> int:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    return before


REAL_BATCHES = 16  # real-length batches cycled through per row


def real_feeds(export_dir: Path, spec: Mapping[str, Any], data: Path, batch: int) -> list[dict[str, Any]] | None:
    """Batches of the first ``REAL_BATCHES x batch`` examples of ``data``, tokenised by the exported tokenizer and
    truncated to the spec's max length, each padded to its longest; None for models that do not read text."""
    import numpy as np

    if spec["family"] != "text-classifier":
        return None
    from suite.export.runtime import load_exported

    model = load_exported(export_dir)
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()[: REAL_BATCHES * batch]]
    feeds = []
    for start in range(0, len(rows) - batch + 1, batch):
        chunk = rows[start : start + batch]
        pairs = [r["text_pair"] for r in chunk] if all("text_pair" in r for r in chunk) else None
        encoded = model.encode([r["text"] for r in chunk], pairs)
        feeds.append({k: np.asarray(v) for k, v in encoded.items()})
    return feeds or None


def _groups(
    dirs: Sequence[Path], specs: Mapping[Path, Any], available: Sequence[str], variants: Sequence[str],
    batch_sizes: Sequence[int], options: Mapping[str, Any], skipped: list[dict[str, str]], torch_eager: bool,
    real_data: str | Path | None,
) -> list[tuple[str, list[tuple[dict[str, Any], Timed]]]]:  # fmt: skip
    """(label, configurations timed together): one group per model, batch size and kind of input."""
    groups = []
    for d in dirs:
        spec = specs[d]
        if spec["family"] in GENERATION_FAMILIES:
            prompts = prompts_for(d, spec, Path(real_data) if real_data else None, options["seq_len"])
            group = generation_timed(d, spec, prompts, options["max_new_tokens"], options["num_beams"], torch_eager,
                                     options["intra_op_threads"])  # fmt: skip
            groups.append((f"{d.name} generate", group))
            continue
        if spec["family"] not in BENCHMARKED_FAMILIES:
            skipped.append(_skip(d.name, f"family {spec['family']!r}: encoder/decoder latency is not benchmarked"))
            continue
        for batch in batch_sizes:
            real = real_feeds(d, spec, Path(real_data), batch) if real_data else None
            for feeds in [None, real] if real else [None]:
                group = _onnx_timed(d, spec, available, variants, batch, options, skipped, feeds)
                if torch_eager:
                    group += _torch_timed(d, spec, _torch_devices(available), batch, options, skipped, feeds)
                if group:
                    groups.append((f"{d.name} b{batch} {'real' if feeds else 'padded'}", group))
    return groups


def _add_speedups(rows: list[dict[str, Any]]) -> None:
    """speed-up = torch-eager p50 / p50, matched on model, device (cpu, or cuda for GPU providers), batch and inputs
    (padded or real lengths)."""

    def key(r: Mapping[str, Any], provider: str) -> tuple:
        return r["model"], provider, r["batch_size"], r.get("inputs")

    eager = {key(r, r["provider"]): r["p50_ms"] for r in rows if r["runtime"] == "torch"}
    for r in rows:
        if r["runtime"] == "onnxruntime":
            device = "cuda" if r["provider"] in GPU_PROVIDERS else "cpu"
            reference = eager.get(key(r, f"torch-{device}"))
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
    real_data: str | Path | None = None,
    max_load: float | None = None,
    max_new_tokens: int = 32,
    num_beams: int = 1,
) -> dict[str, Any]:
    """Benchmark every variant of every exported dir on every available provider and batch size.

    Hygiene: for each model and batch size, its onnxruntime variants and eager PyTorch are timed call by call in
    turn (not one block after another), with the same thread count (``intra_op_threads``, default the physical
    cores), eager under ``torch.inference_mode``. The load average is recorded before and after; above half the
    logical cores a warning is printed, and above ``max_load`` the benchmark refuses to start. With ``real_data``
    (JSONL with ``text``/``text_pair``) text classifiers get a second set of rows at the data's real token lengths
    (batches of consecutive examples, padded to their longest), besides the padded ``seq_len`` rows. Generation
    students (seq2seq, causal LM) get one row per runtime at batch 1, a call being one whole output for one prompt
    (``max_new_tokens``, ``num_beams``; prompts from ``real_data``'s ``text`` or synthetic ones of ``seq_len``),
    with ``ms_per_token`` beside the per-output latency (:mod:`suite.bench.generation`).

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
    threads = intra_op_threads or physical_cores()
    options = {"seq_len": seq_len, "warmup": warmup, "repeats": repeats, "intra_op_threads": threads,
               "max_new_tokens": max_new_tokens, "num_beams": num_beams}  # fmt: skip
    skipped: list[dict[str, str]] = []
    load_before = check_load(max_load)
    rows = []
    # Both runtimes get the same threads; eager PyTorch would otherwise take every logical core.
    torch_threads = _set_torch_threads(threads)
    try:
        groups = _groups(dirs, specs, available, variants, batch_sizes, options, skipped, torch_eager, real_data)
        with progress_bar(len(groups), "bench", "group", enabled=progress) as bar:
            for label, group in groups:
                bar.set_postfix(run=label)
                timed_rows = time_interleaved([t for _, t in group], warmup, repeats)
                rows += [{**tags, **row} for (tags, _), row in zip(group, timed_rows, strict=True)]
                bar.update(1)
    finally:
        _set_torch_threads(torch_threads)
    _add_speedups(rows)
    add_per_token(rows)
    report = {
        "machine": machine_info(),
        "settings": {"batch_sizes": list(batch_sizes), "providers": providers, "variants": list(variants), **options},
        "unavailable_providers": [p for p in providers if p not in available],
        "load_average": {"before": load_before, "after": list(os.getloadavg())},
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
