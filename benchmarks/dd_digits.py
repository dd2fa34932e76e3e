"""Dataset distillation on scikit-learn's digits: images per class 1 / 10 / 50 for every method of
:mod:`suite.condense` against random real images, herding and the full training set.

    python -m benchmarks.dd_digits --out docs/results/dd

Each method distils the 1,257 training images (a stratified 70/30 split of the 1,797) once per seed with a ConvNet;
each set then trains a fresh ConvNet (DC's recipe: SGD, 300 epochs, DSA augmentation) scored on the 540 test images;
mean ± std over the seeds. Cross-architecture: the sets at ``--cross-ipc`` images per class also train an MLP and a
small ResNet. Each distillation's wall time (median over seeds) and the resident memory it added at its peak (max
over seeds, sampled every 20 ms) are recorded. Writes ``<out>.json`` (the schema of ``suite/results.py``: one entry
per method and budget, named like ``dm_ipc1``, with test ``accuracy``), ``<out>.md`` and ``<out>_digits.png``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

METHODS = ("random", "herding", "bilevel", "dc", "dsa", "dm", "mtt", "sre2l")
# Updates of the synthetic set per method and images-per-class, sized for a 2-core CPU (a few minutes per method);
# the papers run thousands of iterations on GPUs.
ITERATIONS = {
    1: {"random": 1, "herding": 1, "bilevel": 100, "dc": 100, "dsa": 100, "dm": 300, "mtt": 100, "sre2l": 500},
    10: {"random": 1, "herding": 1, "bilevel": 60, "dc": 20, "dsa": 20, "dm": 300, "mtt": 80, "sre2l": 500},
    50: {"random": 1, "herding": 1, "bilevel": 20, "dc": 6, "dsa": 6, "dm": 200, "mtt": 40, "sre2l": 500},
}
SYN_STEPS = 10  # MTT's synthetic steps per match (the paper: 20-80)


class PeakMemory:
    """Peak resident set size of this process while the block runs, sampled in a thread."""

    def __init__(self, interval: float = 0.02):
        import psutil

        self.process, self.interval, self.peak = psutil.Process(), interval, 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self.start = self.peak = self.process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def score(data: Any, test: Any, net: str, seed: int, epochs: int) -> float:
    import torch

    from suite.condense import TrainConfig, accuracy, train_net
    from suite.condense.nets import build_net

    torch.manual_seed(seed)
    model = build_net(net, 1, 8, 10)
    return accuracy(train_net(model, data, TrainConfig(epochs=epochs, batch_size=256), seed), test)


def one_set(method: str, ipc: int, seed: int, cross_ipc: int, epochs: int) -> dict[str, Any]:
    """Distil one set (timed, memory sampled) and score it; ``method="full"`` scores the whole training set."""
    import torch

    from suite.condense import CondenseConfig, condense
    from suite.condense.data import load_digits_split

    torch.set_num_threads(1)  # one worker per core: these networks are too small to use two threads well
    train, test = load_digits_split()
    if method == "full":
        return {"accuracy": score(train, test, "convnet", seed, epochs)}
    config = CondenseConfig(iterations=ITERATIONS[ipc][method], progress=False, syn_steps=SYN_STEPS)
    start = time.perf_counter()
    with PeakMemory() as memory:
        data = condense(method, train, ipc, seed, config)
    out = {"seconds": time.perf_counter() - start, "peak_rss": memory.peak - memory.start,
           "accuracy": score(data, test, "convnet", seed, epochs), "cross": {}}  # fmt: skip
    if ipc == cross_ipc:
        out["cross"] = {net: score(data, test, net, seed, epochs) for net in ("mlp", "resnet")}
    return out


def run(methods: list[str], ipcs: list[int], seeds: int, cross_ipc: int, epochs: int, jobs: int) -> dict[str, dict]:
    """Every (method, ipc, seed) set in ``jobs`` worker processes; rows keyed ``<method>_ipc<k>`` and ``full_data``."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    tasks = [("full", 0, s) for s in range(seeds)] + [(m, k, s) for k in ipcs for m in methods for s in range(seeds)]
    from suite.progress import progress_bar

    results: dict[tuple, dict] = {}
    # a fresh worker per set, so the memory a distillation adds is measured from the same clean start every time
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"), max_tasks_per_child=1) as pool:
        futures = {pool.submit(one_set, *task, cross_ipc, epochs): task for task in tasks}
        with progress_bar(len(tasks), "dd digits", "set") as bar:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update(1)
    rows: dict[str, dict] = {"full_data": {"accuracy": [results[("full", 0, s)]["accuracy"] for s in range(seeds)],
                                           "images": 1257, "seconds": [], "peak_rss": []}}  # fmt: skip
    for ipc in ipcs:
        for method in methods:
            sets = [results[(method, ipc, s)] for s in range(seeds)]
            row = {key: [r[key] for r in sets] for key in ("accuracy", "seconds", "peak_rss")}
            row |= {"images": 10 * ipc, "cross": {net: [r["cross"][net] for r in sets] for net in sets[0]["cross"]}}
            rows[f"{method}_ipc{ipc}"] = row
            print(
                f"{method} ipc {ipc}: {_mean_std(row['accuracy'])} ({statistics.median(row['seconds']):.1f} s per set)"
            )
    return rows


def _mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def summary(rows: dict[str, dict], command: str, machine: dict, epochs: int) -> dict:
    from suite.condense.nets import build_net
    from suite.eval import parameter_count

    params = parameter_count(build_net("convnet", 1, 8, 10))
    models = {}
    for name, row in rows.items():
        metrics = {"accuracy": statistics.mean(row["accuracy"]), "accuracy_std": statistics.stdev(row["accuracy"])}
        for net, values in row.get("cross", {}).items():
            metrics[f"accuracy_{net}"] = statistics.mean(values)
        models[name] = {"params": params, "kd": name.startswith("sre2l"), "latency_ms_p50": None,
                        "latency_ms_p99": None, "metrics": {"test": metrics}, "images": row["images"],
                        "distill_seconds_median": statistics.median(row["seconds"]) if row["seconds"] else None,
                        "distill_rss_mib": max(row["peak_rss"]) / 2**20 if row["peak_rss"] else None}  # fmt: skip
    return {"command": command, "machine": machine, "teacher": "full_data", "models": models,
            "dataset": "scikit-learn digits (1,257 train / 540 test, 8x8, 10 classes)", "eval_epochs": epochs,
            "iterations": ITERATIONS, "mtt_syn_steps": SYN_STEPS}  # fmt: skip


def _cell(rows: dict[str, dict], method: str, ipc: int) -> str:
    """Mean ± std, flagged when a method does not beat the random real images of the same budget."""
    name, random = f"{method}_ipc{ipc}", f"random_ipc{ipc}"
    if name not in rows:
        return "–"
    text = _mean_std(rows[name]["accuracy"])
    below = method != "random" and random in rows and _mean(rows[name]) <= _mean(rows[random])
    return f"{text} **(not above random)**" if below else text


def _mean(row: dict) -> float:
    return statistics.mean(row["accuracy"])


def goals(rows: dict[str, dict]) -> list[str]:
    def mean(name: str) -> float | None:
        return statistics.mean(rows[name]["accuracy"]) if name in rows else None

    lines = []
    best1 = max((n for n in ("dc_ipc1", "dm_ipc1") if n in rows), key=mean, default=None)
    if best1 and "random_ipc1" in rows:
        met = mean(best1) >= 0.85
        lines.append(f"- DC or DM at 1 image per class >= 85% test accuracy: `{best1}` {mean(best1):.1%} (random "
                     f"{mean('random_ipc1'):.1%}): {'met' if met else '**not met**'}.")  # fmt: skip
    best10 = max((n for n in ("dc_ipc10", "dm_ipc10") if n in rows), key=mean, default=None)
    if best10:
        gap = 100 * (mean("full_data") - mean(best10))
        verdict = "met" if gap <= 3 else "**not met**"
        lines.append(f"- at 10 per class within 3 points of full data: `{best10}` {mean(best10):.1%} vs "
                     f"{mean('full_data'):.1%} ({gap:.1f} points): {verdict}.")  # fmt: skip
    return lines


def write(rows: dict[str, dict], out: Path, command: str, epochs: int) -> None:
    from suite.bench.machine import machine_info
    from suite.results import write_summary

    machine = machine_info()
    doc = summary(rows, command, machine, epochs)
    previous = out.with_suffix(".json")
    if previous.is_file():  # keep the text-budget entries benchmarks.text_budget added (they carry a "task")
        kept = {k: v for k, v in json.loads(previous.read_text())["models"].items() if "task" in v}
        doc["models"] = {**doc["models"], **kept}
    write_summary(out.with_suffix(".json"), doc)
    ipcs = sorted({row["images"] // 10 for name, row in rows.items() if name != "full_data"})
    methods = list(dict.fromkeys(name.rsplit("_ipc", 1)[0] for name in rows if name != "full_data"))
    lines = [
        "# Dataset distillation on digits", "",
        f"Produced by `{command}` on {machine.get('cpu_model', 'unknown CPU')} ({machine.get('physical_cores', '?')} "
        f"physical cores, {machine.get('ram_bytes', 0) / 2**30:.0f} GiB), torch {machine.get('torch', '?')}. "
        f"Machine-readable: [{out.name}.json]({out.name}.json).", "",
        "scikit-learn's digits (8x8 grayscale, 10 classes), stratified 1,257 train / 540 test. Each set trains a "
        f"fresh ConvNet for {epochs} epochs (SGD, DSA augmentation); test accuracy, mean ± std over seeds. random "
        "and herding are real images; the others are synthetic (sre2l from noise, with its teacher's soft labels). "
        "Iterations per method are in the JSON (`iterations`): far fewer than the papers', to fit 2 CPU cores.", "",
        "Text: data budgets for text students (selectors, KD on synthetic data) are in [dd_text.md](dd_text.md), "
        "near-duplicate removal in [dedup.md](dedup.md), each with its command.", "",
        "## Goals", "", *goals(rows), "",
        "## Test accuracy by images per class", "",
        "| method | " + " | ".join(f"ipc {k}" for k in ipcs) + " |", "|---" * (len(ipcs) + 1) + "|",
    ]  # fmt: skip
    for method in methods:
        cells = [_cell(rows, method, k) for k in ipcs]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += [f"| full data ({rows['full_data']['images']:,} images) | " + " | ".join(
        [_mean_std(rows["full_data"]["accuracy"])] * len(ipcs)) + " |", ""]  # fmt: skip
    cross = [(n, r) for n, r in rows.items() if r.get("cross")]
    if cross:
        lines += ["## Cross-architecture (distilled with the ConvNet)", "", "| set | ConvNet | MLP | ResNet |",
                  "|---|---|---|---|"]  # fmt: skip
        lines += [f"| {n} | {_mean_std(r['accuracy'])} | {_mean_std(r['cross']['mlp'])} | "
                  f"{_mean_std(r['cross']['resnet'])} |" for n, r in cross]  # fmt: skip
        lines.append("")
    lines += [
        "## Cost of distilling one set",
        "",
        "| set | seconds (median) | added peak RSS (MiB, max) |",
        "|---|---|---|",
    ]
    lines += [f"| {n} | {statistics.median(r['seconds']):.1f} | {max(r['peak_rss']) / 2**20:.0f} |"
              for n, r in rows.items() if r["seconds"]]  # fmt: skip
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    plot(rows, methods, ipcs, out.parent / f"{out.name}_digits.png")
    print(f"report: {out.with_suffix('.md')}")


def plot(rows: dict[str, dict], methods: list[str], ipcs: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for method in methods:
        points = [
            (k, statistics.mean(rows[f"{method}_ipc{k}"]["accuracy"])) for k in ipcs if f"{method}_ipc{k}" in rows
        ]
        axis.plot(*zip(*points, strict=True), marker="o", label=method)
    axis.axhline(statistics.mean(rows["full_data"]["accuracy"]), color="black", linestyle="--", label="full data")
    axis.set(xscale="log", xlabel="images per class", ylabel="test accuracy", title="Dataset distillation on digits")
    axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--ipc", nargs="+", type=int, default=[1, 10, 50], choices=sorted(ITERATIONS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--cross-ipc", type=int, default=10, help="images per class also scored on MLP and ResNet")
    parser.add_argument("--epochs", type=int, default=300, help="epochs of each scoring network")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (one thread each)")
    parser.add_argument("--out", default="docs/results/dd")
    args = parser.parse_args()
    if args.seeds < 2:
        parser.error("--seeds must be >= 2 (the report shows a spread)")
    rows = run(args.methods, args.ipc, args.seeds, args.cross_ipc, args.epochs, args.jobs)
    write(rows, Path(args.out), shlex.join(["python", "-m", "benchmarks.dd_digits", *sys.argv[1:]]), args.epochs)


if __name__ == "__main__":
    main()
