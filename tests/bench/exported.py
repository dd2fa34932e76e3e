"""Tiny exported student directories for the bench and docker tests, written to the contract suite/export follows.

Built by hand (torch.onnx.export with the TorchScript exporter, spec.json, tokenizer, safetensors) so these tests
do not depend on the exporter; a few units wide, they export in well under a second.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

TEXTS = ["the cat sat on the mat", "a dog ran in the park", "cats and dogs are pets", "the park is green"]
LABELS = ["negative", "positive"]
MAX_LEN = 16
OPSET = 17
WEIGHTS = "student.safetensors"


class _Logits(nn.Module):
    """Exports only the logits of a student that returns a dict."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(*inputs)["logits"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _export(model: nn.Module, example: tuple[torch.Tensor, ...], path: Path, names: list[str], axes: dict) -> None:
    torch.onnx.export(
        _Logits(model).eval(),
        example,
        str(path),
        input_names=names,
        output_names=["logits"],
        dynamic_axes={**axes, "logits": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )


def _finish(out: Path, spec: dict, model: nn.Module, metrics: dict) -> Path:
    from safetensors.torch import save_model

    save_model(model, str(out / WEIGHTS))
    (out / "metrics.json").write_text(json.dumps(metrics))
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "spec.json")
    spec["files"] = {str(p.relative_to(out)): _sha256(p) for p in files}
    (out / "spec.json").write_text(json.dumps(spec, indent=2))
    return out


def make_text_export(out: Path, int8: bool = False) -> Path:
    """A 2-label TinyTextClassifier (dim 8, 1 layer) exported with its tokenizer; ``int8`` adds model.int8.onnx."""
    from suite.students.text import TinyTextClassifier, build_vocab_tokenizer

    torch.manual_seed(0)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_vocab_tokenizer(TEXTS, vocab_size=64)
    tokenizer.model_max_length = MAX_LEN
    kwargs = {"vocab_size": len(tokenizer), "num_labels": len(LABELS), "dim": 8, "layers": 1, "heads": 2, "ffn": 16}
    kwargs.update(max_len=MAX_LEN, dropout=0.0)
    model = TinyTextClassifier(**kwargs).eval()
    batch = tokenizer(TEXTS[:2], padding=True, return_tensors="pt")
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
    _export(model, (batch["input_ids"], batch["attention_mask"]), out / "model.onnx", list(axes), axes)
    tokenizer.save_pretrained(out / "tokenizer")
    parity = {"fp32": {"max_abs_diff": 0.0, "argmax_agreement": 1.0, "tolerance": 1e-4, "metric_drop": 0.0}}
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(out / "model.onnx"), str(out / "model.int8.onnx"), weight_type=QuantType.QInt8)
        parity["int8"] = {"max_abs_diff": 0.05, "argmax_agreement": 1.0, "tolerance": 0.1, "metric_drop": 0.02}
    spec = {
        "family": "text-classifier",
        "task": "sentiment",
        "inputs": [{"name": n, "dtype": "int64", "shape": ["batch", "sequence"]} for n in axes],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", len(LABELS)]}],
        "opset": OPSET,
        "ir_version": 9,
        "labels": LABELS,
        "max_length": MAX_LEN,
        "image_size": None,
        "parity": parity,
        "torch": {"student": "tiny-text-arch", "kwargs": kwargs, "weights": WEIGHTS},
    }
    return _finish(out, spec, model, {"accuracy": 0.75})


def make_vision_export(out: Path, image_size: tuple[int, int, int] = (3, 16, 16)) -> Path:
    """A 3-class TinyConvNet (width 4) taking ``image_size`` images."""
    from suite.students.vision import TinyConvNet

    torch.manual_seed(0)
    out.mkdir(parents=True, exist_ok=True)
    model = TinyConvNet(num_classes=3, width=4).eval()
    axes = {"pixel_values": {0: "batch"}}
    _export(model, (torch.randn(2, *image_size),), out / "model.onnx", list(axes), axes)
    spec = {
        "family": "vision",
        "task": "image-classification",
        "inputs": [{"name": "pixel_values", "dtype": "float32", "shape": ["batch", *image_size]}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", 3]}],
        "opset": OPSET,
        "ir_version": 9,
        "labels": ["a", "b", "c"],
        "max_length": None,
        "image_size": list(image_size),
        "parity": {"fp32": {"max_abs_diff": 0.0, "argmax_agreement": 1.0, "tolerance": 1e-4, "metric_drop": 0.0}},
        "torch": {"student": "tiny-convnet", "kwargs": {"num_classes": 3, "width": 4}, "weights": WEIGHTS},
    }
    return _finish(out, spec, model, {"accuracy": 0.5})
