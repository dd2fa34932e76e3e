"""Does the graded-neighbours teacher lift the SRA teacher ensemble (issue 13's teacher goal: >= 0.80 accuracy on
unseen answers)? Reads the fine-tuned members of an education run directory (a teachers-only sitting is enough),
adds the graded-neighbours teacher (``suite.teachers.neighbours``) at each ``--k``, and prints every member, the
fine-tuned ensemble and the ensemble with the neighbours as one more member (probabilities averaged, as the pack's
teacher row does), beside the majority class and the word-overlap baseline, on dev and every test split.

    python -m benchmarks.sra_teacher_neighbours --run-dir RUN --out docs/results/sra_teacher_neighbours

``RUN`` holds ``sra/teacher/hf``, ``sra/teacher1/hf``, ... from ``distill run education --profile full
--output-dir RUN --set 'tasks=[sra]' --set 'teacher_members=[0,1,2]'``. Every answer goes through the run's
teacher-output stores (the neighbours teacher at k = 5 shares the store a run with ``teacher_neighbours=5`` uses),
so a later full run reuses them. The data and the teacher's max length come from the run's ``recipe.yaml``.
Choose k on dev: the test splits are only read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def evaluate(run_dir: Path, ks: list[int]) -> dict[str, Any]:
    """Accuracy per model and split (dev + the test splits), and the neighbours teacher's coverage per split."""
    from domains.education.pipeline import load_task
    from domains.education.recipe import EducationRecipe
    from suite.config import read_run_recipe
    from suite.eval import accuracy
    from suite.pair_pack import baseline_rules, labels_of, store_dir, teacher_logits
    from suite.pairs import stored_teacher_logits
    from suite.teachers import HFTeacher
    from suite.teachers.neighbours import GradedNeighbourTeacher

    # the run's own recipe (its data, max length) when it recorded one; the pack's defaults otherwise
    recipe = read_run_recipe(EducationRecipe, run_dir) or EducationRecipe(tasks=["sra"])
    data = load_task(recipe, "sra")
    splits = {"dev": data.dev, **data.tests}
    labels = {s: labels_of(e) for s, e in splits.items()}
    task_dir = run_dir / "sra"
    folders = sorted(task_dir.glob("teacher*/hf"), key=lambda p: p.parent.name)
    if not folders:
        raise SystemExit(f"no fine-tuned teachers under {task_dir} (expected teacher/hf, teacher1/hf, ...)")
    probs: dict[str, dict[str, np.ndarray]] = {}
    for member, folder in enumerate(folders):
        teacher = HFTeacher(folder, task="classification", max_length=recipe.sra_max_length)
        probs[f"member{member}"] = {s: teacher_logits(teacher, e, task_dir, member).softmax(-1).numpy()
                                    for s, e in splits.items()}  # fmt: skip
    members = list(probs)
    probs["fine-tuned ensemble"] = {s: np.mean([probs[m][s] for m in members], axis=0) for s in splits}
    graded = [(e.text, e.text_pair, e.label) for e in data.train]
    coverage: dict[str, dict[str, float]] = {}
    for k in ks:
        teacher = GradedNeighbourTeacher(graded, num_labels=2, k=k)
        store = store_dir(task_dir, len(folders))  # the member index a run with teacher_neighbours gives it
        own = {s: stored_teacher_logits(teacher, [(x.text, x.text_pair) for x in e], store).softmax(-1).numpy()
               for s, e in splits.items()}  # fmt: skip
        coverage[f"k={k}"] = {s: float((np.abs(own[s][:, 0] - 0.5) > 1e-6).mean()) for s in splits}
        probs[f"neighbours k={k}"] = own
        probs[f"ensemble + neighbours k={k}"] = {
            s: np.mean([probs[m][s] for m in members] + [own[s]], axis=0) for s in splits
        }
        # the neighbours as heavy as the fine-tuned members together: does their share matter?
        probs[f"(ensemble + neighbours k={k}) / 2"] = {
            s: (probs["fine-tuned ensemble"][s] + own[s]) / 2 for s in splits
        }
    for name, rule in baseline_rules(data.train, 2).items():  # the pack's majority and word-overlap rows
        probs[name] = {s: rule(e) for s, e in splits.items()}
    scores = {name: {s: accuracy(p[s].argmax(-1).tolist(), labels[s].tolist()) for s in splits}
              for name, p in probs.items()}  # fmt: skip
    return {"accuracy": scores, "neighbours_coverage": coverage, "members": [str(f) for f in folders],
            "examples": {s: len(e) for s, e in splits.items()}}  # fmt: skip


def markdown(result: dict[str, Any], head: list[str]) -> list[str]:
    splits = list(result["examples"])
    lines = [*head, "| model | " + " | ".join(splits) + " |", "|---" * (len(splits) + 1) + "|"]
    for name, row in result["accuracy"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row[s]:.3f}" for s in splits) + " |")
    lines += ["", "Share of pairs the neighbours teacher votes on (the rest: a question with no graded answer in "
              "train, where it abstains):", "", "| k | " + " | ".join(splits) + " |",
              "|---" * (len(splits) + 1) + "|"]  # fmt: skip
    for k, row in result["neighbours_coverage"].items():
        lines.append(f"| {k} | " + " | ".join(f"{row[s]:.2f}" for s in splits) + " |")
    return lines + [""]


def main(argv: list[str] | None = None) -> None:
    from suite.bench.machine import machine_info
    from suite.report import header

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True, help="an education run with fine-tuned SRA teachers")
    parser.add_argument("--k", type=int, nargs="+", default=[5, 10], help="neighbours that vote")
    parser.add_argument("--out", type=Path, default=Path("docs/results/sra_teacher_neighbours"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = evaluate(args.run_dir, args.k)
    seconds = time.perf_counter() - started
    command = "python -m benchmarks.sra_teacher_neighbours " + " ".join(argv if argv is not None else sys.argv[1:])
    payload = {"command": command, "machine": machine_info(), "seconds": seconds, **result}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "neighbours.json").write_text(json.dumps(payload, indent=2) + "\n")
    title = "SRA teacher: fine-tuned cross-encoders with and without the graded-neighbours teacher (accuracy)"
    lines = markdown(result, header(title, payload, seconds, "neighbours.json"))
    (args.out / "neighbours.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
