"""`distill bench` on a generation student: onnxruntime decoding and eager `generate` timed side by side, one call
per whole output, with tokens per call and ms per token; prompts from real data or synthetic."""

from __future__ import annotations

import json

import pytest
import torch

from suite.bench import run_benchmark
from suite.export import export_student, seq2seq_spec
from suite.students import build_student
from suite.students.generative import SpecialTokens
from suite.students.text import build_vocab_tokenizer

TEXTS = ["heart size normal lungs clear", "small left effusion", "no acute disease", "stable mild cardiomegaly"] * 4


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tokenizer = build_vocab_tokenizer(TEXTS, vocab_size=60)
    ids = SpecialTokens.of(tokenizer)
    kwargs = {"vocab_size": len(tokenizer), "pad_id": ids.pad, "start_id": ids.start, "end_id": ids.end,
              "size": "2m", "shape": "t5"}  # fmt: skip
    torch.manual_seed(0)
    model = build_student("seq2seq", **kwargs).eval()

    def prompts(texts):
        batch = tokenizer(texts, padding=True, return_tensors="pt")
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    root = tmp_path_factory.mktemp("gen-bench")
    heldout = [prompts(TEXTS[2:5]), prompts(TEXTS[5:6])]
    out = export_student(model, seq2seq_spec(model), prompts(TEXTS[:2]), heldout, root / "student",
                         tokenizer=tokenizer, student_name="seq2seq", student_kwargs=kwargs)  # fmt: skip
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    return out, data, root


@pytest.mark.parametrize("real", [False, True])
def test_generation_students_get_one_row_per_runtime_with_per_token_latency(exported, real):
    out, data, root = exported
    report = run_benchmark([out], batch_sizes=(1,), providers=("cpu",), variants=("fp32",), warmup=1, repeats=3,
                           out_dir=root / f"bench-{real}", progress=False, seq_len=12, max_new_tokens=6,
                           real_data=data if real else None)  # fmt: skip
    rows = {r["runtime"]: r for r in report["results"]}
    assert set(rows) == {"onnxruntime", "torch"}
    for row in rows.values():
        assert row["inputs"] == "generate" and row["batch_size"] == 1 and row["max_new_tokens"] == 6
        assert 1 <= row["tokens_per_call"] <= 6
        assert row["ms_per_token"] == pytest.approx(row["mean_ms"] / row["tokens_per_call"])
    # the same greedy tokens in both runtimes, so the same lengths
    assert rows["onnxruntime"]["tokens_per_call"] == rows["torch"]["tokens_per_call"]
    assert rows["onnxruntime"]["speedup_vs_torch"] > 0
    table = (root / f"bench-{real}" / "bench.md").read_text()
    assert "| ms/token |" in table and table.count("(generate)") == 2
    if not real:
        assert rows["onnxruntime"]["seq_len"] == 12  # synthetic prompts of --seq-len tokens
