"""Contrastive adaptation of a sentence encoder: a tiny BERT learns to put each text next to its own partner."""

from __future__ import annotations

import pytest

from suite.adapt import adapt_encoder, retrieval_at_1
from suite.errors import ConfigError


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    import torch
    from transformers import BertConfig, BertModel

    from suite import hub

    root = tmp_path_factory.mktemp("encoder")
    tokenizer = hub.load_tokenizer("minilm-l6")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64)  # fmt: skip
    BertModel(config).save_pretrained(root)
    tokenizer.save_pretrained(root)
    return root


ACTIONS = ["the car slows down", "the car stops", "the car accelerates", "the car turns left", "the car merges right",
           "the car keeps its lane", "the car turns right", "the car changes to the left lane"]  # fmt: skip
REASONS = ["because traffic ahead is braking", "because the light is red", "because the road is clear",
           "because it follows the route", "because its lane ends", "because the lane is free ahead",
           "because the exit is on the right", "because a slow truck is ahead"]  # fmt: skip


def test_adaptation_raises_retrieval_of_each_texts_own_partner(tiny_encoder, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    pairs = [(a, r) for a, r in zip(ACTIONS, REASONS, strict=True)] * 8
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder)
    before = retrieval_at_1(AutoModel.from_pretrained(tiny_encoder), tokenizer, ACTIONS, REASONS)
    out = adapt_encoder(tiny_encoder, pairs, tmp_path / "adapted", steps=60, batch_size=8, lr=1e-3, progress=False)
    after = retrieval_at_1(AutoModel.from_pretrained(out), AutoTokenizer.from_pretrained(out), ACTIONS, REASONS)
    assert (out / "model.safetensors").is_file()
    assert after == 1.0 and after > before


def test_too_few_pairs_is_a_config_error(tiny_encoder, tmp_path):
    with pytest.raises(ConfigError, match="at least"):
        adapt_encoder(tiny_encoder, [("a", "b")] * 3, tmp_path / "x", steps=1, batch_size=4, progress=False)
