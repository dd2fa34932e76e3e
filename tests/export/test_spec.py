"""Export specs: builders fill names and dynamic axes per family; bad specs are one-line ConfigErrors."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from suite.errors import ConfigError
from suite.export import ExportSpec, causal_lm_spec, text_classifier_spec, vision_spec
from suite.export.spec import variant_filename


def test_text_classifier_spec_names_labels_and_optional_segment_ids():
    spec = text_classifier_spec(2, max_length=64)
    assert spec.labels == ["LABEL_0", "LABEL_1"] and spec.input_names == ["input_ids", "attention_mask"]
    assert spec.dynamic_axes["input_ids"] == {0: "batch", 1: "sequence"} and spec.dynamic_axes["logits"] == {
        0: "batch"
    }
    bert = text_classifier_spec(["no", "yes"], max_length=64, token_type_ids=True)
    assert bert.input_names[-1] == "token_type_ids" and bert.labels == ["no", "yes"]
    assert bert.dynamic_axes["token_type_ids"] == {0: "batch", 1: "sequence"}


def test_vision_spec_fixes_the_image_and_keeps_the_batch_dynamic():
    assert vision_spec(224).image_size == (3, 224, 224)
    assert vision_spec((1, 28, 28)).image_size == (1, 28, 28)
    spec = vision_spec((96, 128), labels=["cat", "dog"])
    assert spec.image_size == (3, 96, 128) and spec.dynamic_axes["pixel_values"] == {0: "batch"}


def test_causal_lm_spec_probes_the_cache_geometry():
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=32, n_positions=16, n_embd=24, n_layer=3, n_head=2, eos_token_id=5)
    spec = causal_lm_spec(GPT2LMHeadModel(config).eval())
    assert (spec.num_layers, spec.num_heads, spec.head_dim) == (3, 2, 12)
    assert spec.eos_token_id == [5] and spec.pad_token_id == 5  # no pad token: finished rows are filled with EOS
    assert spec.decoder.input_names[:2] == ["input_ids", "attention_mask"] and len(spec.past_inputs) == 6
    assert spec.decoder.dynamic_axes["past_key_values.2.value"] == {0: "batch", 2: "past_sequence"}
    assert spec.decoder.output_names[1:] == [f"present.{i}.{kv}" for i in range(3) for kv in ("key", "value")]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"family": "audio"}, "export.family"),
        ({"dynamic_axes": {"pixels": {0: "batch"}}}, "export.dynamic_axes"),
        ({"tolerance": 0.0}, "export.tolerance"),
        ({"output_names": ["x"]}, "unique"),
        ({"filename": "model.pt"}, "export.filename"),
    ],
)
def test_invalid_specs_name_the_key(change, message):
    fields = {"family": "vision", "task": "t", "input_names": ["x"], "output_names": ["logits"], "dynamic_axes": {}}
    with pytest.raises(ConfigError, match=message):
        ExportSpec(**{**fields, **change})


def test_variant_file_names():
    assert variant_filename("model.onnx", "int8") == "model.int8.onnx"
    assert variant_filename("model.onnx", "fp16") == "model.fp16.onnx"
    assert variant_filename("model.onnx", "fp32") == "model.onnx"
