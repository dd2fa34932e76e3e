"""Why `distill bench` idles before each turn: one configuration's spinning worker threads slow the next one.

    python benchmarks/interleave_settle.py EXPORT_DIR DATA.jsonl [--out FILE.json]

Times the export's fp32 and int8 onnxruntime sessions and eager PyTorch at batch 1 on the real lengths of
``DATA.jsonl``, three ways in one process: in turns with no pause between them, in turns after ``SETTLE_SECONDS``
idle (what `distill bench` does), and each in a block of its own. Prints the p50 of each (ms) and writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    import torch

    from suite.bench.latency import SETTLE_SECONDS, physical_cores, prepare_onnx, prepare_torch, time_interleaved
    from suite.bench.run import load_spec, load_torch_student, real_feeds

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    spec, threads = load_spec(args.export_dir), physical_cores()
    torch.set_num_threads(threads)
    feeds = real_feeds(args.export_dir, spec, args.data, 1)
    module = load_torch_student(args.export_dir, spec)
    names = [i["name"] for i in spec["inputs"]]

    def configurations() -> dict:
        return {
            variant: prepare_onnx(args.export_dir / filename, spec, "cpu", 1, intra_op_threads=threads, feeds=feeds)
            for variant, filename in (("fp32", "model.onnx"), ("int8", "model.int8.onnx"))
        } | {
            "eager": prepare_torch(module, [torch.from_numpy(feeds[0][n]) for n in names],
                                   batches=[[torch.from_numpy(f[n]) for n in names] for f in feeds]),
        }  # fmt: skip

    results = {}
    for label, settle in (("turns, no pause", 0.0), (f"turns, {SETTLE_SECONDS * 1000:.0f} ms idle first", None)):
        timed = configurations()
        rows = time_interleaved(list(timed.values()), 20, args.repeats, settle=SETTLE_SECONDS if settle is None else 0)
        results[label] = {name: row["p50_ms"] for name, row in zip(timed, rows, strict=True)}
    results["each in a block of its own"] = {
        name: time_interleaved([t], 20, args.repeats)[0]["p50_ms"] for name, t in configurations().items()
    }
    for label, row in results.items():
        print(f"{label:32s} " + "  ".join(f"{name} {ms:.2f} ms" for name, ms in row.items()))
    if args.out:
        args.out.write_text(json.dumps({"threads": threads, "p50_ms": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
