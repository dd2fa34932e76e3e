"""Does training the planners in bf16 autocast change how they drive? fp32 and bf16 on the same frames.

The bf16 full run (65.4 min) crashed its imitation planners in 0.163 of 200 intersection episodes, the fp32 run before
it (95.1 min) in 0.097 (docs/results/driving_more, commits 62d8356 and 36b951d). The two runs differ in precision
and, through their DAgger planners, in their training frames. This holds the frames fixed: it reads a finished
run's training and validation frames (expert and DAgger, through a reuse-only stage ledger, so the run is never
changed), trains its imitation-only planner at each precision with the same seeds, and drives every planner and the
expert on the same held-out episodes as ``benchmarks.driving_more_episodes`` (after the report's test episodes):

    python -m benchmarks.driving_precision --run-dir RUN/out [--run-precision P] [--set KEY=VALUE ...]
        [--seeds 0 1 2] [--episodes 200] [--scenarios ...] [--work-dir runs/driving_precision]
        [--out docs/results/driving_precision]

RUN is a finished `distill run driving --profile full` directory; its recipe is read from the ``recipe.yaml`` the
run wrote (a run made before runs recorded their recipe: ``--run-precision`` is its ``mixed_precision``, what its
DAgger planners trained in, and ``--set`` repeats its other settings, e.g. ``expert.other_routes=any``; the ledger
refuses a run made with others). Planners train under
``--work-dir`` (resumable). Per scenario, each precision's crashes pool its seeds, and McNemar's exact test pairs the
two precisions' planners of the same seed on the same episode. Writes ``precision.json`` and ``precision.md`` to
``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

PRECISIONS = {"fp32": "no", "bf16": "bf16"}  # label -> the Trainer's mixed_precision
VARIANT = "imitation"
OPEN_LOOP = ("action_accuracy", "action_macro_f1")


def load_pack(run: Path, precision: str | None = None, settings: list[str] | None = None) -> Any:
    """The run's driving pack (frames, class weights, prototypes) read from ``run`` without building anything: its
    recorded recipe (:func:`domains.driving.recipe.run_recipe`) with ``settings`` on top and ``precision`` (None:
    the recipe's own) as its ``mixed_precision``; other settings than the run's own make its stages refused as built
    from other inputs."""
    import dataclasses

    from domains.driving.pipeline import DrivingPack
    from domains.driving.recipe import run_recipe
    from suite.stages import StageLedger

    recipe = run_recipe(run, settings)
    precision = precision or recipe.mixed_precision
    recipe = dataclasses.replace(recipe, output_dir=str(run), mixed_precision=precision, progress=False)
    return DrivingPack(recipe, StageLedger(run, reuse_only=True), resume=True)


def imitation_variant(pack: Any) -> Any:
    """The run's imitation-only planner variant at the whole data budget."""
    return next(v for v in pack.variants() if v.name == f"{pack.recipe.backbone}-{VARIANT}")


def train_planners(pack: Any, run: Path, seeds: list[int], work: Path) -> dict[str, dict[int, Path]]:
    """``{label: {seed: planner weights}}``: the imitation planner at each precision on the run's training frames."""
    from suite.stages import StageLedger

    variant = imitation_variant(pack)
    frames = StageLedger(run, reuse_only=True).fingerprint_of(pack.data_stage)  # which frames they learn from
    ledger, out = StageLedger(work), {}
    for label, precision in PRECISIONS.items():
        pack.precision = precision
        for seed in seeds:
            settings = {**pack.student_settings(variant), "seed": seed, "frames": frames}
            weights = ledger.run(f"{label}/s{seed}", settings,
                                 lambda d, s=seed: _fit(pack, variant, s, d),  # noqa: B023
                                 lambda d: d / "model.safetensors")  # fmt: skip
            out.setdefault(label, {})[seed] = weights
    return out


def _fit(pack: Any, variant: Any, seed: int, directory: Path) -> Path:
    pack.fit_planner(variant, seed, directory, pack.train_data)
    return directory / "model.safetensors"


def training_seconds(work: Path) -> dict[str, float]:
    """Median training time of each precision's planners (this machine, nothing beside them)."""
    from suite.stages import StageLedger

    records = StageLedger(work, log=lambda _: None).records
    return {label: statistics.median(r["seconds"] for name, r in records.items() if name.startswith(f"{label}/"))
            for label in PRECISIONS}  # fmt: skip


def weight_gap(weights: Path, reference: Path) -> float:
    """Largest absolute difference between two planners' parameters (0: the same planner)."""
    from safetensors.torch import load_file

    mine, theirs = load_file(str(weights)), load_file(str(reference))
    return max(float((mine[k].float() - theirs[k].float()).abs().max()) for k in theirs)


def open_loop(pack: Any, planners: dict[str, dict[int, Path]]) -> dict[str, dict[str, float]]:
    """Each precision's open-loop accuracy and macro-F1 on the run's validation frames (mean over seeds)."""
    from domains.driving.evaluate import open_loop_metrics

    variant = imitation_variant(pack)
    out = {}
    for label, by_seed in planners.items():
        rows = [
            open_loop_metrics(pack.load(variant, seed, weights.parent), pack.val) for seed, weights in by_seed.items()
        ]
        out[label] = {m: statistics.fmean(r[m] for r in rows) for m in OPEN_LOOP}
    return out


def drive(pack: Any, planners: dict[str, dict[int, Path]], scenarios: list[str], episodes: int) -> dict[str, Any]:
    """Every planner and the expert on the same held-out episodes: ``{policy: {scenario: rows}}``."""
    from domains.driving.evaluate import closed_loop
    from domains.driving.pipeline import planner_policy, reference_policies

    recipe = pack.recipe
    specs = {"expert": reference_policies(recipe, pack.gate_weights)["expert"]}
    for label, by_seed in planners.items():
        for seed, weights in by_seed.items():
            specs[f"{label}|{seed}"] = planner_policy(recipe, recipe.backbone, weights.parent)
    return closed_loop(specs, tuple(scenarios), episodes, recipe.seed, recipe.workers, offset=recipe.eval_episodes,
                       progress=False, camera=recipe.camera)  # fmt: skip


def compare(episodes: dict[str, Any], seeds: list[int], scenarios: list[str]) -> dict[str, Any]:
    """Per scenario: each precision's pooled metrics and per-seed collision rates, and the paired test."""
    from benchmarks.driving_more_episodes import pooled
    from suite.eval.paired import mcnemar_exact

    out: dict[str, Any] = {}
    for scenario in scenarios:
        expert = episodes["expert"][scenario]
        row: dict[str, Any] = {"expert": pooled({"expert": expert}, expert)}
        crashed = {}
        for label in PRECISIONS:
            by_seed = {seed: episodes[f"{label}|{seed}"][scenario] for seed in seeds}
            row[label] = pooled(by_seed, expert)
            row[label]["per_seed_collision_rate"] = [statistics.fmean(r["crashed"] for r in by_seed[s]) for s in seeds]
            crashed[label] = [r["crashed"] for s in seeds for r in by_seed[s]]
        row["mcnemar_fp32_vs_bf16"] = mcnemar_exact(crashed["fp32"], crashed["bf16"])
        out[scenario] = row
    return out


def table(results: dict[str, Any]) -> list[str]:
    lines = ["| scenario | policy | crashes | collision rate | per seed | progress | success | McNemar p (fp32 vs "
             "bf16) |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for scenario, row in results.items():
        for name in ("expert", *PRECISIONS):
            m = row[name]
            spread = ", ".join(f"{v:.3f}" for v in m.get("per_seed_collision_rate", [])) or "–"
            test = f"{row['mcnemar_fp32_vs_bf16']['p_value']:.3f}" if name == "bf16" else ""
            lines.append(f"| {scenario} | {name} | {m['crashes']:.0f} | {m['collision_rate']:.3f} | {spread} | "
                         f"{m['progress']:.2f} | {m['success_rate']:.3f} | {test} |")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> None:
    from domains.driving.recipe import DrivingRecipe
    from suite.bench.machine import machine_info

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--run-precision", choices=("auto", "bf16", "no"),
                        help="the run's mixed_precision (default: its recorded recipe's, else auto)")  # fmt: skip
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--scenarios", nargs="+", default=list(DrivingRecipe().scenarios))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a recipe setting on top of the run's recorded one (repeatable)")  # fmt: skip
    parser.add_argument("--work-dir", type=Path, default=Path("runs/driving_precision"))
    parser.add_argument("--out", type=Path, default=Path("runs/driving_precision/report"))
    args = parser.parse_args(argv)
    start = time.time()
    pack = load_pack(args.run_dir, args.run_precision, args.set)
    run_precision = pack.precision
    planners = train_planners(pack, args.run_dir, args.seeds, args.work_dir)
    own = {label: {s: args.run_dir / "students" / f"{pack.recipe.backbone}-{VARIANT}-s{s}" / "model.safetensors"
                   for s in args.seeds} for label, p in PRECISIONS.items() if p == run_precision}  # fmt: skip
    gaps = {label: {s: weight_gap(planners[label][s], w) for s, w in by_seed.items() if w.is_file()}
            for label, by_seed in own.items()}  # fmt: skip
    results = compare(drive(pack, planners, args.scenarios, args.episodes), args.seeds, args.scenarios)
    seconds = time.time() - start
    command = "python -m benchmarks.driving_precision " + " ".join(argv if argv is not None else sys.argv[1:])
    payload = {"command": command, "machine": machine_info(), "run_dir": str(args.run_dir),
               "run_precision": run_precision, "train_frames": len(pack.train_data), "seeds": args.seeds,
               "episodes": args.episodes, "offset": pack.recipe.eval_episodes, "seconds": seconds,
               "training_seconds_median": training_seconds(args.work_dir), "open_loop": open_loop(pack, planners),
               "weight_gap_to_run_planners": gaps, "results": results}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "precision.json").write_text(json.dumps(payload, indent=2))
    (args.out / "precision.md").write_text("\n".join(report(payload)) + "\n")
    print(f"wrote {args.out / 'precision.md'}")


def report(payload: dict[str, Any]) -> list[str]:
    from suite.report import header

    lines = header("Driving: the imitation planner trained in fp32 and in bf16 on the same frames", payload,
                   payload["seconds"], "precision.json")  # fmt: skip
    times, accuracy = payload["training_seconds_median"], payload["open_loop"]
    lines += [
        f"The frames: the {payload['train_frames']} training frames (expert and DAgger) of the run in "
        f"`{payload['run_dir']}` (its planners trained in {payload['run_precision']}). The imitation-only planner is "
        f"trained on them with seeds {', '.join(map(str, payload['seeds']))} in fp32 and in bf16 autocast (weights "
        f"kept in fp32), everything else the full profile's; each planner and the expert drive "
        f"{payload['episodes']} held-out episodes per scenario (after the report's {payload['offset']} test "
        "episodes); a precision's row pools its seeds; McNemar's exact test pairs the two precisions' planners of the "
        "same seed on the same episode.",
        "",
        "| precision | training time per planner (median) | open-loop accuracy | macro-F1 |",
        "|---|---|---|---|",
        *[f"| {label} | {times[label]:.0f} s | {accuracy[label]['action_accuracy']:.3f} | "
          f"{accuracy[label]['action_macro_f1']:.3f} |" for label in PRECISIONS],
        "",
        *table(payload["results"]),
        "",
    ]  # fmt: skip
    for label, gaps in payload["weight_gap_to_run_planners"].items():
        worst = max(gaps.values(), default=float("nan"))
        lines.append(f"The {label} planners retrained here differ from the run's own by at most {worst:.3g} in any "
                     "weight (0: training is reproducible and these are the run's planners).")  # fmt: skip
    return lines


if __name__ == "__main__":
    main()
