"""What the exact-match feature costs at inference: the tiny student with and without it, side by side.

    python benchmarks/exact_match_latency.py EXPORT_DIR [DATA.jsonl] [--threads 2] [--repeats 300] [--out FILE.json]

``EXPORT_DIR`` holds a tiny student exported with ``exact_match`` (the education pack's release,
``models/education/export/sra_tiny_kd``). The script rebuilds it in PyTorch, builds its twin without the feature
(the same weights but the 128 of the match embedding), exports both to ONNX in a temporary directory and times
onnxruntime fp32 at batch 1 on ``--threads`` (2), call by call in turn (``suite.bench.latency.time_interleaved``),
at the padded length (128 tokens) and, given ``DATA.jsonl`` (a run's ``sra/data/unseen_answers.jsonl``), at the real
token lengths of its first examples. Prints the p50 of each (ms) and the ratio; weights do not change the time, the
graph does.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def without_exact_match(export_dir: Path):
    """The exported student and its twin: same kwargs but ``exact_match``, same weights but the match embedding."""
    from suite.export.package import load_torch_student
    from suite.export.runtime import read_spec
    from suite.students import build_student

    with_feature = load_torch_student(export_dir)
    kwargs = dict(read_spec(export_dir)["torch"]["kwargs"], exact_match=False)
    twin = build_student("tiny-text-arch", **kwargs)
    state = {k: v for k, v in with_feature.state_dict().items() if not k.startswith("match_embedding.")}
    twin.load_state_dict(state)
    return with_feature.eval(), twin.eval()


def main(argv: list[str] | None = None) -> int:
    import torch

    from suite.bench.latency import prepare_onnx, time_interleaved
    from suite.bench.run import load_spec, real_feeds
    from suite.export.onnx_export import export_onnx
    from suite.export.spec import text_classifier_spec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", type=Path)
    parser.add_argument("data", type=Path, nargs="?", default=None)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    spec = load_spec(args.export_dir)
    if not spec.get("torch", {}).get("kwargs", {}).get("exact_match"):
        parser.error(f"{args.export_dir}: not a tiny student exported with exact_match")
    models = dict(zip(("exact match", "without"), without_exact_match(args.export_dir), strict=True))
    export_spec = text_classifier_spec(spec["labels"], spec["max_length"])
    length, vocab_size = spec["max_length"], spec["torch"]["kwargs"]["vocab_size"]
    example = {"input_ids": torch.full((1, length), 5), "attention_mask": torch.ones(1, length, dtype=torch.long)}
    inputs = {"padded": None} | ({"real": real_feeds(args.export_dir, spec, args.data, 1)} if args.data else {})
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {name: export_onnx(m, export_spec, example, Path(tmp) / str(i)) for i, (name, m) in
                 enumerate(models.items())}  # fmt: skip
        for label, feeds in inputs.items():
            timed = [prepare_onnx(p, spec, "cpu", 1, intra_op_threads=args.threads, feeds=feeds, vocab_size=vocab_size)
                     for p in paths.values()]  # fmt: skip
            rows = time_interleaved(timed, 20, args.repeats)
            results[label] = {name: row["p50_ms"] for name, row in zip(paths, rows, strict=True)}
            results[label]["tokens"] = rows[0]["seq_len"]
            results[label]["ratio"] = results[label]["exact match"] / results[label]["without"]
    for label, row in results.items():
        print(f"{label} ({row['tokens']} tokens): exact match {row['exact match']:.3f} ms, "
              f"without {row['without']:.3f} ms p50 (x{row['ratio']:.2f})")  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
