"""benchmarks/exact_match_latency.py on a tiny exported exact-match student: its twin without the feature predicts
as the student would with the match embedding zeroed, and both get timed rows, padded and at real lengths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

CORPUS = ["Heat flows from warm objects to cold ones.", "Plants use light energy to make sugar."] * 10


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    from suite.export.saved import export_saved_text_student
    from suite.students.io import save_student
    from suite.students.text import build_vocab_tokenizer

    root = tmp_path_factory.mktemp("em")
    tokenizer = build_vocab_tokenizer(CORPUS, vocab_size=120)
    tokenizer.model_max_length = 24
    kwargs = {"vocab_size": len(tokenizer), "num_labels": 2, "dim": 16, "layers": 1, "max_len": 24,
              "pad_id": tokenizer.pad_token_id, "sep_id": tokenizer.sep_token_id, "exact_match": True}  # fmt: skip
    from suite.students import build_student

    torch.manual_seed(0)
    model = build_student("tiny-text-arch", **kwargs)
    saved = save_student(model, root / "saved", "tiny-text-arch", kwargs, tokenizer)
    return export_saved_text_student(saved, root / "export", labels=["incorrect", "correct"])


def test_the_twin_is_the_student_without_its_match_embedding(exported):
    from benchmarks.exact_match_latency import without_exact_match
    from suite.hub import load_tokenizer

    with_feature, twin = without_exact_match(exported)
    assert with_feature.match_embedding is not None and twin.match_embedding is None
    encoded = load_tokenizer(exported / "tokenizer")(["heat flows"], ["heat flows to cold"], return_tensors="pt")
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    with torch.no_grad():
        with_feature.match_embedding.weight.zero_()
        assert torch.allclose(with_feature(ids, mask)["logits"], twin(ids, mask)["logits"], atol=1e-6)


def test_both_graphs_are_timed_padded_and_at_real_lengths(exported, tmp_path):
    from benchmarks.exact_match_latency import main

    data = tmp_path / "test.jsonl"
    rows = [{"text": "heat flows", "text_pair": text, "label": 1} for text in CORPUS[:4]]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "em.json"
    assert main([str(exported), str(data), "--repeats", "5", "--threads", "1", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert set(results) == {"padded", "real"} and results["padded"]["tokens"] == 24
    assert results["real"]["tokens"] < 24
    for row in results.values():
        assert row["exact match"] > 0 and row["without"] > 0
        assert row["ratio"] == pytest.approx(row["exact match"] / row["without"])


def test_a_student_without_the_feature_is_refused(exported, tmp_path):
    from benchmarks.exact_match_latency import main

    plain = tmp_path / "plain"
    plain.mkdir()
    spec = json.loads((exported / "spec.json").read_text())
    spec["torch"]["kwargs"]["exact_match"] = False
    (plain / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(SystemExit):
        main([str(plain)])
