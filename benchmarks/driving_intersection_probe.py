"""The imitation planner on one scenario alone, one recipe setting at a time (first: why it waits at the
intersection; also: why it crashes on the highway).

In the full driving run the imitation-only planner keeps its collisions near the expert's at the intersection but
covers about two thirds of the expert's distance there (goal: 80%): stopped before the crossing, it rarely takes
the expert's "go". On the highway it crashes several times as often as the expert (docs/results/driving_more). Each
arm runs the driving pack on ``--scenario`` only (imitation planner, training seeds 0 and 1 unless the arm says,
``--episodes`` closed-loop test episodes, the full profile's settings otherwise, except as many episodes of the
scenario as the full profile gives the others) with one setting changed:

    python -m benchmarks.driving_intersection_probe [--scenario intersection] [--episodes 60] [--arms NAME ...]
        [--set KEY=VALUE ...] [--runs-dir DIR] [--out DIR]

``--set`` changes a setting in every arm (one scenario's frames are about a quarter of the full run's, so
``--set epochs=100`` gives its planners the full run's number of steps).

Each arm's run directory (shards, planners, its own report) is ``--runs-dir``/ARM (default
``runs/driving_<scenario>_probe``), so an interrupted probe resumes where it stopped. Writes
``<scenario>_probe.json`` and ``<scenario>_probe.md`` to ``--out`` (default ``docs/results/driving_<scenario>``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SCENARIO = "SCENARIO"  # in an arm's settings: the probed scenario's name
# The full profile's planner on one scenario alone; one run trains both seeds on the same expert and DAgger data.
# As many episodes of the scenario as the others get (the full profile gives the intersection 10x, a fifth drawn each
# epoch): an arm that changes the episodes or the epochs says so itself.
COMMON = ["shift_scenarios=[]", "variants=[imitation]", "budgets=[1.0]", "seeds=[0,1]", "encoder_adapt_steps=0",
          "bench_repeats=20", "progress=false", "episode_scale={}", "epoch_share={}"]  # fmt: skip
SCENARIOS = ("intersection", "highway", "merge", "roundabout")
ARMS: dict[str, tuple[str, list[str]]] = {
    "baseline": ("the full profile's settings", []),
    "more-episodes": ("2.5x the expert's episodes (150) and DAgger's (75 a round)",
                      ["train_episodes=150", "dagger_episodes=75"]),
    "four-frames": ("4 stacked frames instead of 2", ["frames=4"]),
    "balanced": ("balanced class weights (power 1 instead of 0.5)", ["class_weight_power=1.0"]),
    "clearances": ("the expert's clearances regressed beside imitation (weight 1)", ["clearance_weight=1.0"]),
    # the full profile's expert since commit 01d22cb: the same as the baseline from then on
    "routes-any": ("an expert that keeps clear of every road another car could take, not only its planned one "
                   "(what a camera can know)", ["expert.other_routes=any"]),
    "routes-known": ("an expert that reads the other cars' planned routes from the simulator (the default before "
                     "commit 01d22cb)", ["expert.other_routes=known"]),
    "critical": ("frames on which keeping lane and speed was unsafe count 4x", ["critical_weight=3.0"]),
    # with this expert the gate's state clone came within 2x of it at the intersection once it had 10x the episodes
    # (benchmarks.driving_gate_probe --train-episodes 600): does the pixel planner follow with 5x? 25 epochs on 5x
    # the frames are about as many steps as 100 on the default ones
    "routes-any-more": ("the camera-knowable expert (other_routes=any) with 5x the expert's episodes (300) and "
                        "DAgger's (150 a round), 25 epochs",
                        ["expert.other_routes=any", "train_episodes=300", "dagger_episodes=150", "epochs=25"]),
    "routes-any-10x": ("the camera-knowable expert (other_routes=any) with 10x the expert's episodes (600) and "
                       "DAgger's (300 a round), 15 epochs (1.5x the steps of 100 on the default frames)",
                       ["expert.other_routes=any", "train_episodes=600", "dagger_episodes=300", "epochs=15"]),
    # the planner's crashes follow its own mistakes (missed brakes): more rounds of its own states, expert-labelled
    "dagger-4": ("4 DAgger rounds instead of 2 (the expert takes a step with probability 0.75, 0.5, 0.25, 0)",
                 ["dagger_rounds=4"]),
    # a planner that brakes a decision late still keeps clear of an expert that brakes with more margin
    "keep-margin-2": ("an expert that brakes or swerves below 2 m of clearance (instead of 1 m)",
                      ["expert.keep_margin=2.0"]),
    "keep-margin-3": ("an expert that brakes or swerves below 3 m of clearance (instead of 1 m)",
                      ["expert.keep_margin=3.0"]),
    # in the full run the intersection's crashes fell from 0.085 to 0.052 with 10x its episodes at twice its steps
    # (docs/results/driving_epoch_share): is it the variety? 5x the episodes, each epoch drawing a fifth of them: as
    # many steps as the baseline
    "scale-5x": ("5x the scenario's expert and DAgger episodes, each epoch drawing a fresh 20% of its frames (as "
                 "many steps as the baseline)",
                 [f"episode_scale={{{SCENARIO}: 5}}", f"epoch_share={{{SCENARIO}: 0.2}}"]),
    # one scenario's frames are about a quarter of the full run's: 4x the epochs give its planners as many steps
    # (one seed: 4x the time)
    "long": ("4x the epochs (100), one seed", ["epochs=100", "seeds=[0]"]),
    "long-critical": ("4x the epochs (100), one seed, unsafe frames 4x",
                      ["epochs=100", "seeds=[0]", "critical_weight=3.0"]),
}  # fmt: skip
METRICS = ("collision_rate", "progress", "success_rate")
OPEN_LOOP = ("action_accuracy", "action_macro_f1")
REFERENCES = ("expert", "state-clone", "constant-IDLE", "constant-SLOWER")


def base_settings(scenario: str, extra: list[str] | None = None) -> list[str]:
    """What every arm on ``scenario`` sets (``extra``: the probe's own ``--set`` settings, before each arm's)."""
    return [f"scenarios=[{scenario}]", *COMMON, *(extra or [])]


def arm_settings(name: str, scenario: str) -> list[str]:
    """Arm ``name``'s own settings on ``scenario``."""
    return [setting.replace(SCENARIO, scenario) for setting in ARMS[name][1]]


def run_arm(name: str, scenario: str, runs: Path, episodes: int, extra: list[str]) -> dict[str, Any]:
    """Run (or resume) one arm's driving run on ``scenario`` under ``runs``; returns its results JSON."""
    run_dir = runs / name
    settings = [*base_settings(scenario, extra), f"eval_episodes={episodes}", *arm_settings(name, scenario)]
    command = [sys.executable, "-m", "suite.cli", "run", "driving", "--profile", "full", "--output-dir",
               str(run_dir), "--resume", *[arg for s in settings for arg in ("--set", s)]]  # fmt: skip
    print(f"[probe] {name}: {' '.join(command[1:])}", flush=True)
    subprocess.run(command, check=True)
    return json.loads((run_dir / "report" / "driving.json").read_text())


def arm_row(results: dict[str, Any], scenario: str) -> dict[str, Any]:
    """The imitation planner's metrics on ``scenario`` (mean and std over its training seeds) and open loop."""
    model = results["models"]["tiny-imitation"]
    closed, spread = model["metrics"][scenario], model["metrics_std"][scenario]
    row = {metric: closed[metric] for metric in METRICS}
    row.update({f"{metric}_std": spread[metric] for metric in METRICS})
    row.update({m: model["metrics"]["open_loop"][m] for m in OPEN_LOOP})
    # the run's own verdicts (domains.driving.report.imitation_goals), not a second reading of the goals
    row["goals_met"] = results["goals"]["imitation_collisions_met"] and results["goals"]["imitation_progress_met"]
    row["seeds"] = model["seeds"]
    expert = results["models"]["expert"]["metrics"][scenario]  # an arm may change the expert: its own, the goals'
    row["expert"] = {metric: expert[metric] for metric in ("collision_rate", "mean_speed")}
    return row


def references(results: dict[str, Any], scenario: str) -> dict[str, dict[str, float]]:
    """The expert, the state clone and the constant policies on the same test episodes (the baseline arm's run), with
    the open-loop accuracy and macro-F1 of those that have them (constant IDLE is the majority class)."""
    refs = {}
    for name in REFERENCES:
        metrics = results["models"][name]["metrics"]
        refs[name] = {m: metrics[scenario][m] for m in (*METRICS, "mean_speed")}
        refs[name].update({m: metrics["open_loop"][m] for m in OPEN_LOOP if m in metrics.get("open_loop", {})})
    return refs


def markdown(payload: dict[str, Any], seconds: float) -> str:
    from domains.driving.report import MAX_COLLISIONS_VS_EXPERT, MIN_PROGRESS
    from suite.report import header

    refs, rows, episodes = payload["references"], payload["arms"], payload["episodes"]
    scenario = payload.get("scenario", "intersection")  # the first sitting's JSON predates --scenario
    ceiling = MAX_COLLISIONS_VS_EXPERT * refs["expert"]["collision_rate"]
    majority = refs["constant-IDLE"].get("action_accuracy", 0.0)  # IDLE is the expert's most frequent action
    lines = header(f"Driving: the imitation planner on {scenario} alone, one setting at a time", payload, seconds,
                   f"{scenario}_probe.json")  # fmt: skip
    lines += [
        f"Each arm is one `distill run driving --profile full` on {scenario} alone with one setting changed; "
        f"the imitation planner is trained with each of the arm's seeds on the same expert and DAgger frames and "
        f"each seed drives the same {episodes} test episodes: mean ± std over the seeds (± 0 for an arm of one "
        f"seed). Goals (issue 14): collisions <= "
        f"{MAX_COLLISIONS_VS_EXPERT:g}x the expert's (<= {ceiling:.3f} here) and >= {MIN_PROGRESS:.0%} of its "
        f"progress.",
        "",
        "| arm | settings | seeds | collision rate | progress | success | open-loop accuracy | macro-F1 | goals |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, ref in refs.items():
        open_loop = [f"{ref[m]:.3f}" if m in ref else "–" for m in OPEN_LOOP]
        cells = [f"{name} (reference)", "–", "–", f"{ref['collision_rate']:.3f}", f"{ref['progress']:.2f}",
                 f"{ref['success_rate']:.3f}", *open_loop, "–"]  # fmt: skip
        lines.append(f"| {' | '.join(cells)} |")
    for name, row in rows.items():
        settings = ", ".join(f"`{s}`" for s in arm_settings(name, scenario)) or "–"
        accuracy = f"{row['action_accuracy']:.3f}"
        if row["action_accuracy"] < majority:
            accuracy += " **(below the majority class)**"
        seeds = ", ".join(map(str, row["seeds"]))
        cells = [f"{name}: {ARMS[name][0]}", settings, seeds, _spread(row, "collision_rate", 3),
                 _spread(row, "progress", 2), _spread(row, "success_rate", 3), accuracy,
                 f"{row['action_macro_f1']:.3f}", "met" if row["goals_met"] else "**not met**"]  # fmt: skip
        lines.append(f"| {' | '.join(cells)} |")
    common = ", ".join(f"`{s}`" for s in payload.get("base", base_settings(scenario)))
    lines += ["", f"Common settings: {common}, `eval_episodes={episodes}`.", ""]
    for name, row in rows.items():
        if any(setting.startswith("expert.") for setting in ARMS[name][1]):
            own = row["expert"]
            lines += [f"Arm {name} changes the expert, so its progress and goals are against that run's own expert "
                      f"(collision rate {own['collision_rate']:.3f}, mean speed {own['mean_speed']:.2f} m/s; the "
                      f"reference expert's: {refs['expert']['collision_rate']:.3f}, "
                      f"{refs['expert']['mean_speed']:.2f} m/s).", ""]  # fmt: skip
    return "\n".join(lines)


def _spread(row: dict[str, Any], metric: str, digits: int) -> str:
    return f"{row[metric]:.{digits}f} ± {row[metric + '_std']:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=60, help="closed-loop test episodes per arm and seed")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS), help="arms to run, in order")
    parser.add_argument("--scenario", default="intersection", choices=SCENARIOS, help="the one scenario driven")
    parser.add_argument("--runs-dir", help="the arms' run directories (default: runs/driving_<scenario>_probe)")
    parser.add_argument("--out", help="where the tables go (default: docs/results/driving_<scenario>)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a recipe setting for every arm (an arm's own settings win), e.g. epochs=100",
    )
    args = parser.parse_args(argv)
    from suite.bench.machine import machine_info

    if "baseline" not in args.arms:
        parser.error("the baseline arm is required: the other arms are read against it")
    scenario = args.scenario
    out = Path(args.out or f"docs/results/driving_{scenario}")
    runs = Path(args.runs_dir or f"runs/driving_{scenario}_probe")
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    results = {name: run_arm(name, scenario, runs, args.episodes, args.set) for name in args.arms}
    rows = {name: arm_row(result, scenario) for name, result in results.items()}
    seconds = time.time() - start
    command = "python -m benchmarks.driving_intersection_probe " + " ".join(sys.argv[1:] if argv is None else argv)
    payload = {"command": command.strip(), "machine": machine_info(), "seconds": seconds, "scenario": scenario,
               "episodes": args.episodes, "base": base_settings(scenario, args.set),
               "settings": {name: arm_settings(name, scenario) for name in rows},
               "references": references(results["baseline"], scenario), "arms": rows}  # fmt: skip
    (out / f"{scenario}_probe.json").write_text(json.dumps(payload, indent=1))
    (out / f"{scenario}_probe.md").write_text(markdown(payload, seconds))
    print(f"[probe] wrote {out / f'{scenario}_probe.md'} ({seconds / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
