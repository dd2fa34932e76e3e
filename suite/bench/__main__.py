"""``python -m suite.bench`` (also ``distill bench``): parse arguments, run the benchmark, print the table."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from suite.bench.latency import PROVIDERS
from suite.bench.run import VARIANT_FILES, run_benchmark


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The bench options, for ``python -m suite.bench`` or a ``distill bench`` subparser."""
    parser.add_argument("export_dirs", nargs="+", metavar="EXPORT_DIR", help="directories written by distill export")
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 8, 32], help="batch sizes (default 1 8 32)")
    parser.add_argument("--providers", nargs="+", default=list(PROVIDERS), choices=list(PROVIDERS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANT_FILES), choices=list(VARIANT_FILES))
    parser.add_argument("--repeats", type=int, default=50, help="timed calls per row (default 50)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls first (default 10)")
    parser.add_argument("--seq-len", type=int, default=None, help="token length (default spec max_length, or 128)")
    parser.add_argument("--threads", type=int, default=None, help="ORT intra-op threads (default: physical cores)")
    parser.add_argument("--metric", default=None, help="key of <dir>/metrics.json to plot against latency")
    parser.add_argument("--no-torch", action="store_true", help="skip the eager PyTorch comparison")
    real = "also time text models at the real token lengths of this JSONL file's text/text_pair"
    parser.add_argument("--real-data", default=None, metavar="JSONL", help=real)
    parser.add_argument("--max-load", type=float, default=None, help="refuse to start above this 1-min load average")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="generation students: tokens per output")
    parser.add_argument("--num-beams", type=int, default=1, help="generation students: 1 = greedy, >1 = beam search")
    parser.add_argument("--out", default="runs/bench", help="output directory (default runs/bench)")
    return parser


def run_from_args(args: argparse.Namespace) -> int:
    """Run the benchmark for parsed ``args`` and print bench.md."""
    report = run_benchmark(
        args.export_dirs,
        batch_sizes=args.batch,
        providers=args.providers,
        variants=args.variants,
        torch_eager=not args.no_torch,
        out_dir=args.out,
        warmup=args.warmup,
        repeats=args.repeats,
        seq_len=args.seq_len,
        metric=args.metric,
        intra_op_threads=args.threads,
        real_data=args.real_data,
        max_load=args.max_load,
        max_new_tokens=args.max_new_tokens,
        num_beams=args.num_beams,
    )
    with open(report["files"]["markdown"]) as f:
        print(f.read())
    print(f"wrote {', '.join(report['files'].values())}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    description = "Latency of exported students: onnxruntime per provider and variant vs PyTorch eager."
    parser = add_arguments(argparse.ArgumentParser(prog="distill bench", description=description))
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
