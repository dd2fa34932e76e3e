"""benchmarks/sra_teacher_sweep.py: the vocabulary-cut fp16 MiniLM it ships to a GPU machine is the pack's teacher
on these pairs, and the training step runs end to end (on CPU, its smoke-test size)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import sra_teacher_sweep as sweep


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "data"
    sweep.prepare(out)
    return out


def test_the_cut_model_encodes_the_pairs_as_the_full_minilm_does(prepared: Path) -> None:
    from domains.education.pipeline import load_task
    from domains.education.recipe import EducationRecipe
    from suite.hub import load_minilm

    full, tokenizer = load_minilm(num_labels=2)
    cut = sweep.load_model(prepared, "cpu", seed=0)
    dev = load_task(EducationRecipe(), "sra").dev[:4]
    arrays = np.load(prepared / "pairs.npz")
    with torch.no_grad():
        for row, example in enumerate(dev):
            enc = tokenizer(example.text, example.text_pair, truncation=True, max_length=128, return_tensors="pt")
            n = int(arrays["dev_128_lengths"][row])
            assert n == enc["input_ids"].shape[1]
            ids = torch.from_numpy(arrays["dev_128_ids"][row : row + 1, :n]).long()
            segments = torch.from_numpy(arrays["dev_128_segments"][row : row + 1, :n]).long()
            assert torch.equal(segments, enc["token_type_ids"])
            want = full.bert(**enc).last_hidden_state
            got = cut.bert(input_ids=ids, token_type_ids=segments).last_hidden_state
            assert (want - got).abs().max() < 0.05  # fp16 weights; a wrong token mapping differs by whole units
    labels = arrays["train_labels"]
    assert len(labels) > 5000 and set(np.unique(labels)) == {0, 1}


def test_the_training_step_writes_its_table(prepared: Path, tmp_path: Path) -> None:
    assert sweep.main(["train", "--data", str(prepared), "--out", str(tmp_path), "--quick"]) == 0
    doc = json.loads((tmp_path / "sra_teacher_sweep.json").read_text())
    (config,) = doc["configs"]
    assert (config["max_length"], config["epochs"]) == (128, 1) and len(config["seeds"]) == 1
    assert 0 <= config["ensemble"]["best_dev"]["unseen_answers"] <= 1
    assert "| 128 | 5e-05 | 1 | best_dev |" in (tmp_path / "sra_teacher_sweep.md").read_text()
