"""Export + mandatory parity check: classifiers pass, broken or shape-frozen exports are rejected, int8/fp16
variants are held to a looser tolerance and a task-metric drop."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from suite.errors import ConfigError
from suite.export import ExportParityError, text_classifier_spec, vision_spec
from suite.export.onnx_export import (
    check_parity,
    check_variant,
    convert_fp16,
    describe_onnx,
    export_onnx,
    metric_drop,
    quantize_int8,
)
from suite.export.spec import VARIANT_TOLERANCE
from tests.export.tiny import FrozenBatch


@pytest.fixture(scope="module")
def text_onnx(tmp_path_factory, text_model, text_inputs):
    spec = text_classifier_spec(3, max_length=32)
    return export_onnx(text_model, spec, text_inputs[0], tmp_path_factory.mktemp("text")), spec


@pytest.fixture(scope="module")
def vision_onnx(tmp_path_factory, vision_model, vision_inputs):
    spec = vision_spec(32)
    return export_onnx(vision_model, spec, vision_inputs[0], tmp_path_factory.mktemp("vision")), spec


def test_text_classifier_matches_torch_on_other_batch_sizes_and_lengths(text_onnx, text_model, text_inputs):
    path, spec = text_onnx
    example, heldout = text_inputs
    assert {b["input_ids"].shape for b in heldout}.isdisjoint({example["input_ids"].shape})
    report = check_parity(path, text_model, spec, heldout, example_inputs=example)
    assert report.max_abs_diff <= 1e-4 and report.argmax_agreement == 1.0
    described = describe_onnx(path)
    assert described["inputs"][0] == {"name": "input_ids", "dtype": "int64", "shape": ["batch", "sequence"]}
    assert described["outputs"] == [{"name": "logits", "dtype": "float32", "shape": ["batch", 3]}]
    assert described["ir_version"] == onnx.load(str(path)).ir_version and described["opset"] == 17


def test_vision_model_matches_torch(vision_onnx, vision_model, vision_inputs):
    path, spec = vision_onnx
    report = check_parity(path, vision_model, spec, vision_inputs[1], example_inputs=vision_inputs[0])
    assert report.max_abs_diff <= 1e-4 and report.argmax_agreement == 1.0
    assert describe_onnx(path)["inputs"][0]["shape"] == ["batch", 3, 32, 32]


def test_perturbed_onnx_weights_are_rejected(text_onnx, text_model, text_inputs, tmp_path):
    path, spec = text_onnx
    model = onnx.load(str(path))
    head = next(t for t in model.graph.initializer if t.name == "model.head.weight")
    head.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(head) * np.float32(1.05), head.name))
    broken = tmp_path / "model.onnx"
    onnx.save(model, str(broken))
    with pytest.raises(ExportParityError, match="exceeds the tolerance"):
        check_parity(broken, text_model, spec, text_inputs[1])


def test_torch_weights_changed_after_export_are_rejected(vision_onnx, vision_inputs):
    path, spec = vision_onnx
    from suite.students.vision import TinyConvNet

    torch.manual_seed(1)  # same architecture, other weights: the file no longer matches this model
    with pytest.raises(ExportParityError):
        check_parity(path, TinyConvNet(num_classes=4, width=8).eval(), spec, vision_inputs[1])


def test_a_shape_frozen_at_trace_time_fails_parity_on_other_batch_sizes(tmp_path):
    spec, model = vision_spec(8), FrozenBatch().eval()
    example = {"pixel_values": torch.randn(2, 3, 8, 8)}
    path = export_onnx(model, spec, example, tmp_path)
    assert check_parity(path, model, spec, [example]).max_abs_diff <= 1e-4  # the traced shape alone hides it
    with pytest.raises(ExportParityError, match="held-out shapes"):
        check_parity(path, model, spec, [{"pixel_values": torch.randn(3, 3, 8, 8)}])


def test_heldout_inputs_must_change_every_dynamic_axis(text_onnx, text_model, text_inputs):
    path, spec = text_onnx
    example, _ = text_inputs
    same_length = {k: v.repeat(3, 1) for k, v in example.items()}  # other batch size, same sequence length
    with pytest.raises(ConfigError, match="axis 1 \\(sequence\\)"):
        check_parity(path, text_model, spec, [same_length], example_inputs=example)


def test_metric_drop_against_labels_and_against_fp32():
    fp32, variant, labels = np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]), np.array([0, 1, 1, 1])
    assert metric_drop(fp32, variant, labels) == pytest.approx(0.75 - 0.5)
    assert metric_drop(fp32, variant) == pytest.approx(0.25)  # 1 - agreement with fp32
    assert metric_drop(fp32, fp32, labels) == 0.0


@pytest.mark.parametrize("variant", ["int8", "fp16"])
@pytest.mark.parametrize("family", ["text", "vision"])
def test_reduced_precision_variants_record_their_metric_drop(variant, family, request):
    """fp16 runs on the CPU provider: onnxruntime inserts casts around ops without fp16 CPU kernels."""
    path, spec = request.getfixturevalue(f"{family}_onnx")
    model, (_, heldout) = request.getfixturevalue(f"{family}_model"), request.getfixturevalue(f"{family}_inputs")
    convert = {"int8": quantize_int8, "fp16": convert_fp16}[variant]
    variant_path = convert(path)
    assert variant_path.name == f"model.{variant}.onnx"
    report = check_variant(variant_path, path, model, spec, heldout, variant)
    assert report.tolerance == VARIANT_TOLERANCE[variant]
    assert 0.0 < report.max_abs_diff <= report.tolerance  # a real change of precision, within its tolerance
    assert report.metric_drop is not None and report.metric_drop <= 0.01
    with pytest.raises(ExportParityError, match="task metric drops"):
        check_variant(variant_path, path, model, spec, heldout, variant, max_metric_drop=-1.0)


def test_int8_variant_uses_the_task_metric_from_eval_fn(vision_onnx, vision_model, vision_inputs):
    path, spec = vision_onnx
    pixels = torch.cat([b["pixel_values"] for b in vision_inputs[1]]).numpy()
    with torch.no_grad():
        labels = vision_model(torch.from_numpy(pixels))["logits"].argmax(-1).numpy()
    labels[0] = (labels[0] + 1) % 4  # one wrong label: fp32 accuracy is 5/6, not 1
    calls = []

    def eval_fn(run):
        predictions = run({"pixel_values": pixels}).argmax(-1)
        calls.append(float(np.mean(predictions == labels)))
        return calls[-1]

    report = check_variant(quantize_int8(path), path, vision_model, spec, vision_inputs[1], "int8", eval_fn=eval_fn)
    assert calls[0] == pytest.approx(5 / 6)
    assert report.metric_drop == pytest.approx(calls[0] - calls[1])


def test_int8_quantization_does_not_repeat_onnxruntime_preprocessing_advice(text_onnx, tmp_path, caplog):
    path, _ = text_onnx
    with caplog.at_level(logging.WARNING):
        quantize_int8(path, tmp_path / "model.int8.onnx")
    assert (tmp_path / "model.int8.onnx").is_file()
    assert not [r for r in caplog.records if "pre-processing" in r.getMessage()]
    logging.getLogger().warning("pre-processing before quantization, said by someone else")  # the filter is gone
    assert caplog.records and "someone else" in caplog.records[-1].getMessage()
