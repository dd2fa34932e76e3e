from __future__ import annotations

import pytest
import torch

from suite.errors import ModelNotFoundError
from suite.students import build_student
from suite.students.io import load_student, save_student
from suite.students.text import build_vocab_tokenizer


def test_saved_student_round_trips(tmp_path) -> None:
    tokenizer = build_vocab_tokenizer(["the bulb is lit", "the circuit is closed"] * 3, vocab_size=60)
    kwargs = {"vocab_size": len(tokenizer), "num_labels": 2, "dim": 16, "layers": 1, "heads": 2, "ffn": 32,
              "max_len": 32, "pad_id": tokenizer.pad_token_id}  # fmt: skip
    torch.manual_seed(0)
    model = build_student("tiny-text-arch", **kwargs).eval()
    save_student(model, tmp_path, "tiny-text-arch", kwargs, tokenizer)
    loaded, loaded_tokenizer = load_student(tmp_path)
    batch = loaded_tokenizer(["the bulb is closed"], return_tensors="pt")
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    assert torch.equal(model(**inputs)["logits"], loaded(**inputs)["logits"])
    assert not loaded.training


def test_missing_files_are_a_clear_error(tmp_path) -> None:
    with pytest.raises(ModelNotFoundError, match="not a saved student"):
        load_student(tmp_path)
