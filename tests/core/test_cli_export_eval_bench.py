"""`distill export`, `distill eval` and `distill bench` on a small saved student, through the CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from suite.cli import main
from suite.students import build_student
from suite.students.io import save_student
from suite.students.text import build_vocab_tokenizer

TEXTS = ["the bulb lights because the circuit is closed", "the switch is open so no current flows"] * 4


def saved_student(tmp_path: Path) -> Path:
    tokenizer = build_vocab_tokenizer(TEXTS, vocab_size=80)
    kwargs = {"vocab_size": len(tokenizer), "num_labels": 2, "dim": 16, "layers": 1, "heads": 2, "ffn": 32,
              "max_len": 48, "pad_id": tokenizer.pad_token_id}  # fmt: skip
    torch.manual_seed(0)
    return save_student(build_student("tiny-text-arch", **kwargs), tmp_path / "model", "tiny-text-arch", kwargs,
                        tokenizer)  # fmt: skip


def test_export_eval_bench(tmp_path: Path, capsys) -> None:
    model_dir = saved_student(tmp_path)
    assert main(["export", str(model_dir), str(tmp_path / "onnx"), "--int8"]) == 0
    out = capsys.readouterr().out
    assert "fp32: parity ok" in out and "int8: parity ok" in out
    spec = json.loads((tmp_path / "onnx" / "spec.json").read_text())
    assert set(spec["parity"]) == {"fp32", "int8"} and spec["parity"]["fp32"]["max_abs_diff"] < 1e-4

    data = tmp_path / "data.jsonl"
    rows = [{"text": t, "text_pair": t[::-1], "label": i % 2} for i, t in enumerate(TEXTS)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    export = ["export", str(model_dir), str(tmp_path / "onnx_eval"), "--int8", "--eval-data", str(data)]
    assert main(export) == 0
    assert "int8: parity ok" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "onnx_eval" / "metrics.json").read_text())
    assert metrics["examples"] == len(rows) and 0 <= metrics["accuracy"] <= 1
    drop = json.loads((tmp_path / "onnx_eval" / "spec.json").read_text())["parity"]["int8"]["metric_drop"]
    assert drop <= 0.01
    assert main(["eval", str(tmp_path / "onnx"), str(data)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["examples"] == len(rows) and 0 <= metrics["accuracy"] <= 1 and 0 <= metrics["ece"] <= 1
    assert "quadratic_weighted_kappa" not in metrics  # nominal classes unless a rating range is given
    assert main(["eval", str(tmp_path / "onnx"), str(data), "--rating-range", "0", "1"]) == 0
    assert -1 <= json.loads(capsys.readouterr().out)["quadratic_weighted_kappa"] <= 1

    data.write_text(json.dumps({**rows[0], "label": 2}) + "\n")
    assert main(["eval", str(tmp_path / "onnx"), str(data)]) == 2
    assert f"{data}:1: label 2 is out of range for a 2-class model" in capsys.readouterr().err

    data.write_text(json.dumps(rows[0]) + "\n{not json\n")
    assert main(["eval", str(tmp_path / "onnx"), str(data)]) == 2
    assert f"{data}:2: malformed row" in capsys.readouterr().err

    bench = ["bench", str(tmp_path / "onnx"), "--batch", "1", "--repeats", "3", "--warmup", "1",
             "--providers", "cpu", "cuda", "--variants", "fp32", "--out", str(tmp_path / "bench")]  # fmt: skip
    assert main(bench) == 0
    report = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert report["machine"]
    assert (tmp_path / "bench" / "bench.md").is_file() and (tmp_path / "bench" / "latency_vs_batch.png").is_file()


def test_export_refuses_a_folder_that_is_not_a_saved_student(tmp_path: Path, capsys) -> None:
    assert main(["export", str(tmp_path), str(tmp_path / "onnx")]) == 2
    assert "not a saved student" in capsys.readouterr().err
