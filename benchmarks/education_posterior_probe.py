"""Does Bayesian KD's SGLD posterior calibrate the tiny student (issue 13's ECE goal: at most half the plain KD
student's ECE at accuracy within 1 point)? Reads the trained ``bayes`` students of an education run directory,
samples each one's posterior again at every ``--lrs`` step size (the pack samples once, at ``posterior.lr``), and
prints accuracy and ECE of the MAP weights and of each posterior's predictive mean on the test splits, beside the
run's plain KD students (``kd``), seed by seed.

    python -m benchmarks.education_posterior_probe --run-dir RUN --out docs/results/education_posterior

``RUN`` holds ``students/<task>_tiny_bayes-s<seed>/model`` and ``students/<task>_tiny_kd-s<seed>/model`` (its first
task) from ``distill run education`` with a ``bayes`` variant (``{task: 1.0, prior: 3.0}``) and ``kd``; its
``recipe.yaml`` gives the data, the students' settings and the other posterior settings. The teacher's logits come
from the run's teacher-output store (nothing is labelled again). Choose the step size on ``dev``: the test splits are
only read.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SPLITS = ("dev", "unseen_answers", "unseen_questions")


def open_run(run_dir: Path) -> tuple[Any, Any]:
    """(recipe, pack) of the run's first task: the pack reuses the run's teacher stage and store."""
    from domains.education.pipeline import load_task, pair_task, split_metrics
    from domains.education.recipe import EducationRecipe
    from suite.config import read_run_recipe
    from suite.pair_pack import PairClassificationPack
    from suite.stages import StageLedger

    recipe = read_run_recipe(EducationRecipe, run_dir)
    if recipe is None:
        raise SystemExit(f"{run_dir}: no recipe.yaml (run it with the distill command first)")
    task = recipe.tasks[0]
    pack = PairClassificationPack(pair_task(recipe, task), load_task(recipe, task), split_metrics,
                                  StageLedger(run_dir), resume=True)  # fmt: skip
    return recipe, pack


def scores(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    from suite.eval import accuracy, expected_calibration_error

    return {"accuracy": accuracy(probs.argmax(-1).tolist(), labels.tolist()),
            "ece": expected_calibration_error(probs, labels)}  # fmt: skip


def probe_seed(pack: Any, run_dir: Path, seed: int, lrs: list[float], base: Any) -> dict[str, Any]:
    """One seed: the kd and bayes students' MAP scores and the bayes posterior's at each step size."""
    from suite import pairs
    from suite.errors import ConfigError
    from suite.pair_pack import encode, labels_of
    from suite.students.io import load_student

    variants = {pack.recipe_name(v): v for v in pack.variants() if v.student == "tiny"}
    if not {"kd", "bayes"} <= set(variants):
        raise SystemExit(f"{run_dir}: the probe reads tiny `kd` and `bayes` students; the run has {sorted(variants)}")
    splits = {"dev": pack.data.dev, **{s: pack.data.tests[s] for s in SPLITS[1:]}}
    labels = {s: np.asarray(labels_of(e)) for s, e in splits.items()}
    out: dict[str, Any] = {}
    for name in ("kd", "bayes"):
        student, tokenizer = load_student(run_dir / "students" / f"{pack.task.name}_tiny_{name}-s{seed}" / "model")
        items = {s: encode(tokenizer, e, pack.task.max_length) for s, e in splits.items()}
        out[f"{name} MAP"] = {s: scores(pairs.predict_proba(student, tokenizer, items[s]), labels[s]) for s in splits}
    train = pack.kd_items(variants["bayes"], tokenizer)  # the bayes student's own objective: task + prior
    for lr in lrs:
        started = time.perf_counter()
        config = dataclasses.replace(base, lr=lr, seed=seed)
        try:
            samples = pairs.posterior_predictions(student, tokenizer, train, variants["bayes"].terms, items, config)
        except ConfigError as error:  # a diverged chain: the step size is the finding, the other sizes still run
            print(f"  seed {seed}: {error}")
            out[f"posterior lr {lr:g}"] = {"diverged": str(error)}
            continue
        row = out[f"posterior lr {lr:g}"] = {s: scores(samples[s].mean(0), labels[s]) for s in splits}
        shown = ", ".join(f"{s} acc {v['accuracy']:.3f} ece {v['ece']:.3f}" for s, v in row.items())
        print(f"  seed {seed} lr {lr:g}: {shown} ({time.perf_counter() - started:.0f} s)")
    return out


def summarise(per_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Model -> split -> mean and std over seeds of accuracy and ECE, and ECE as a share of the kd student's; a
    step size that diverged on any seed -> how many seeds it diverged on."""
    rows: dict[str, Any] = {}
    for model in next(iter(per_seed.values())):
        diverged = sum("diverged" in r[model] for r in per_seed.values())
        if diverged:
            rows[model] = {"diverged_seeds": diverged}
            continue
        rows[model] = {}
        for split in SPLITS:
            acc = [r[model][split]["accuracy"] for r in per_seed.values()]
            ece = [r[model][split]["ece"] for r in per_seed.values()]
            kd_ece = [r["kd MAP"][split]["ece"] for r in per_seed.values()]
            rows[model][split] = {"accuracy": float(np.mean(acc)), "accuracy_std": float(np.std(acc)),
                                  "ece": float(np.mean(ece)), "ece_std": float(np.std(ece)),
                                  "ece_vs_kd": float(np.mean(ece) / np.mean(kd_ece))}  # fmt: skip
    return rows


def markdown(rows: dict[str, Any], command: str, seeds: list[int]) -> str:
    head = ["model"] + [f"{s}: accuracy / ECE (x kd)" for s in SPLITS]
    lines = [f"Command: `{command}`", "", f"Seeds {seeds}; mean ± std over seeds.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]  # fmt: skip
    for model, by_split in rows.items():
        if "diverged_seeds" in by_split:
            lines.append(f"| {model} | " + " | ".join([f"diverged ({by_split['diverged_seeds']} of {len(seeds)} "
                                                       "seeds)"] * len(SPLITS)) + " |")  # fmt: skip
            continue
        cells = [f"{v['accuracy']:.3f} ± {v['accuracy_std']:.3f} / {v['ece']:.3f} ({v['ece_vs_kd']:.2f}x)"
                 for v in by_split.values()]  # fmt: skip
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-6, 1e-5, 1e-4])
    parser.add_argument("--samples", type=int, default=20, help="posterior samples kept per step size")
    parser.add_argument("--burn-in", type=int, default=None, help="SGLD steps before the first (default: the run's)")
    parser.add_argument("--thin", type=int, default=None, help="SGLD steps between samples (default: the run's)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if min(args.lrs) <= 0 or args.samples < 1:
        parser.error("--lrs must be > 0 and --samples >= 1")
    recipe, pack = open_run(args.run_dir)
    given = {"burn_in": args.burn_in, "thin": args.thin}  # None: the run's own setting
    base = dataclasses.replace(recipe.posterior, samples=args.samples,
                               **{k: v for k, v in given.items() if v is not None})  # fmt: skip
    per_seed = {seed: probe_seed(pack, args.run_dir, seed, args.lrs, base) for seed in args.seeds}
    rows = summarise(per_seed)
    command = "python -m benchmarks.education_posterior_probe " + " ".join(sys.argv[1:] if argv is None else argv)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "posterior_probe.json").write_text(json.dumps(
        {"command": command, "posterior": dataclasses.asdict(base), "summary": rows,
         "per_seed": {str(k): v for k, v in per_seed.items()}}, indent=1))  # fmt: skip
    (args.out / "posterior_probe.md").write_text(markdown(rows, command, args.seeds))
    print(markdown(rows, command, args.seeds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
