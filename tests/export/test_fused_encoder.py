"""Hugging Face BERT-layout encoders export with onnxruntime's fusions (eager-attention trace, fused graph, parity)
and per-channel int8; the suite's own tiny students are left as they are."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from suite.export.saved import export_saved_text_student
from suite.export.spec import text_classifier_spec
from suite.students import build_student
from suite.students.io import save_student
from tests.teachers.test_hf_teacher import VOCAB, save_tokenizer

LAYERS = 2


@pytest.fixture(scope="module")
def saved_encoder(tmp_path_factory):
    import transformers as tf

    root = tmp_path_factory.mktemp("encoder")
    config = tf.BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=LAYERS, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=64, num_labels=2)  # fmt: skip
    torch.manual_seed(0)
    tf.BertForSequenceClassification(config).save_pretrained(root / "hf")
    save_tokenizer(root / "hf", with_cls=True)
    kwargs = {"path": str(root / "hf"), "num_labels": 2}
    model = build_student("hf-classifier", **kwargs)
    model.tokenizer.model_max_length = 32
    return save_student(model, root / "saved", "hf-classifier", kwargs, model.tokenizer), model


def test_a_bert_encoder_ships_its_fused_graph_after_the_parity_check(saved_encoder, tmp_path):
    saved, model = saved_encoder
    out = export_saved_text_student(saved, tmp_path / "onnx", int8=True, max_metric_drop=1.0)
    spec = json.loads((out / "spec.json").read_text())
    fused = spec["fused"]
    assert fused["model_type"] == "bert" and fused["attention_nodes"] == LAYERS
    assert fused["nodes_after"] < fused["nodes_before"] / 3
    ops = {node.op_type for node in onnx.load(str(out / "model.onnx")).graph.node}
    assert {"Attention", "SkipLayerNormalization", "EmbedLayerNormalization"} <= ops
    assert spec["parity"]["fp32"]["max_abs_diff"] <= spec["parity"]["fp32"]["tolerance"]
    int8_ops = {node.op_type for node in onnx.load(str(out / "model.int8.onnx")).graph.node}
    assert "DynamicQuantizeMatMul" in int8_ops or "MatMulInteger" in int8_ops
    assert any("QAttention" in op or "Integer" in op for op in int8_ops)

    # The shipped graph answers like the PyTorch model on padded batches it was not traced on.
    from suite.export.runtime import load_exported

    texts, pairs = ["the patient has fever and cough", "no"], ["pain is", "yes"]
    probs = load_exported(out).predict_proba(texts, pairs)
    batch = model.tokenizer(texts, pairs, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**batch)["logits"].softmax(-1).numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-4)
    from transformers import PreTrainedModel  # the trace's eager attention was switched back afterwards

    assert all(m.config._attn_implementation == "sdpa" for m in model.modules() if isinstance(m, PreTrainedModel))


def test_fusion_is_only_for_layouts_it_knows():
    from suite.errors import ConfigError

    with pytest.raises(ConfigError, match="model_type must be one of"):
        text_classifier_spec(2, 32, fuse={"model_type": "gpt2", "num_heads": 2, "hidden_size": 8})
