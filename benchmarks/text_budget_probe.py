"""Why no selector reaches full-data accuracy on Symptom2Disease at 25%: the same chosen examples under students of
other kinds. If a better-regularised student on the best selection still stays far below the same student on all
the data, the gap is the information in the examples left out, not the benchmark's MLP head.

    python -m benchmarks.text_budget_probe [--cache runs/bench/text_budget] [--out docs/results/dd_text_probe.md]

Students on the frozen MiniLM features of ``benchmarks.text_budget``: logistic regression (C = 10 and 100) and the
nearest class centroid (cosine); selections: random, k-center and herding at 25%, 3 seeds; and each student on all
the training data. Writes a markdown table with the command.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.text_budget import Embedder, choose, load_symptom2disease
from suite.report import write_markdown

STUDENTS = ("logistic C=10", "logistic C=100", "nearest centroid")


def scores(x: np.ndarray, y: np.ndarray, rows: list[int], test_x: np.ndarray, test_y: np.ndarray) -> list[float]:
    from sklearn.linear_model import LogisticRegression

    out = [LogisticRegression(C=c, max_iter=3000).fit(x[rows], y[rows]).score(test_x, test_y) for c in (10, 100)]
    chosen = np.array(rows)
    centroids = np.stack([x[chosen[y[chosen] == c]].mean(0) for c in range(int(y.max()) + 1)])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    out.append(float(((test_x @ centroids.T).argmax(1) == test_y).mean()))
    return [float(v) for v in out]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", default="runs/bench/text_budget")
    parser.add_argument("--out", default="docs/results/dd_text_probe.md")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    task, embed = load_symptom2disease(), Embedder(Path(args.cache))
    x, dev_x, test_x = (embed.features(t) for t in (task.train_texts, task.dev_texts, task.test_texts))
    y, test_y = task.train_y, task.test_y
    count = round(0.25 * len(y))
    rows = {"all the data": scores(x, y, list(range(len(y))), test_x, test_y)}
    for method in ("random", "kcenter", "herding"):
        runs = [scores(x, y, choose(method, task, x, dev_x, count, seed, {}), test_x, test_y)
                for seed in range(args.seeds)]  # fmt: skip
        rows[f"{method}, 25%"] = list(np.mean(runs, axis=0))
    command = f"python -m benchmarks.text_budget_probe --cache {args.cache} --out {args.out} --seeds {args.seeds}"
    lines = ["# Symptom2Disease at 25% of the data: other students on the same choices", "", f"`{command}`", "",
             f"Test accuracy ({len(test_y)} cases; 25% rows: mean over {args.seeds} seeds).", "",
             "| training set | " + " | ".join(STUDENTS) + " |", "|---" * (len(STUDENTS) + 1) + "|"]  # fmt: skip
    lines += [f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + " |" for name, values in rows.items()]
    full = rows["all the data"]
    best = max((name for name in rows if name != "all the data"), key=lambda n: max(rows[n]))
    column = int(np.argmax(rows[best]))
    gap = 100 * (full[column] - rows[best][column])
    lines += ["", f"Closest: {best} with {STUDENTS[column]}, {rows[best][column]:.3f} against {full[column]:.3f} for "
              f"the same student on all the data ({gap:.1f} points below)."]  # fmt: skip
    print(write_markdown(Path(args.out), lines).read_text(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
