"""Per-model export specs: the names, dtypes' roles and dynamic axes of each ONNX file, and how close it must stay
to PyTorch (CONVENTIONS item 9: a spec, a generic export, a mandatory parity check).

One :class:`ExportSpec` describes one ONNX file. Generation students need two (seq2seq: ``encoder.onnx`` and a
decoder with past) or one (causal LM: ``decoder.onnx`` with past), grouped with their cache geometry and special
tokens in a :class:`GenerationSpec`. Nothing here imports torch at module level; the generation builders probe the
model's cache once, lazily.

Decoder-with-past I/O (one graph serves the first step and every later one; the first step feeds a past of length
0)::

    past_key_values.{i}.key / .value   (B, heads, past_sequence, head_dim)   float32, i = 0..layers-1
    present.{i}.key / .value           (B, heads, total_sequence, head_dim)  = past ++ this step's keys/values
    logits                             (B, sequence, vocab)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from suite.config import check

FAMILIES = ("text-classifier", "vision", "seq2seq", "causal-lm")
COMPONENTS = ("model", "encoder", "decoder")

# Looser tolerances (max |variant logit - torch logit|) for reduced-precision variants; recorded in spec.json.
# fp16 keeps 11 significant bits: a logit of magnitude 10 is rounded by up to 5e-3 at the output alone, and the
# rounding of every intermediate adds to that. Dynamic int8 (per-tensor weight scale, per-batch activation scale)
# moves the logits of small models by a few percent of their range. A variant is accepted when its task metric
# drops by at most ``max_metric_drop``; the tolerance additionally rejects numerically broken conversions (NaN,
# overflow) that a small evaluation sample might not reveal.
VARIANT_TOLERANCE = {"int8": 0.5, "fp16": 5e-2}
VARIANT_FILES = {"fp32": "", "int8": ".int8", "fp16": ".fp16"}


def variant_filename(filename: str, variant: str) -> str:
    """``model.onnx`` -> ``model.int8.onnx`` / ``model.fp16.onnx``; fp32 keeps the name."""
    stem = filename.removesuffix(".onnx")
    return f"{stem}{VARIANT_FILES[variant]}.onnx"


FUSED_MODEL_TYPES = ("bert",)  # encoder layouts onnxruntime.transformers.optimizer fuses here


@dataclass
class ExportSpec:
    """What one ONNX file takes and returns, and the parity tolerance it is held to.

    ``dynamic_axes`` maps an input or output name to ``{axis: axis_name}`` (torch.onnx.export's format); every other
    axis is fixed at the example's size. ``component`` says which wrapper turns the student's output dict into the
    tuple of ``output_names``: ``model`` for classifiers, ``encoder``/``decoder`` for generation students.
    """

    family: str
    task: str
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]]
    opset: int = 17
    labels: list[str] | None = None
    max_length: int | None = None
    image_size: tuple[int, int, int] | None = None
    tolerance: float = 1e-4
    variant_tolerance: dict[str, float] = field(default_factory=lambda: dict(VARIANT_TOLERANCE))
    component: str = "model"
    filename: str = "model.onnx"
    # onnxruntime's transformer fusions for an encoder: {"model_type": "bert", "num_heads": H, "hidden_size": D}.
    # The model is traced with eager attention (SDPA's graph defeats the fusions) and the fused graph is what ships,
    # after the same parity check; int8 then quantizes it per channel.
    fuse: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        check(self.family in FAMILIES, "export.family", f"must be one of {FAMILIES}, got '{self.family}'")
        check(self.component in COMPONENTS, "export.component", f"must be one of {COMPONENTS}")
        check(bool(self.input_names) and bool(self.output_names), "export.input_names", "inputs and outputs needed")
        names = [*self.input_names, *self.output_names]
        check(len(set(names)) == len(names), "export.input_names", f"names must be unique, got {names}")
        unknown = set(self.dynamic_axes) - set(names)
        check(not unknown, "export.dynamic_axes", f"names not among inputs/outputs: {sorted(unknown)}")
        check(self.tolerance > 0, "export.tolerance", f"must be > 0, got {self.tolerance}")
        check(7 <= self.opset <= 20, "export.opset", f"the TorchScript exporter writes opsets 7-20, got {self.opset}")
        check(self.filename.endswith(".onnx"), "export.filename", f"must end with .onnx, got '{self.filename}'")
        if self.labels is not None:
            check(len(set(self.labels)) == len(self.labels) > 0, "export.labels", "must be unique and non-empty")
        if self.image_size is not None:
            check(len(self.image_size) == 3, "export.image_size", f"must be [C, H, W], got {self.image_size}")
            self.image_size = tuple(int(d) for d in self.image_size)
        if self.fuse is not None:
            check(self.fuse.get("model_type") in FUSED_MODEL_TYPES, "export.fuse",
                  f"model_type must be one of {FUSED_MODEL_TYPES}, got {self.fuse.get('model_type')!r}")  # fmt: skip
            check(min(self.fuse.get("num_heads", 0), self.fuse.get("hidden_size", 0)) > 0, "export.fuse",
                  "needs num_heads and hidden_size")  # fmt: skip
        unknown_variants = set(self.variant_tolerance) - {"int8", "fp16"}
        check(not unknown_variants, "export.variant_tolerance", f"unknown variants {sorted(unknown_variants)}")


@dataclass
class GenerationSpec:
    """A generation student: its ONNX files (``encoder`` only for seq2seq) plus what a decoding loop needs."""

    family: str
    task: str
    decoder: ExportSpec
    encoder: ExportSpec | None
    num_layers: int
    num_heads: int
    head_dim: int
    eos_token_id: list[int]
    pad_token_id: int
    decoder_start_token_id: int | None = None
    max_length: int | None = None

    def __post_init__(self) -> None:
        check(self.family in ("seq2seq", "causal-lm"), "export.family", f"not a generation family: {self.family}")
        seq2seq = self.family == "seq2seq"
        check((self.encoder is not None) == seq2seq, "export.encoder", "seq2seq needs an encoder, causal-lm none")
        check(
            (self.decoder_start_token_id is not None) or not seq2seq,
            "export.decoder_start_token_id",
            "seq2seq decoding needs a start token (model.generation_config.decoder_start_token_id)",
        )

    @property
    def components(self) -> list[ExportSpec]:
        return [s for s in (self.encoder, self.decoder) if s is not None]

    @property
    def past_inputs(self) -> list[str]:
        return past_names("past_key_values", self.num_layers)

    @property
    def present_outputs(self) -> list[str]:
        return past_names("present", self.num_layers)

    def to_json(self) -> dict[str, Any]:
        """The ``generation`` entry of spec.json: everything a numpy decoding loop needs besides the files."""
        return {
            "encoder": None if self.encoder is None else self.encoder.filename,
            "decoder": self.decoder.filename,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "head_dim": self.head_dim,
            "eos_token_id": list(self.eos_token_id),
            "pad_token_id": self.pad_token_id,
            "decoder_start_token_id": self.decoder_start_token_id,
            "past_inputs": self.past_inputs,
            "present_outputs": self.present_outputs,
        }


def past_names(prefix: str, num_layers: int) -> list[str]:
    """``prefix.0.key, prefix.0.value, prefix.1.key, ...`` in the order the decoder graph takes/returns them."""
    return [f"{prefix}.{i}.{kv}" for i in range(num_layers) for kv in ("key", "value")]


def text_classifier_spec(
    labels: int | Sequence[str],
    max_length: int,
    *,
    token_type_ids: bool = False,
    task: str = "text-classification",
    tolerance: float = 1e-4,
    fuse: dict[str, Any] | None = None,
) -> ExportSpec:
    """Spec of a text classifier (TinyTextClassifier, MiniLMClassifier): token ids in, ``logits`` (B, C) out.

    ``labels`` is the list of class names or their number (names default to HF's ``LABEL_{i}``). Pass
    ``token_type_ids=True`` for models that use segment ids (BERT/MiniLM); TinyTextClassifier ignores them. ``fuse``
    (see :class:`ExportSpec`) ships a Hugging Face encoder with onnxruntime's attention and layer-norm fusions.
    """
    names = [f"LABEL_{i}" for i in range(labels)] if isinstance(labels, int) else list(labels)
    check(len(names) >= 2, "export.labels", f"a classifier needs at least 2 labels, got {len(names)}")
    check(max_length > 0, "export.max_length", f"must be > 0, got {max_length}")
    inputs = ["input_ids", "attention_mask"] + (["token_type_ids"] if token_type_ids else [])
    axes = {name: {0: "batch", 1: "sequence"} for name in inputs}
    return ExportSpec(
        family="text-classifier",
        task=task,
        input_names=inputs,
        output_names=["logits"],
        dynamic_axes={**axes, "logits": {0: "batch"}},
        labels=names,
        max_length=max_length,
        tolerance=tolerance,
        fuse=fuse,
    )


def vision_spec(
    image_size: int | Sequence[int],
    *,
    labels: int | Sequence[str] | None = None,
    channels: int = 3,
    task: str = "image-classification",
    tolerance: float = 1e-4,
) -> ExportSpec:
    """Spec of an image classifier (TinyConvNet, timm): ``pixel_values`` float32 (B, C, H, W) in, ``logits`` out.

    ``image_size`` is ``H`` (square), ``(H, W)`` or ``(C, H, W)``; only the batch axis is dynamic.
    """
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    chw = size if len(size) == 3 else (channels, *size)
    names = [f"LABEL_{i}" for i in range(labels)] if isinstance(labels, int) else labels
    return ExportSpec(
        family="vision",
        task=task,
        input_names=["pixel_values"],
        output_names=["logits"],
        dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}},
        labels=None if names is None else list(names),
        image_size=chw,
        tolerance=tolerance,
    )


def _decoder_spec(
    family: str,
    task: str,
    inputs: dict[str, dict[int, str]],
    num_layers: int,
    tolerance: float,
    max_length: int | None,
) -> ExportSpec:
    """A decoder with past: ``inputs`` (name -> dynamic axes) first, then the past of every layer."""
    past, present = past_names("past_key_values", num_layers), past_names("present", num_layers)
    axes = dict(inputs) | {"logits": {0: "batch", 1: "sequence"}}
    axes |= {name: {0: "batch", 2: "past_sequence"} for name in past}
    axes |= {name: {0: "batch", 2: "total_sequence"} for name in present}
    return ExportSpec(
        family=family,
        task=task,
        input_names=[*inputs, *past],
        output_names=["logits", *present],
        dynamic_axes=axes,
        max_length=max_length,
        tolerance=tolerance,
        component="decoder",
        filename="decoder.onnx",
    )


def _token_ids(model: Any) -> tuple[list[int], int]:
    generation = model.generation_config
    eos = generation.eos_token_id if generation.eos_token_id is not None else model.config.eos_token_id
    eos_ids = [] if eos is None else [int(e) for e in (eos if isinstance(eos, list | tuple) else [eos])]
    pad = generation.pad_token_id if generation.pad_token_id is not None else model.config.pad_token_id
    # Without a pad token (GPT-2) finished rows are filled with EOS, as transformers' generate does.
    return eos_ids, int(pad) if pad is not None else (eos_ids[0] if eos_ids else 0)


def _cache_geometry(model: Any, encoder_decoder: bool) -> tuple[int, int, int]:
    """(layers, heads, head_dim) of the self-attention cache, read from one 1-token forward pass.

    Probing is simpler and more reliable than reading configs, whose attribute names differ per architecture
    (T5 ``num_decoder_layers``/``d_kv``, BART ``decoder_layers``/``d_model // heads``, GPT-2 ``n_layer``).
    """
    import torch

    one = torch.zeros(1, 1, dtype=torch.long)
    with torch.no_grad():
        if encoder_decoder:
            out = model(input_ids=one, decoder_input_ids=one, use_cache=True)
            layers = out.cache.self_attention_cache.layers
        else:
            layers = model(input_ids=one, use_cache=True).cache.layers
    batch, heads, steps, head_dim = layers[0].keys.shape
    return len(layers), int(heads), int(head_dim)


def seq2seq_spec(
    model: Any, *, max_length: int | None = None, task: str = "text2text-generation", tolerance: float = 1e-4
) -> GenerationSpec:
    """Spec of a transformers encoder-decoder (T5, BART): ``encoder.onnx`` + ``decoder.onnx`` (decoder with past).

    encoder: input_ids, attention_mask (B, S) -> encoder_hidden_states (B, S, D).
    decoder: decoder_input_ids (B, T), encoder_attention_mask (B, S), encoder_hidden_states (B, S, D), past ->
    logits (B, T, V), present. Cross-attention keys/values are recomputed from ``encoder_hidden_states`` at each
    step, so one decoder graph serves every step (optimum's split into two decoders saves that work for long
    inputs).
    """
    layers, heads, head_dim = _cache_geometry(model, encoder_decoder=True)
    eos, pad = _token_ids(model)
    start = model.generation_config.decoder_start_token_id
    start = model.config.decoder_start_token_id if start is None else start
    encoder_axes = {name: {0: "batch", 1: "encoder_sequence"} for name in ("input_ids", "attention_mask")}
    encoder = ExportSpec(
        family="seq2seq",
        task=task,
        input_names=["input_ids", "attention_mask"],
        output_names=["encoder_hidden_states"],
        dynamic_axes={**encoder_axes, "encoder_hidden_states": {0: "batch", 1: "encoder_sequence"}},
        max_length=max_length,
        tolerance=tolerance,
        component="encoder",
        filename="encoder.onnx",
    )
    decoder_inputs = {
        "decoder_input_ids": {0: "batch", 1: "sequence"},
        "encoder_attention_mask": {0: "batch", 1: "encoder_sequence"},
        "encoder_hidden_states": {0: "batch", 1: "encoder_sequence"},
    }
    decoder = _decoder_spec("seq2seq", task, decoder_inputs, layers, tolerance, max_length)
    return GenerationSpec(
        family="seq2seq",
        task=task,
        decoder=decoder,
        encoder=encoder,
        num_layers=layers,
        num_heads=heads,
        head_dim=head_dim,
        eos_token_id=eos,
        pad_token_id=pad,
        decoder_start_token_id=None if start is None else int(start),
        max_length=max_length,
    )


def causal_lm_spec(
    model: Any, *, max_length: int | None = None, task: str = "text-generation", tolerance: float = 1e-4
) -> GenerationSpec:
    """Spec of a transformers decoder-only LM (GPT-2, Llama-like): one ``decoder.onnx`` with past.

    decoder: input_ids (B, T), attention_mask (B, past_sequence + T), past -> logits (B, T, V), present. Position
    ids are derived from the attention mask inside the graph (``cumsum - 1``), so left-padded batches decode
    exactly as transformers' ``generate`` does.
    """
    layers, heads, head_dim = _cache_geometry(model, encoder_decoder=False)
    eos, pad = _token_ids(model)
    decoder_inputs = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "total_sequence"}}
    decoder = _decoder_spec("causal-lm", task, decoder_inputs, layers, tolerance, max_length)
    return GenerationSpec(
        family="causal-lm",
        task=task,
        decoder=decoder,
        encoder=None,
        num_layers=layers,
        num_heads=heads,
        head_dim=head_dim,
        eos_token_id=eos,
        pad_token_id=pad,
        max_length=max_length,
    )
