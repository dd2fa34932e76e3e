"""Generic ONNX export, the mandatory parity check against PyTorch, and int8 / fp16 variants.

Parity (CONVENTIONS item 9): on held-out inputs whose batch size and sequence length differ from the traced
example, every output must satisfy ``max |onnx - torch| <= spec.tolerance`` and the argmax of ``logits`` must agree
everywhere; otherwise :class:`ExportParityError`. Reduced-precision variants are held to
``spec.variant_tolerance[variant]`` and to a task-metric drop of at most ``max_metric_drop``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from suite.errors import ConfigError
from suite.export.errors import ExportParityError
from suite.export.runtime import select_providers
from suite.export.spec import ExportSpec, variant_filename
from suite.export.wrappers import wrap_for_export

Inputs = dict[str, torch.Tensor]
RunFn = Callable[[dict[str, np.ndarray]], np.ndarray]


@dataclass
class ParityReport:
    """How far one ONNX file is from PyTorch on the held-out inputs.

    ``argmax_agreement`` is the fraction of positions where argmax(logits) agrees (None for graphs without
    ``logits``, such as a seq2seq encoder); ``metric_drop`` is set for int8/fp16 variants only.
    """

    variant: str
    max_abs_diff: float
    argmax_agreement: float | None
    tolerance: float
    per_output: dict[str, float]
    metric_drop: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The spec.json ``parity`` entry."""
        keys = ("max_abs_diff", "argmax_agreement", "tolerance", "metric_drop")
        return {key: getattr(self, key) for key in keys}


def _ordered(inputs: Inputs, spec: ExportSpec) -> tuple[torch.Tensor, ...]:
    missing = [name for name in spec.input_names if name not in inputs]
    if missing:
        raise ConfigError(f"export inputs: missing {missing} (spec wants {spec.input_names})")
    return tuple(inputs[name] for name in spec.input_names)


def export_onnx(model: nn.Module, spec: ExportSpec, example_inputs: Inputs, out_dir: str | Path) -> Path:
    """Trace ``model`` (wrapped per ``spec``) to ``out_dir/spec.filename`` and validate it with onnx.checker.

    Uses the TorchScript exporter (``dynamo=False``; at opset 17 it writes IR 8, which onnxruntime 1.31 loads). The
    model is traced in eval mode and its previous mode is restored.
    """
    import onnx

    path = Path(out_dir) / spec.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        # Tracer warnings flag Python values frozen into the graph; the parity check on other shapes is what
        # catches the ones that matter, so they are noise here.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message="Exporting aten::index operator")  # transformers' mask code
            torch.onnx.export(
                wrap_for_export(model, spec),
                _ordered(example_inputs, spec),
                str(path),
                input_names=spec.input_names,
                output_names=spec.output_names,
                dynamic_axes=spec.dynamic_axes,
                opset_version=spec.opset,
                dynamo=False,
            )
    finally:
        model.train(was_training)
    onnx.checker.check_model(str(path))
    return path


def describe_onnx(path: str | Path) -> dict[str, Any]:
    """``ir_version``, ``opset`` and the ``inputs``/``outputs`` entries of spec.json, read from the graph itself.

    A dimension is its size when fixed and its axis name (``"batch"``) when dynamic.
    """
    import onnx

    model = onnx.load(str(path), load_external_data=False)

    def entries(values: Any) -> list[dict[str, Any]]:
        out = []
        for value in values:
            tensor = value.type.tensor_type
            shape = [d.dim_param if d.dim_param else d.dim_value for d in tensor.shape.dim]
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
            out.append({"name": value.name, "dtype": dtype, "shape": shape})
        return out

    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return {
        "ir_version": model.ir_version,
        "opset": opset,
        "inputs": entries(model.graph.input),
        "outputs": entries(model.graph.output),
    }


def session(path: str | Path, providers: Sequence[str] | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # fp16 graphs log a warning per node kept in fp32; errors still raise
    return ort.InferenceSession(str(path), options, providers=select_providers(providers))


def _numpy(inputs: Inputs) -> dict[str, np.ndarray]:
    return {name: t.detach().cpu().numpy() for name, t in inputs.items()}


def require_new_shapes(spec: ExportSpec, example: Inputs, heldout: Sequence[Inputs]) -> None:
    """Every dynamic input axis must take a size in ``heldout`` other than the example's, or parity would not
    exercise it (a size frozen into the graph at trace time only shows up at other sizes)."""
    for name, axes in spec.dynamic_axes.items():
        if name not in spec.input_names:
            continue
        for axis, axis_name in axes.items():
            traced = example[name].shape[axis]
            if all(batch[name].shape[axis] == traced for batch in heldout):
                raise ConfigError(
                    f"export heldout_inputs: '{name}' axis {axis} ({axis_name}) is always {traced}, as in the "
                    "example; give held-out inputs another size so parity tests the dynamic axis"
                )


def _torch_outputs(model: nn.Module, spec: ExportSpec, inputs: Inputs) -> list[np.ndarray]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = wrap_for_export(model, spec)(*_ordered(inputs, spec))
    finally:
        model.train(was_training)
    out = out if isinstance(out, tuple) else (out,)
    return [t.float().numpy() for t in out]


def _compare(
    onnx_path: str | Path,
    model: nn.Module,
    spec: ExportSpec,
    heldout: Sequence[Inputs],
    variant: str,
    tolerance: float,
) -> tuple[ParityReport, list[np.ndarray]]:
    """Parity numbers of one file against PyTorch, and the file's logits per held-out batch."""
    sess = session(onnx_path)
    graph_inputs = {i.name for i in sess.get_inputs()}  # the tracer drops inputs the model ignores
    per_output = dict.fromkeys(spec.output_names, 0.0)
    agree = total = 0
    logits = []
    for inputs in heldout:
        expected = _torch_outputs(model, spec, inputs)
        feeds = {k: v for k, v in _numpy(inputs).items() if k in graph_inputs}
        try:
            actual = sess.run(spec.output_names, feeds)
        except Exception as exc:  # onnxruntime's error types share no base class below Exception
            shapes = {k: list(v.shape) for k, v in feeds.items()}
            raise ExportParityError(
                f"{Path(onnx_path).name}: onnxruntime fails on held-out shapes {shapes}: {exc}"
            ) from exc
        for name, want, got in zip(spec.output_names, expected, actual, strict=True):
            if want.shape != got.shape:
                raise ExportParityError(f"{Path(onnx_path).name}: '{name}' has shape {got.shape}, torch {want.shape}")
            diff = float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0
            per_output[name] = max(per_output[name], diff if math.isfinite(diff) else math.inf)
        if "logits" in spec.output_names:
            i = spec.output_names.index("logits")
            agree += int((expected[i].argmax(-1) == actual[i].argmax(-1)).sum())
            total += expected[i][..., 0].size
            logits.append(actual[i])
    report = ParityReport(
        variant=variant,
        max_abs_diff=max(per_output.values()),
        argmax_agreement=agree / total if total else None,
        tolerance=tolerance,
        per_output=per_output,
    )
    return report, logits


def check_parity(
    onnx_path: str | Path,
    model: nn.Module,
    spec: ExportSpec,
    heldout_inputs: Sequence[Inputs],
    *,
    example_inputs: Inputs | None = None,
) -> ParityReport:
    """Compare the fp32 ONNX file with PyTorch on ``heldout_inputs``; raise ExportParityError unless
    ``max_abs_diff <= spec.tolerance`` (every output) and argmax(logits) agrees at every position.

    With ``example_inputs`` (the traced ones), also require the held-out inputs to change every dynamic axis.
    """
    if not heldout_inputs:
        raise ConfigError("export heldout_inputs: at least one held-out batch is needed for the parity check")
    if example_inputs is not None:
        require_new_shapes(spec, example_inputs, heldout_inputs)
    report, _ = _compare(onnx_path, model, spec, heldout_inputs, "fp32", spec.tolerance)
    worst = max(report.per_output, key=report.per_output.get)
    if not report.max_abs_diff <= spec.tolerance:  # `not <=` also rejects NaN
        raise ExportParityError(
            f"{Path(onnx_path).name}: max |onnx - torch| = {report.max_abs_diff:.3g} on '{worst}' exceeds the "
            f"tolerance {spec.tolerance:g}; the export is rejected"
        )
    if report.argmax_agreement is not None and report.argmax_agreement < 1.0:
        raise ExportParityError(
            f"{Path(onnx_path).name}: argmax(logits) agrees with torch on only {report.argmax_agreement:.1%} of "
            "held-out positions; the export is rejected"
        )
    return report


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of positions where ``predictions == labels``."""
    return float(np.mean(np.asarray(predictions) == np.asarray(labels)))


def metric_drop(
    fp32_predictions: np.ndarray,
    variant_predictions: np.ndarray,
    labels: np.ndarray | None = None,
    metric: Callable[[np.ndarray, np.ndarray], float] = accuracy,
) -> float:
    """``metric(fp32, labels) - metric(variant, labels)``, in the metric's units (accuracy: 0.01 = one point).

    Without labels the fp32 predictions are the reference, so the accuracy drop is ``1 - agreement``: an upper
    bound on the drop for any labels, since the variant can only lose accuracy where it disagrees with fp32.
    """
    reference = fp32_predictions if labels is None else labels
    return metric(fp32_predictions, reference) - metric(variant_predictions, reference)


def _run_fn(path: str | Path) -> RunFn:
    sess = session(path)
    graph_inputs = {i.name for i in sess.get_inputs()}
    return lambda inputs: sess.run(["logits"], {k: v for k, v in inputs.items() if k in graph_inputs})[0]


def check_variant(
    variant_path: str | Path,
    fp32_path: str | Path,
    model: nn.Module,
    spec: ExportSpec,
    heldout_inputs: Sequence[Inputs],
    variant: str,
    *,
    eval_fn: Callable[[RunFn], float] | None = None,
    max_metric_drop: float = 0.01,
) -> ParityReport:
    """Parity of an int8/fp16 file: outputs within ``spec.variant_tolerance[variant]`` of PyTorch, and a task
    metric drop of at most ``max_metric_drop`` against the fp32 ONNX file; otherwise ExportParityError.

    ``eval_fn(run)`` computes the task metric on the caller's evaluation set, ``run`` mapping a dict of numpy
    inputs to logits; without it the drop is :func:`metric_drop` of the held-out argmax predictions against fp32.
    """
    tolerance = spec.variant_tolerance[variant]
    report, variant_logits = _compare(variant_path, model, spec, heldout_inputs, variant, tolerance)
    if eval_fn is not None:
        report.metric_drop = float(eval_fn(_run_fn(fp32_path)) - eval_fn(_run_fn(variant_path)))
    else:
        _, fp32_logits = _compare(fp32_path, model, spec, heldout_inputs, "fp32", spec.tolerance)
        fp32_predictions = np.concatenate([x.argmax(-1).ravel() for x in fp32_logits])
        report.metric_drop = metric_drop(
            fp32_predictions, np.concatenate([x.argmax(-1).ravel() for x in variant_logits])
        )
    name = Path(variant_path).name
    if not report.max_abs_diff <= tolerance:
        raise ExportParityError(
            f"{name}: max |{variant} - torch| = {report.max_abs_diff:.3g} exceeds its tolerance {tolerance:g}"
        )
    if not report.metric_drop <= max_metric_drop:
        raise ExportParityError(
            f"{name}: the task metric drops by {report.metric_drop:.4f} against fp32 (allowed {max_metric_drop:g})"
        )
    return report


# Dynamic int8 on CPU: ConvInteger has no int8-weight kernel in onnxruntime's CPU provider, so Conv stays fp32;
# MatMul/Gemm (MatMulInteger) and Gather (int8 embedding tables) are the layers that dominate text students.
INT8_OP_TYPES = ("MatMul", "Gemm", "Gather")
# A fused encoder: its fused Attention nodes hold the QKV projections, so they are quantized too.
FUSED_INT8_OP_TYPES = ("MatMul", "Gemm", "Attention")


def quantize_int8(onnx_path: str | Path, out_path: str | Path | None = None, fused: bool = False) -> Path:
    """Dynamic int8 quantisation (onnxruntime.quantization.quantize_dynamic, QInt8 weights).

    Weights are quantised offline, activations per batch at run time (Jacob et al., 2018), so no calibration data is
    needed. Plain graphs: ``INT8_OP_TYPES``, one scale per weight tensor. Fused encoders (``fused``):
    ``FUSED_INT8_OP_TYPES`` with one scale per output channel, which keeps the logits closer to fp32. Written next
    to the input as ``model.int8.onnx`` unless ``out_path`` is given.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = Path(out_path) if out_path else Path(onnx_path).with_name(variant_filename(Path(onnx_path).name, "int8"))
    op_types = FUSED_INT8_OP_TYPES if fused else INT8_OP_TYPES
    # ONNX shape inference cannot type the outputs of onnxruntime's fused (com.microsoft) ops: they are float.
    extra = {"DefaultTensorType": onnx.TensorProto.FLOAT} if fused else None
    with _without_preprocessing_advice():
        quantize_dynamic(str(onnx_path), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=list(op_types),
                         per_channel=fused, extra_options=extra)  # fmt: skip
    return out


class _PreprocessingAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextlib.contextmanager
def _without_preprocessing_advice() -> Iterator[None]:
    """quantize_dynamic logs, on every call, advice to run its pre-processing (symbolic shape inference for static
    quantization); a run that quantizes dozens of students would print it dozens of times, so it is dropped."""
    advice = _PreprocessingAdvice()
    logging.getLogger().addFilter(advice)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(advice)


@contextlib.contextmanager
def eager_attention(model: nn.Module) -> Iterator[None]:
    """Trace Hugging Face models inside ``model`` with eager attention: SDPA's exported graph (a constant-scale Mul,
    a NaN guard, a boolean-mask Where) is not a pattern onnxruntime's attention fusion recognises."""
    from transformers import PreTrainedModel

    models = [m for m in model.modules() if isinstance(m, PreTrainedModel)]
    before = [m.config._attn_implementation for m in models]
    for m in models:
        m.set_attn_implementation("eager")
    try:
        yield
    finally:
        for m, implementation in zip(models, before, strict=True):
            m.set_attn_implementation(implementation)


def fuse_encoder(onnx_path: str | Path, fuse: dict[str, Any]) -> dict[str, Any]:
    """Rewrite ``onnx_path`` in place with onnxruntime's transformer fusions (Attention, EmbedLayerNormalization,
    SkipLayerNormalization, BiasGelu); returns the op counts before and after, for spec.json."""
    import onnx
    from onnxruntime.transformers.optimizer import optimize_model

    before = len(onnx.load(str(onnx_path)).graph.node)
    optimized = optimize_model(str(onnx_path), model_type=fuse["model_type"], num_heads=fuse["num_heads"],
                               hidden_size=fuse["hidden_size"])  # fmt: skip
    optimized.save_model_to_file(str(onnx_path))
    graph = onnx.load(str(onnx_path)).graph
    counts: dict[str, int] = {}
    for node in graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    onnx.checker.check_model(str(onnx_path))
    return {
        **fuse,
        "nodes_before": before,
        "nodes_after": len(graph.node),
        "attention_nodes": counts.get("Attention", 0),
    }


def convert_fp16(onnx_path: str | Path, out_path: str | Path | None = None) -> Path:
    """fp16 weights and activations (onnxruntime.transformers.float16, shipped with the pinned onnxruntime 1.31.1)
    with ``keep_io_types=True``: inputs and outputs stay float32, so callers and the spec do not change."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    out = Path(out_path) if out_path else Path(onnx_path).with_name(variant_filename(Path(onnx_path).name, "fp16"))
    model = OnnxModel(convert_float_to_float16(onnx.load(str(onnx_path)), keep_io_types=True))
    model.topological_sort()  # the converter appends the input casts after their consumers; onnx.checker refuses that
    onnx.save(model.model, str(out))
    onnx.checker.check_model(str(out))
    return out
