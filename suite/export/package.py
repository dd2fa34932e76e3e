"""Write the whole exported directory of a student (the contract shared with suite/bench and the apps)::

    model.onnx [model.int8.onnx] [model.fp16.onnx]   classifiers; generation: [encoder.onnx] decoder.onnx
    spec.json        family, task, inputs/outputs, opset, ir_version, labels, max_length, image_size, rejected, fused,
                     files {name: sha256}, parity {variant: report}, torch {student, kwargs, weights} | null,
                     generation {...} | null (decoding metadata, generation students only)
    tokenizer/       tokenizer.save_pretrained (tokenizer.json is what the torch-free runtime reads)
    metrics.json     the caller's measured metrics, verbatim
    student.safetensors   PyTorch weights, so a benchmark can rebuild the student (build_student(name, **kwargs))
    README.md        Hugging Face-style model card; anything not provided reads "not measured"

Every ONNX file passes its parity check before anything is written about it; a failed check raises
ExportParityError and no spec.json is written, so the runtime refuses the half-written directory.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from suite.checksum import sha256_file
from suite.config import check
from suite.errors import ConfigError
from suite.export.errors import ExportParityError
from suite.export.generation import EXAMPLE_STEPS, HELDOUT_STEPS, component_inputs
from suite.export.onnx_export import (
    ParityReport,
    RunFn,
    check_parity,
    check_variant,
    convert_fp16,
    describe_onnx,
    eager_attention,
    export_onnx,
    fuse_encoder,
    quantize_int8,
)
from suite.export.runtime import read_spec
from suite.export.spec import ExportSpec, GenerationSpec

Inputs = dict[str, torch.Tensor]
NOT_MEASURED = "not measured"
WEIGHTS = "student.safetensors"


@dataclass
class ModelCardInfo:
    """What the model card says beyond the export itself. Leave a field None rather than guess: it is written as
    "not measured". ``retention`` and ``latency`` are text the caller formats from numbers it measured."""

    name: str | None = None
    license: str | None = None
    tags: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    intended_use: str | None = None
    training_data: str | None = None
    training_data_license: str | None = None
    teacher: str | None = None
    retention: str | None = None
    latency: str | None = None
    limitations: str | None = None


def _fresh_dir(out_dir: Path) -> None:
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ConfigError(f"export out_dir: {out_dir} is not empty; export into a new directory")
    out_dir.mkdir(parents=True, exist_ok=True)


def export_classifier_graphs(
    model: nn.Module,
    spec: ExportSpec,
    example: Inputs,
    heldout: Sequence[Inputs],
    out_dir: Path,
    variants: list[str],
    eval_fn: Callable[[RunFn], float] | None,
    max_metric_drop: float,
    rejected: dict[str, str] | None = None,
    fused: dict[str, Any] | None = None,
) -> dict[str, ParityReport]:
    """The ONNX files of a classifier (what :func:`export_student` ships, without the rest of the directory):
    ``model.onnx`` and each of ``variants`` ("int8", "fp16") in ``out_dir``, each parity-checked; their reports.

    fp32 must pass its parity check. A variant that fails its check raises, or, when ``rejected`` is a dict, is
    deleted and its reason recorded there (the gate: ship fp32 alone rather than a variant that lost accuracy).
    With ``spec.fuse`` the fp32 graph that is checked and shipped is the fused one; ``fused`` gets its op counts."""
    fused = {} if fused is None else fused
    if spec.fuse is None:
        path = export_onnx(model, spec, example, out_dir)
    else:
        with eager_attention(model):
            path = export_onnx(model, spec, example, out_dir)
        fused.update(fuse_encoder(path, spec.fuse))
    reports = {"fp32": check_parity(path, model, spec, heldout, example_inputs=example)}
    convert = {"int8": lambda p: quantize_int8(p, fused=spec.fuse is not None), "fp16": convert_fp16}
    for variant in variants:
        variant_path = convert[variant](path)
        try:
            reports[variant] = check_variant(
                variant_path, path, model, spec, heldout, variant, eval_fn=eval_fn, max_metric_drop=max_metric_drop
            )
        except ExportParityError as error:
            if rejected is None:
                raise
            variant_path.unlink()
            rejected[variant] = str(error)
    return reports


def _export_generation(
    model: nn.Module, spec: GenerationSpec, prompt: Inputs, heldout_prompts: Sequence[Inputs], out_dir: Path
) -> dict[str, ParityReport]:
    """Export every component; parity runs on decoder inputs whose past and step lengths differ from the trace."""
    # A traced empty past would freeze transformers' "cache is empty" branch into the graph.
    check(prompt["input_ids"].shape[1] >= 2, "export.example_inputs", "the example prompt needs at least 2 tokens")
    example = component_inputs(model, spec, prompt, EXAMPLE_STEPS)
    heldout = [
        component_inputs(model, spec, p, HELDOUT_STEPS[i % len(HELDOUT_STEPS)], seed=i + 1)
        for i, p in enumerate(heldout_prompts)
    ]
    reports = []
    for component in spec.components:
        name = component.filename
        path = export_onnx(model, component, example[name], out_dir)
        reports.append(check_parity(path, model, component, [h[name] for h in heldout], example_inputs=example[name]))
    decoder = reports[-1]
    merged = ParityReport(
        variant="fp32",
        max_abs_diff=max(r.max_abs_diff for r in reports),
        argmax_agreement=decoder.argmax_agreement,
        tolerance=max(r.tolerance for r in reports),
        per_output={
            f"{c.filename}:{k}": v
            for c, r in zip(spec.components, reports, strict=True)
            for k, v in r.per_output.items()
        },
    )
    return {"fp32": merged}


def _torch_entry(
    model: nn.Module, out_dir: Path, student_name: str | None, student_kwargs: Mapping[str, Any] | None, tokenizer: Any
) -> dict[str, Any] | None:
    """Save the weights and how to rebuild the module; a ``tokenizer`` kwarg becomes the saved tokenizer folder."""
    if student_name is None:
        return None
    from safetensors.torch import save_model

    kwargs = dict(student_kwargs or {})
    if "tokenizer" in kwargs and tokenizer is not None:
        kwargs["tokenizer"] = "tokenizer"  # resolved against the export directory by load_torch_student
    try:
        json.dumps(kwargs)
    except TypeError as exc:
        raise ConfigError(f"export student_kwargs: must be JSON values to go in spec.json ({exc})") from None
    save_model(model, str(out_dir / WEIGHTS))  # drops tied duplicates; load_model restores them
    return {"student": student_name, "kwargs": kwargs, "weights": WEIGHTS}


def _save_tokenizer(tokenizer: Any, out_dir: Path, max_length: int | None) -> None:
    """Save ``tokenizer`` with the spec's truncation and no padding in its tokenizer.json: a fast tokenizer saves
    the settings of its last call (a 12-token parity batch once shipped as 12-token truncation)."""
    from tokenizers import Tokenizer

    tokenizer.save_pretrained(str(out_dir / "tokenizer"))
    path = out_dir / "tokenizer" / "tokenizer.json"
    if not path.is_file():
        raise ConfigError("export tokenizer: no tokenizer.json written; the runtime needs a fast (Rust) tokenizer")
    saved = Tokenizer.from_file(str(path))
    saved.no_padding()
    if max_length:
        saved.enable_truncation(max_length=max_length)
    else:
        saved.no_truncation()
    saved.save(str(path))


def _field(value: str | None) -> str:
    return value if value else NOT_MEASURED


def _format(value: float | None) -> str:
    return NOT_MEASURED if value is None else f"{value:.3g}"


def render_model_card(card: ModelCardInfo, spec: dict[str, Any], metrics: Mapping[str, Any]) -> str:
    """A Hugging Face model card: YAML front matter, then the sections of models/README.md."""
    tags = sorted({"onnx", "distillation", spec["family"], *card.tags})
    front = ["---"] + ([f"license: {card.license}"] if card.license else [])
    front += ["tags:", *(f"- {t}" for t in tags)]
    front += ["datasets:", *(f"- {d}" for d in card.datasets)] if card.datasets else []
    front += [f"pipeline_tag: {spec['task']}", "---", ""]
    parity_rows = [
        f"| {variant} | {_format(r['max_abs_diff'])} | {_format(r['tolerance'])} | {_format(r['argmax_agreement'])} "
        f"| {_format(r['metric_drop'])} |"
        for variant, r in spec["parity"].items()
    ]
    metric_lines = [f"- {k}: {v}" for k, v in metrics.items()] or [f"- {NOT_MEASURED}"]
    body = [
        f"# {card.name or spec['task'] + ' student'}",
        "",
        f"A distilled {spec['family']} student for {spec['task']}, exported to ONNX (opset {spec['opset']}).",
        "",
        "## Intended use",
        _field(card.intended_use),
        "",
        "## Training data",
        _field(card.training_data),
        "",
        f"License of the training data: {_field(card.training_data_license)}",
        "",
        "## Teacher",
        _field(card.teacher),
        "",
        "## Retention",
        _field(card.retention),
        "",
        "## Latency",
        _field(card.latency),
        "",
        "## Metrics",
        *metric_lines,
        "",
        "## Export parity (measured by the export on held-out inputs)",
        "| variant | max abs diff | tolerance | argmax agreement | metric drop |",
        "|---|---|---|---|---|",
        *parity_rows,
        "",
        "## Limitations",
        _field(card.limitations),
        "",
        "## Usage",
        "```python",
        "from suite.export.runtime import load_exported  # numpy + onnxruntime + tokenizers, no torch",
        "",
        'model = load_exported("path/to/this/directory")',
        "```",
        "",
    ]
    return "\n".join(front + body)


def _file_hashes(out_dir: Path) -> dict[str, str]:
    files = sorted(p for p in out_dir.rglob("*") if p.is_file() and p.name != "spec.json")
    return {p.relative_to(out_dir).as_posix(): sha256_file(p) for p in files}


def export_student(
    model: nn.Module,
    spec: ExportSpec | GenerationSpec,
    example_inputs: Inputs,
    heldout_inputs: Sequence[Inputs],
    out_dir: str | Path,
    *,
    tokenizer: Any = None,
    labels: Sequence[str] | None = None,
    metrics: Mapping[str, Any] | None = None,
    card: ModelCardInfo | None = None,
    student_name: str | None = None,
    student_kwargs: Mapping[str, Any] | None = None,
    int8: bool = False,
    fp16: bool = False,
    eval_fn: Callable[[RunFn], float] | None = None,
    max_metric_drop: float = 0.01,
    drop_failing_variants: bool = False,
) -> Path:
    """Export ``model`` to ``out_dir`` (new or empty) with every file of the contract; returns ``out_dir``.

    Classifiers: ``example_inputs``/``heldout_inputs`` are model inputs; held-out batches must change every dynamic
    axis. Generation students: they are tokenised prompts (``input_ids``, ``attention_mask``); decoder inputs with
    several past lengths are derived from them. ``int8``/``fp16`` add variants (classifiers only), accepted when
    the task metric (``eval_fn(run)``, else argmax agreement with fp32) drops by at most ``max_metric_drop``.
    A variant that fails raises :class:`ExportParityError`; with ``drop_failing_variants`` it is left out instead
    and spec.json's ``rejected`` says why (fp32 must always pass).
    """
    out = Path(out_dir)
    if isinstance(spec, GenerationSpec) and (int8 or fp16):
        raise ConfigError("export int8/fp16: variants are exported for classifiers only; generation stays fp32")
    if spec.family == "text-classifier" and tokenizer is None:
        raise ConfigError("export tokenizer: a text classifier needs its tokenizer (the runtime tokenises raw text)")
    if labels is not None and isinstance(spec, ExportSpec):
        spec = dataclasses.replace(spec, labels=list(labels))
    _fresh_dir(out)
    rejected: dict[str, str] = {}
    fused: dict[str, Any] = {}
    if isinstance(spec, GenerationSpec):
        reports = _export_generation(model, spec, example_inputs, heldout_inputs, out)
        first = describe_onnx(out / spec.components[0].filename)
    else:
        variants = [v for v, wanted in (("int8", int8), ("fp16", fp16)) if wanted]
        reports = export_classifier_graphs(
            model, spec, example_inputs, heldout_inputs, out, variants, eval_fn, max_metric_drop,
            rejected if drop_failing_variants else None, fused,
        )  # fmt: skip
        first = describe_onnx(out / spec.filename)
    if tokenizer is not None:
        _save_tokenizer(tokenizer, out, spec.max_length)
    metrics = dict(metrics or {})
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    document = {
        "family": spec.family,
        "task": spec.task,
        "inputs": first["inputs"],
        "outputs": first["outputs"],
        "opset": first["opset"],
        "ir_version": first["ir_version"],
        "labels": None if isinstance(spec, GenerationSpec) else spec.labels,
        "max_length": spec.max_length,
        "image_size": None if isinstance(spec, GenerationSpec) or spec.image_size is None else list(spec.image_size),
        "files": {},
        "parity": {variant: report.to_dict() for variant, report in reports.items()},
        "rejected": rejected,
        "fused": fused or None,
        "torch": _torch_entry(model, out, student_name, student_kwargs, tokenizer),
        "generation": _generation_entry(spec, out) if isinstance(spec, GenerationSpec) else None,
    }
    (out / "README.md").write_text(render_model_card(card or ModelCardInfo(), document, metrics))
    document["files"] = _file_hashes(out)
    (out / "spec.json").write_text(json.dumps(document, indent=2) + "\n")
    return out


def _generation_entry(spec: GenerationSpec, out_dir: Path) -> dict[str, Any]:
    sessions = {}
    for component in spec.components:
        described = describe_onnx(out_dir / component.filename)
        sessions[component.filename] = {"inputs": described["inputs"], "outputs": described["outputs"]}
    return {**spec.to_json(), "sessions": sessions}


def load_torch_student(export_dir: str | Path) -> nn.Module:
    """Rebuild the PyTorch student from spec.json's ``torch`` entry (for side-by-side benchmarks), in eval mode."""
    from safetensors.torch import load_model

    from suite.export.runtime import verified
    from suite.students import build_student

    export_dir = Path(export_dir)
    spec = read_spec(export_dir)
    entry = spec["torch"]
    if entry is None:
        raise ConfigError(f"{export_dir}: exported without student_name; no PyTorch weights to rebuild from")
    kwargs = dict(entry["kwargs"])
    if kwargs.get("tokenizer") == "tokenizer":
        kwargs["tokenizer"] = str(export_dir / "tokenizer")
    model = build_student(entry["student"], **kwargs)
    load_model(model, str(verified(export_dir, spec, entry["weights"])))
    return model.eval()
