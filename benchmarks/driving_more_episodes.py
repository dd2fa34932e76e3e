"""More closed-loop episodes for a driving run's full-data planners, the expert and the baselines.

The report drives 20 test episodes per scenario; with the expert crashing in 0-3 of them, "<= 2x the expert's
collisions" is decided by a handful of crashes. This drives the same policies on ``--episodes`` further seeded
episodes per scenario (after the report's, so never the same ones) and pools each variant's training seeds:

    python -m benchmarks.driving_more_episodes --run-dir RUN/out [--episodes 200] [--set KEY=VALUE ...]
        [--variants imitation all] [--scenarios ...] [--out docs/results/driving_more]

RUN is a finished `distill run driving` output directory; its recipe is read from the ``recipe.yaml`` the run
wrote, so the expert that drives and shadows here is the one that labelled the run's frames. A run made before runs
recorded their recipe needs its own settings repeated with ``--set`` (e.g. ``--set expert.other_routes=any``).
The expert shadows every policy (it says at each step what it would have done), and each crash is put down to the
last of its three decisions before the crash where the policy did otherwise (``domains.driving.evaluate.crash_cause``):
what a planner gets wrong, not only how often. Writes ``more_episodes.json`` and ``more_episodes.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

VARIANTS = ("imitation", "all")


def pooled(rows_by_policy: dict[str, list[dict[str, Any]]], expert: list[dict[str, Any]]) -> dict[str, Any]:
    """Collision rate, collisions per km, success and progress of several policies' episodes taken together
    (``rows_by_policy``: one list of episode rows per training seed, each on the seeds of ``expert``'s rows), with
    each seed's crashes too: the pooled count hides how much the training seeds differ."""
    from domains.driving.evaluate import summarise

    rows = [row for rows in rows_by_policy.values() for row in rows]
    reference = [row for _ in rows_by_policy for row in expert]  # each seed drove the expert's episodes
    metrics = summarise(rows, reference)
    by_seed = [float(sum(row["crashed"] for row in seed_rows)) for seed_rows in rows_by_policy.values()]
    return {**metrics, "crashes": sum(by_seed), "crashes_by_seed": by_seed}


def seed_counts(by_seed: list[float]) -> str:
    """`` (10 + 12 + 10)``: each training seed's crashes, where there are several seeds (else '')."""
    return f" ({' + '.join(f'{c:.0f}' for c in by_seed)})" if len(by_seed) > 1 else ""


def verdict(planner: dict[str, float], expert: dict[str, float]) -> bool:
    """The report's goal: the planner's collision rate at most ``MAX_COLLISIONS_VS_EXPERT`` x the expert's."""
    from domains.driving.report import MAX_COLLISIONS_VS_EXPERT

    return planner["collision_rate"] <= MAX_COLLISIONS_VS_EXPERT * expert["collision_rate"]


def policies(run: Path, recipe: Any, variants: tuple[str, ...] = VARIANTS) -> dict[str, Any]:
    """The expert, the state clone, the constant baselines and every training seed of ``variants``' full-data
    planners (``variants`` may be fewer: a run stopped before its all-five planners still checks imitation alone)."""
    from domains.driving.pipeline import GATE_WEIGHTS, planner_policy, reference_policies

    specs = reference_policies(recipe, run / "gate" / GATE_WEIGHTS)
    for variant in variants:
        for seed in recipe.seeds:
            directory = run / "students" / f"{recipe.backbone}-{variant}-s{seed}"
            if not (directory / "model.safetensors").is_file():
                raise SystemExit(f"{directory}: no model.safetensors; is {run} a finished driving run directory?")
            specs[f"{recipe.backbone}-{variant}|{seed}"] = planner_policy(recipe, recipe.backbone, directory)
    return specs


def causes(rows_by_policy: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """How many of several policies' crashes (their episodes taken together) had each cause."""
    from domains.driving.evaluate import CRASH_CAUSES, crash_cause

    found = [crash_cause(row) for rows in rows_by_policy.values() for row in rows]
    return {cause: found.count(cause) for cause in CRASH_CAUSES}


def cause_table(counts: dict[str, dict[str, dict[str, int]]], scenarios: list[str]) -> list[str]:
    from domains.driving.evaluate import CRASH_CAUSES

    lines = ["| policy | scenario | " + " | ".join(CRASH_CAUSES) + " |", "|---" * (len(CRASH_CAUSES) + 2) + "|"]
    for name, per in counts.items():
        for scenario in scenarios:
            if any(per[scenario].values()):
                lines.append(f"| {name} | {scenario} | " + " | ".join(str(per[scenario][c]) for c in CRASH_CAUSES)
                             + " |")  # fmt: skip
    return lines


def table(results: dict[str, dict[str, dict[str, float]]], scenarios: list[str]) -> list[str]:
    lines = ["| policy | scenario | episodes | crashes (per seed) | collision rate | collisions/km | success | "
             "progress | <= 2x expert |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for scenario in scenarios:
        expert = results["expert"][scenario]
        for name, per in results.items():
            m = per[scenario]
            judged = "yes" if verdict(m, expert) else "**no**"
            crashes = f"{m['crashes']:.0f}{seed_counts(m.get('crashes_by_seed', []))}"
            lines.append(
                f"| {name} | {scenario} | {m['episodes']:.0f} | {crashes} | {m['collision_rate']:.3f} | "
                f"{m['collisions_per_km']:.2f} | {m['success_rate']:.3f} | {m['progress']:.2f} | "
                + (judged if name.startswith("tiny") else "–")
                + " |"
            )
    return lines


def main(argv: list[str] | None = None) -> None:
    from domains.driving.evaluate import closed_loop
    from domains.driving.recipe import DrivingRecipe, run_recipe
    from suite.bench.machine import machine_info
    from suite.report import header

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--scenarios", nargs="+", default=list(DrivingRecipe().scenarios))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a recipe setting on top of the run's recorded one (repeatable)")  # fmt: skip
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS,
                        help="the full-data planners to drive (default: both)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/driving_more"))
    args = parser.parse_args(argv)
    recipe, start = run_recipe(args.run_dir, args.set), time.time()
    specs = policies(args.run_dir, recipe, tuple(args.variants))
    episodes = closed_loop(specs, tuple(args.scenarios), args.episodes, recipe.seed, args.workers,
                           offset=recipe.eval_episodes, camera=recipe.camera, shadow=recipe.expert)  # fmt: skip
    groups: dict[str, list[str]] = {}
    for name in specs:
        groups.setdefault(name.split("|")[0], []).append(name)
    results = {group: {s: pooled({n: episodes[n][s] for n in names}, episodes["expert"][s]) for s in args.scenarios}
               for group, names in groups.items()}  # fmt: skip
    crash_causes = {group: {s: causes({n: episodes[n][s] for n in names}) for s in args.scenarios}
                    for group, names in groups.items()}  # fmt: skip
    seconds = time.time() - start
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.driving_more_episodes " + " ".join(argv if argv is not None else sys.argv[1:])
    payload = {"command": command, "machine": machine_info(), "episodes": args.episodes, "seconds": seconds,
               "offset": recipe.eval_episodes, "seeds": recipe.seeds, "settings": args.set, "results": results,
               "crash_causes": crash_causes}  # fmt: skip
    (args.out / "more_episodes.json").write_text(json.dumps(payload, indent=2))
    title = "Driving: the full-data planners on more closed-loop episodes"
    head = header(title, payload, seconds, "more_episodes.json")
    head += [
        f"Each policy drives {args.episodes} seeded episodes per scenario after the report's {recipe.eval_episodes} "
        f"test episodes; a planner row pools its {len(recipe.seeds)} training seeds (each drives every episode; "
        "its crashes are followed by each seed's). Progress and success are against the expert on the same episodes.",
        "",
    ]
    why = [
        "",
        "## Why they crash",
        "",
        "Crashes by cause (pooled over training seeds): the last of the three decisions before the crash where the "
        "policy did not do what the expert, shadowing it, would have done there; or none, with or without a safe "
        "option left for the expert three decisions before the crash.",
        "",
    ]
    body = head + table(results, args.scenarios) + why + cause_table(crash_causes, args.scenarios)
    (args.out / "more_episodes.md").write_text("\n".join(body) + "\n")
    print(f"wrote {args.out / 'more_episodes.md'}")


if __name__ == "__main__":
    main()
