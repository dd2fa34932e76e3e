"""Student accuracy against data budget on the clinical and education packs' text: which examples to keep.

    python -m benchmarks.text_budget --out docs/results/dd_text

For each task, each budget (1 / 5 / 10 / 25 / 100% of the training set) and each method, a student is trained on
the chosen examples and scored on the test split; mean ± std over seeds. The student is a small MLP head on frozen
all-MiniLM-L6-v2 sentence embeddings (the shape of an edge classifier that runs the encoder once; for SemEval's
answer pairs the features are ``[u, v, |u - v|, u * v]`` of context and answer); each head trains for the same
number of optimizer steps whatever its set's size. The teacher is an ensemble of 5 wider heads trained on all the
training data; its probabilities are the soft labels of the KD rows.

Methods: ``random``; ``minhash`` (near-duplicates at word-trigram Jaccard >= 0.8 removed, then random);
``semdedup`` (the cosine threshold lowered until the kept set fits the budget, then random); ``kcenter`` and
``herding`` (coresets in embedding space); ``shapley`` (exact KNN-Shapley values on a dev split, the highest of each
class, classes in proportion); ``random_kd`` and ``herding_kd`` (the same choices, with the teacher's soft labels);
``synthetic_kd`` (texts sampled from a per-label word
trigram model trained on all training texts, the offline stand-in for an LLM generator, relabelled by the teacher:
KD on synthetic data, as many texts as the budget allows).

Writes ``OUT.md``, ``OUT.json``, ``OUT.png`` and adds one entry per task, method and budget to ``dd.json`` beside
it (``symptom2disease_semdedup_25pct``, ...).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from suite.condense.synthetic import NgramGenerator, Request
from suite.condense.text import EmbeddingHead, EmbeddingSet, head_accuracy, train_head
from suite.progress import progress_bar
from suite.selection.dedup import minhash_dedup
from suite.selection.semantic import herding_select, kcenter_greedy, semdedup, sentence_embeddings
from suite.selection.shapley import knn_shapley

BUDGETS = (0.01, 0.05, 0.10, 0.25, 1.0)
METHODS = ("random", "minhash", "semdedup", "kcenter", "herding", "shapley", "random_kd", "herding_kd", "synthetic_kd")
STEPS = 600  # optimizer steps per student, whatever the set's size
BATCH = 64


@dataclass
class Task:
    name: str
    labels: list[str]
    train_texts: list[tuple[str, str]]  # (text, text_pair); pair is "" for single texts
    train_y: np.ndarray
    dev_texts: list[tuple[str, str]]
    dev_y: np.ndarray
    test_texts: list[tuple[str, str]]
    test_y: np.ndarray


def _pairs(examples: list[Any]) -> tuple[list[tuple[str, str]], np.ndarray]:
    return [(e.text, e.text_pair) for e in examples], np.array([e.label for e in examples])


def load_symptom2disease() -> Task:
    from domains.clinical.data import load_task

    data = load_task("symptom2disease")
    (tr, ty), (dv, dy), (te, yy) = (_pairs(data.splits[s]) for s in ("train", "dev", "test"))
    return Task("symptom2disease", data.labels, tr, ty, dv, dy, te, yy)


def load_sra() -> Task:
    from domains.clinical.data import hashed_split
    from domains.education.data import LABELS, load_sra

    splits = load_sra(None, "both")
    dev = [e for e in splits["train"] if hashed_split(e.group, 0.1, "dev")]
    train = [e for e in splits["train"] if not hashed_split(e.group, 0.1, "dev")]
    (tr, ty), (dv, dy), (te, yy) = _pairs(train), _pairs(dev), _pairs(splits["unseen_answers"])
    return Task("sra", list(LABELS), tr, ty, dv, dy, te, yy)


LOADERS: dict[str, Callable[[], Task]] = {"symptom2disease": load_symptom2disease, "sra": load_sra}


class Embedder:
    """MiniLM sentence embeddings of unique strings, cached on disk by the string's hash."""

    def __init__(self, cache: Path):
        self.path = cache / "embeddings.npz"
        self.cache: dict[str, np.ndarray] = dict(np.load(self.path)) if self.path.is_file() else {}

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def __call__(self, texts: list[str]) -> np.ndarray:
        todo = sorted({t for t in texts if self.key(t) not in self.cache})
        if todo:
            for text, vector in zip(todo, sentence_embeddings(todo), strict=True):
                self.cache[self.key(text)] = vector.astype(np.float32)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(self.path, **self.cache)
        return np.stack([self.cache[self.key(t)] for t in texts]) if texts else np.zeros((0, 384), np.float32)

    def features(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        u = self([a for a, _ in pairs])
        if all(not b for _, b in pairs):
            return u
        v = self([b for _, b in pairs])
        return np.concatenate([u, v, np.abs(u - v), u * v], axis=1)


# -- choosing examples ---------------------------------------------------------------------------------------------


def _random_fill(pool: list[int], rest: list[int], count: int, rng: random.Random) -> list[int]:
    """``count`` ids from ``pool`` at random, topped up from ``rest`` if the pool is too small."""
    pool, rest = list(pool), list(rest)
    rng.shuffle(pool)
    rng.shuffle(rest)
    return (pool + rest)[:count]


def semdedup_to_budget(x: np.ndarray, count: int, seed: int) -> list[int]:
    """SemDeDup's knob is the similarity threshold: lower it (more removed) until the kept set fits the budget."""
    best = list(range(len(x)))
    for threshold in (0.99, 0.97, 0.95, 0.93, 0.9, 0.87, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5):
        kept = semdedup(x, threshold=threshold, clusters=max(2, min(50, len(x) // 20)), seed=seed).kept
        best = kept
        if len(kept) <= count:
            break
    return best


def choose(method: str, task: Task, x: np.ndarray, dev_x: np.ndarray, count: int, seed: int,
           cache: dict[str, Any]) -> list[int]:  # fmt: skip
    n, rng = len(x), random.Random(seed)
    everything = list(range(n))
    if count >= n:
        return everything
    if method in ("random", "random_kd"):
        return _random_fill(everything, [], count, rng)
    if method == "minhash":
        if "minhash" not in cache:
            cache["minhash"] = minhash_dedup([f"{a} {b}".strip() for a, b in task.train_texts]).kept
        kept = cache["minhash"]
        return _random_fill(kept, sorted(set(everything) - set(kept)), count, rng)
    if method == "semdedup":
        kept = semdedup_to_budget(x, count, seed)
        return _random_fill(kept, sorted(set(everything) - set(kept)), count, rng)
    if method == "kcenter":
        return kcenter_greedy(x, count, seed=seed).kept
    if method == "herding":
        return herding_select(x, task.train_y, count).kept
    if method in ("shapley", "shapley_kd"):
        if "shapley" not in cache:
            cache["shapley"] = knn_shapley(x, task.train_y, dev_x, task.dev_y, k=5)
        return top_value_per_class(cache["shapley"], task.train_y, count)
    if method == "herding_kd":
        return herding_select(x, task.train_y, count).kept
    raise ValueError(f"unknown method {method}")


def top_value_per_class(values: np.ndarray, labels: np.ndarray, count: int) -> list[int]:
    """The most valuable examples of each class, classes in proportion to their size: unbalanced top-k by value
    fills small budgets with the few classes whose points the dev set rewards most."""
    chosen: list[int] = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        quota = max(1, round(count * len(members) / len(labels)))
        chosen += [int(i) for i in members[np.argsort(-values[members], kind="stable")[:quota]]]
    return chosen


# -- teacher, synthetic data and students --------------------------------------------------------------------------


def train_teacher(x: np.ndarray, y: np.ndarray, classes: int, members: int = 5) -> Callable[[np.ndarray], np.ndarray]:
    data = EmbeddingSet(torch.tensor(x), torch.tensor(y))
    epochs = max(5, round(STEPS * 2 * BATCH / len(x)))
    heads = [train_head(data, classes, seed=100 + m, epochs=epochs, hidden=1024, batch_size=BATCH)
             for m in range(members)]  # fmt: skip

    @torch.no_grad()
    def probabilities(vectors: np.ndarray) -> np.ndarray:
        v = torch.tensor(vectors)
        return torch.stack([h(v).softmax(-1) for h in heads]).mean(0).numpy()

    return probabilities


def synthetic_pairs(task: Task, count: int, seed: int) -> list[tuple[str, str]]:
    """``count`` texts from per-label trigram models over the training texts, labels drawn in training proportions;
    for answer pairs the answer is sampled and joined to a random training context (the teacher relabels it)."""
    rng = random.Random(seed)
    answers = [b if b else a for a, b in task.train_texts]
    names = [task.labels[int(c)] for c in task.train_y]
    generator = NgramGenerator(answers, names, max_words=60)
    requests = [Request(rng.choice(names), "", seed * 100_003 + i) for i in range(count)]
    texts = generator.generate(requests)
    if all(not b for _, b in task.train_texts):
        return [(t, "") for t in texts]
    contexts = [a for a, _ in task.train_texts]
    return [(rng.choice(contexts), t) for t in texts]


def student_accuracy(x: np.ndarray, y: np.ndarray, soft: np.ndarray | None, test_x: np.ndarray, test_y: np.ndarray,
                     classes: int, seed: int) -> float:  # fmt: skip
    data = EmbeddingSet(torch.tensor(x), torch.tensor(y), None if soft is None else torch.tensor(soft))
    epochs = max(3, round(STEPS * BATCH / len(x)))
    head = train_head(data, classes, seed=seed, epochs=epochs, batch_size=BATCH)
    return head_accuracy(head, test_x, test_y)


def run_task(task: Task, embed: Embedder, methods: list[str], budgets: list[float], seeds: int) -> dict[str, Any]:
    classes = len(task.labels)
    x, dev_x, test_x = (embed.features(t) for t in (task.train_texts, task.dev_texts, task.test_texts))
    teacher = train_teacher(x, task.train_y, classes)
    teacher_acc = float((teacher(test_x).argmax(1) == task.test_y).mean())
    majority = Counter(task.train_y.tolist()).most_common(1)[0][0]
    rows: dict[str, dict[str, Any]] = {}
    cache: dict[str, Any] = {}
    total = len(methods) * len(budgets) * seeds
    with progress_bar(total, f"{task.name} budgets", "student") as bar:
        for budget in budgets:
            count = max(classes, round(budget * len(x)))
            for method in methods:
                accs, seconds = [], []
                for seed in range(seeds):
                    start = time.perf_counter()
                    if method == "synthetic_kd":
                        pairs = synthetic_pairs(task, count, seed)
                        sx = embed.features(pairs)
                        soft = teacher(sx)
                        sy = soft.argmax(1)
                    else:
                        chosen = choose(method, task, x, dev_x, count, seed, cache)
                        sx, sy = x[chosen], task.train_y[chosen]
                        soft = teacher(sx) if method.endswith("_kd") else None
                    seconds.append(time.perf_counter() - start)
                    accs.append(student_accuracy(sx, sy, soft, test_x, task.test_y, classes, seed))
                    bar.update(1)
                rows[f"{method}_{round(budget * 100)}pct"] = {
                    "method": method, "budget": budget, "examples": count, "accuracy": float(np.mean(accs)),
                    "accuracy_std": float(np.std(accs)), "per_seed": accs, "select_seconds": float(np.median(seconds)),
                }  # fmt: skip
    student_params = sum(p.numel() for p in EmbeddingHead(x.shape[1], classes).parameters())
    teacher_params = 5 * sum(p.numel() for p in EmbeddingHead(x.shape[1], classes, hidden=1024).parameters())
    return {
        "task": task.name, "classes": classes, "student_params": student_params, "teacher_params": teacher_params,
        "train": len(x), "dev": len(dev_x), "test": len(test_x),
        "teacher_accuracy": teacher_acc, "majority_accuracy": float((task.test_y == majority).mean()), "rows": rows,
    }  # fmt: skip


# -- report --------------------------------------------------------------------------------------------------------


def _cell(row: dict | None, random_row: dict | None, majority: float) -> str:
    if row is None:
        return "-"
    text = f"{row['accuracy']:.3f} ± {row['accuracy_std']:.3f}"
    if row["accuracy"] <= majority:
        return text + " **(not above the majority class)**"
    compared = random_row is not None and row["method"] != "random" and row["budget"] < 1
    if compared and row["accuracy"] <= random_row["accuracy"]:
        text += " **(not above random)**"
    return text


def goal_lines(result: dict[str, Any]) -> list[str]:
    rows = result["rows"]
    full = rows.get("random_100pct")
    random25 = rows.get("random_25pct")
    if full is None or random25 is None:
        return ["- the 25% and 100% budgets were not both run: no goal check"]
    # a selector chooses which real examples to keep: random choices (with or without KD) are the baselines
    best = max((r for r in rows.values() if r["budget"] == 0.25 and not r["method"].startswith("random")),
               key=lambda r: r["accuracy"], default=None)  # fmt: skip
    if best is None:
        return ["- no selector ran at 25%"]
    gap_full = 100 * (full["accuracy"] - best["accuracy"])
    gain = 100 * (best["accuracy"] - random25["accuracy"])
    met = gap_full <= 1 and gain >= 2
    return [f"- best at 25%: `{best['method']}` {best['accuracy']:.3f} vs full data {full['accuracy']:.3f} "
            f"({gap_full:+.1f} points below) and random at 25% {random25['accuracy']:.3f} ({gain:+.1f} points "
            f"above): {'met' if met else 'not met'} (goal: within 1 point of full, >= 2 above random)"]  # fmt: skip


def write_report(results: list[dict[str, Any]], methods: list[str], budgets: list[float], out: Path,
                 command: str, machine: dict, seconds: float) -> None:  # fmt: skip
    lines = [
        "# Data budgets for text students",
        "",
        f"Produced by `{command}` on {machine['cpu_model']} ({machine['physical_cores']} physical cores), "
        f"{seconds / 60:.0f} min. Machine-readable: [{out.name}.json]({out.name}.json); the entries are also in "
        "[dd.json](dd.json).",
        "",
        (__doc__ or "").split("\n\n", 2)[2].split("\n\nWrites")[0],
        "",
    ]
    for result in results:
        rows = result["rows"]
        lines += [f"## {result['task']} ({result['train']:,} training / {result['dev']:,} dev / {result['test']:,} "
                  f"test, {result['classes']} classes)", "",
                  f"Teacher (5-head ensemble, all training data): {result['teacher_accuracy']:.3f}; majority class: "
                  f"{result['majority_accuracy']:.3f}. Test accuracy, mean ± std over seeds:", "",
                  "| method | " + " | ".join(f"{round(b * 100)}%" for b in budgets) + " |",
                  "|---|" + "---|" * len(budgets)]  # fmt: skip
        for method in methods:
            cells = []
            for b in budgets:
                key = f"{method}_{round(b * 100)}pct"
                cells.append(
                    _cell(rows.get(key), rows.get(f"random_{round(b * 100)}pct"), result["majority_accuracy"])
                )
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines += ["", "Goal:", *goal_lines(result), ""]
        if result["majority_accuracy"] >= result["teacher_accuracy"]:
            lines.append("**The teacher does not beat the majority class on this task.**\n")
    lines += [f"![accuracy against budget]({out.name}.png)", ""]
    out.with_suffix(".md").write_text("\n".join(lines))


def plot(results: list[dict[str, Any]], methods: list[str], budgets: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.2), squeeze=False)
    for ax, result in zip(axes[0], results, strict=True):
        for method in methods:
            points = [(b * 100, result["rows"][f"{method}_{round(b * 100)}pct"]["accuracy"]) for b in budgets
                      if f"{method}_{round(b * 100)}pct" in result["rows"]]  # fmt: skip
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=method)
        ax.axhline(result["teacher_accuracy"], color="black", linestyle="--", linewidth=1, label="teacher")
        ax.axhline(result["majority_accuracy"], color="grey", linestyle=":", linewidth=1, label="majority class")
        ax.set_xscale("log")
        ax.set_xlabel("share of the training set (%)")
        ax.set_ylabel("test accuracy")
        ax.set_title(result["task"])
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def merge_into_dd(results: list[dict[str, Any]], dd_path: Path, command: str, machine: dict) -> None:
    """One ``models`` entry per task, method and budget in ``dd.json`` (schema of ``suite/results.py``)."""
    from suite.results import write_summary

    doc = json.loads(dd_path.read_text()) if dd_path.is_file() else {"command": command, "machine": machine,
                                                                       "teacher": None, "models": {}}  # fmt: skip
    names = {r["task"] for r in results}
    doc["models"] = {k: v for k, v in doc["models"].items() if v.get("task") not in names}
    for result in results:
        task = result["task"]
        for name, accuracy, params in (("teacher", result["teacher_accuracy"], result["teacher_params"]),
                                       ("majority", result["majority_accuracy"], 0)):  # fmt: skip
            doc["models"][f"{task}_{name}"] = {
                "params": params, "kd": False, "latency_ms_p50": None, "latency_ms_p99": None,
                "metrics": {"test": {"accuracy": accuracy}}, "task": task, "method": name, "command": command,
            }  # fmt: skip
        if doc["teacher"] not in doc["models"]:
            doc["teacher"] = f"{task}_teacher"
        for key, row in result["rows"].items():
            doc["models"][f"{result['task']}_{key}"] = {
                "params": result["student_params"], "kd": row["method"].endswith("_kd"),
                "latency_ms_p50": None, "latency_ms_p99": None,
                "metrics": {"test": {"accuracy": row["accuracy"], "accuracy_std": row["accuracy_std"]}},
                "task": result["task"], "method": row["method"], "budget": row["budget"], "examples": row["examples"],
                "command": command,
            }  # fmt: skip
    write_summary(dd_path, doc)


def rerender(out: Path) -> None:
    doc = json.loads(out.with_suffix(".json").read_text())
    methods = list(dict.fromkeys(r["method"] for result in doc["results"] for r in result["rows"].values()))
    budgets = sorted({r["budget"] for result in doc["results"] for r in result["rows"].values()})
    write_report(doc["results"], methods, budgets, out, doc["command"], doc["machine"], doc["seconds"])
    plot(doc["results"], methods, budgets, out.with_suffix(".png"))
    merge_into_dd(doc["results"], out.parent / "dd.json", doc["command"], doc["machine"])
    print(f"report: {out.with_suffix('.md')}")


def main() -> None:
    from suite.bench.machine import machine_info

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(LOADERS), choices=list(LOADERS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--budgets", nargs="+", type=float, default=list(BUDGETS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cache", default="runs/bench/text_budget", help="sentence-embedding cache")
    parser.add_argument("--out", default="docs/results/dd_text")
    parser.add_argument(
        "--report-only", action="store_true", help="re-render OUT.md, OUT.png and dd.json from OUT.json"
    )
    args = parser.parse_args()
    if args.report_only:
        return rerender(Path(args.out))
    torch.set_num_threads(max(1, torch.get_num_threads()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    changed = [f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
               for k, v in vars(args).items() if v != parser.get_default(k) and k != "out"]  # fmt: skip
    command = " ".join(["python -m benchmarks.text_budget --out", args.out, *changed])
    embed, start, results = Embedder(Path(args.cache)), time.perf_counter(), []
    for name in args.tasks:
        results.append(run_task(LOADERS[name](), embed, args.methods, sorted(args.budgets), args.seeds))
    seconds = time.perf_counter() - start
    machine = machine_info()
    doc = {"command": command, "machine": machine, "seconds": seconds, "steps": STEPS, "batch": BATCH,
           "results": results}  # fmt: skip
    out.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n")
    write_report(results, args.methods, sorted(args.budgets), out, command, machine, seconds)
    plot(results, args.methods, sorted(args.budgets), out.with_suffix(".png"))
    merge_into_dd(results, out.parent / "dd.json", command, machine)
    print(f"report: {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
