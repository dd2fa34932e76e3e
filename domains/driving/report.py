"""The driving report: ``driving.md`` + ``driving.json`` (the run summary) + plots, and the model card. Shared
pieces come from :mod:`suite.report`; this module adds the closed-loop tables, the goals and the sample frames."""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path
from typing import Any

from domains.driving import scenarios as sim
from domains.driving.evaluate import failed
from domains.driving.pipeline import GATE, MAJORITY, DrivingResult, model_name
from domains.driving.recipe import VARIANTS
from suite.eval.paired import add_holm, mcnemar_exact
from suite.report import (
    header,
    latency_table,
    metrics_table,
    model_card,
    number,
    run_summary,
    split_bars,
    split_columns_table,
    write_markdown,
)
from suite.results import write_summary
from suite.runner import ModelResult, latency

OPEN = ("action_accuracy", "action_macro_f1", "slower_recall", "waypoint_l2_1s", "waypoint_l2_2s", "waypoint_l2_3s",
        "rationale_retrieval")  # fmt: skip
SHIPPED = "all"  # the variant the model card describes
OPEN_LOOP_GOAL = {"highway": 0.85, "merge": 0.93}  # imitation-only planner, action accuracy per scenario
MAX_COLLISIONS_VS_EXPERT = 2.0  # x the expert's collision rate, in every scenario
MIN_PROGRESS = 0.8  # of the expert's distance, in every scenario
P99_MS, MAX_PARAMS = 2.0, 5_000_000  # batch 1, one CPU thread


def overall(entry: ModelResult, metric: str, scenarios: list[str]) -> float:
    return statistics.fmean(entry.metrics[s][metric] for s in scenarios)


def summary(run: DrivingResult, seconds: float) -> dict[str, Any]:
    return run_summary(run.results, run.bench, "expert", seconds, teacher_kind=run.recipe.teacher,
                       frames={"train": run.train_frames, "val": run.val_frames},
                       closed_loop_episodes_per_scenario=run.recipe.eval_episodes, goals=goals(run),
                       training_precision="bf16" if run.precision == "bf16" else "fp32",
                       **({"text_encoder": run.text_encoder} if run.text_encoder else {}))  # fmt: skip


def imitation_goals(run: DrivingResult, name: str, prefix: str = "imitation") -> dict[str, Any]:
    """A policy that imitates the expert (the imitation-only planner; the gate's state clone with ``prefix`` gate)
    against it: open-loop accuracy per scenario, and closed loop in every scenario at most twice the expert's
    collisions with at least 80% of its progress."""
    scenarios, results = list(run.recipe.scenarios), run.results
    if name not in results:
        return {}
    opened, expert = results[name].metrics["open_loop"], results["expert"].metrics
    accuracy = {s: opened.get(f"action_accuracy_{s}") for s in OPEN_LOOP_GOAL if s in scenarios}
    closed = results[name].metrics
    # The expert keeps lane and speed on most highway frames: constant IDLE can reach the accuracy goal there.
    majority = results.get(MAJORITY)
    baseline = {s: majority.metrics["open_loop"].get(f"action_accuracy_{s}") for s in accuracy} if majority else {}
    return {
        f"{prefix}_accuracy": accuracy,
        f"{prefix}_majority_accuracy": baseline,
        f"{prefix}_accuracy_beats_majority": {s: accuracy[s] is not None and baseline[s] is not None
                                              and accuracy[s] > baseline[s] for s in baseline},
        f"{prefix}_accuracy_met": bool(accuracy) and all(v is not None and v >= OPEN_LOOP_GOAL[s]
                                                         for s, v in accuracy.items()),
        f"{prefix}_collisions_met": all(closed[s]["collision_rate"] <= MAX_COLLISIONS_VS_EXPERT
                                        * expert[s]["collision_rate"] for s in scenarios),
        f"{prefix}_progress": {s: closed[s]["progress"] for s in scenarios},
        f"{prefix}_progress_met": all(closed[s]["progress"] >= MIN_PROGRESS for s in scenarios),
    }  # fmt: skip


REASONING_GAIN = 0.30  # fewer failures than imitation alone at the same data budget, with a paired test
ALPHA = 0.05


def failures(run: DrivingResult, name: str, scenarios: list[str] | None = None) -> list[bool]:
    """Planner ``name``'s failed episodes (a crash, or under 90% of the expert's distance on that episode), seed by
    seed, scenario by scenario (``scenarios``, default all), episode by episode: the same order for every planner,
    so two lists pair up."""
    out = []
    for seed in run.results[name].seeds or []:
        for scenario in scenarios or run.recipe.scenarios:
            out += failed(run.episodes[f"{name}|{seed}"][scenario], run.episodes["expert"][scenario])
    return out


def paired_change(failed_a: list[bool], failed_b: list[bool]) -> dict[str, float]:
    """McNemar's exact test of ``b`` against ``a`` on the same episodes, with the relative reduction of the failure
    rate (> 0: ``b`` fails less)."""
    test = mcnemar_exact(failed_a, failed_b)
    before, after = test["failure_rate_a"], test["failure_rate_b"]
    return {**test, "reduction": (before - after) / before if before else 0.0}


def ablation(run: DrivingResult) -> dict[str, dict[str, dict[str, float]]]:
    """``{budget: {variant: ...}}``: each reasoning variant against imitation alone trained on the same share of
    the data, on the same closed-loop episodes with the same seeds: failure rates, the relative reduction, and
    McNemar's exact test pooled over seeds, scenarios and episodes."""
    recipe, out = run.recipe, {}
    for budget in sorted(recipe.budgets):
        base = model_name(recipe.backbone, "imitation", budget)
        if base not in run.results or not run.episodes:
            continue
        row = {}
        for variant in (v for v in recipe.variants if v != "imitation"):
            name = model_name(recipe.backbone, variant, budget)
            if name in run.results:
                row[variant] = paired_change(failures(run, base), failures(run, name))
        out[f"{round(100 * budget)}%"] = row
    return out


def ablation_by_scenario(run: DrivingResult) -> dict[str, Any]:
    """The smallest budget's ablation split by scenario, where a large gain in one scenario can no longer drown in
    the others: ``{"budget", "tests": {variant: {scenario: test}}}``, each McNemar test with ``p_holm``, its p-value
    Holm-adjusted over every variant x scenario cell (many tests are read together). Empty without an ablation."""
    recipe = run.recipe
    # The budget reasoning_goal judges: the smallest one where imitation alone was trained.
    trained = [b for b in sorted(recipe.budgets) if model_name(recipe.backbone, "imitation", b) in run.results]
    if not trained or not run.episodes:
        return {}
    budget = trained[0]
    base = model_name(recipe.backbone, "imitation", budget)
    variants = [v for v in recipe.variants if v != "imitation" and model_name(recipe.backbone, v, budget) in
                run.results]  # fmt: skip
    if not variants:
        return {}
    imitation = {s: failures(run, base, [s]) for s in recipe.scenarios}
    tests = {v: {s: paired_change(imitation[s], failures(run, model_name(recipe.backbone, v, budget), [s]))
                 for s in recipe.scenarios} for v in variants}  # fmt: skip
    add_holm([test for per in tests.values() for test in per.values()])
    return {"budget": f"{round(100 * budget)}%", "tests": tests}


def scenario_gains(split: dict[str, Any]) -> list[str]:
    """``variant / scenario`` cells of :func:`ablation_by_scenario` with >= 30% fewer failures than imitation alone
    and Holm-adjusted p < 0.05."""
    return [f"{v} / {s}" for v, per in split.get("tests", {}).items() for s, t in per.items()
            if t["reduction"] >= REASONING_GAIN and t["p_holm"] < ALPHA]  # fmt: skip


def reasoning_goal(table: dict[str, dict[str, dict[str, float]]]) -> dict[str, Any]:
    """Met when, at the smallest data budget, some reasoning variant fails at least 30% less often than imitation
    alone with McNemar's p < 0.05."""
    if not table:
        return {"reasoning_gain_met": False, "reasoning_gain_best": None}
    low = next(iter(table.values()))
    best = max(low.items(), key=lambda item: item[1]["reduction"], default=None)
    met = any(r["reduction"] >= REASONING_GAIN and r["p_value"] < ALPHA for r in low.values())
    return {"reasoning_gain_met": met, "reasoning_gain_best": None if best is None else
            {"budget": next(iter(table)), "variant": best[0], **best[1]}}  # fmt: skip


def goals(run: DrivingResult) -> dict[str, Any]:
    """The imitation planner vs the expert; collisions of the shipped variant vs imitation alone, and its success
    rate vs every constant-action baseline (success, not collisions: constant SLOWER never crashes, it crawls);
    planners that drove like a constant policy; latency; size."""
    recipe, scenarios, results = run.recipe, list(run.recipe.scenarios), run.results
    base, shipped = f"{recipe.backbone}-imitation", f"{recipe.backbone}-{SHIPPED}"
    out: dict[str, Any] = imitation_goals(run, GATE, prefix="gate") | imitation_goals(run, base)
    out["constant_lookalikes"] = dict(sorted(run.lookalikes.items()))
    out["ablation"] = ablation(run)
    out |= reasoning_goal(out["ablation"])
    # Reported beside the pooled verdict, which stays the goal's: a scenario's gain is a finding, not the goal.
    out["ablation_by_scenario"] = ablation_by_scenario(run)
    out["reasoning_gain_scenarios"] = scenario_gains(out["ablation_by_scenario"])
    if base in results and shipped in results:
        before, after = (overall(results[n], "collision_rate", scenarios) for n in (base, shipped))
        out["collision_reduction"] = None if before == 0 else (before - after) / before
        out["collision_reduction_met"] = before > 0 and (before - after) / before >= 0.30
        success = overall(results[shipped], "success_rate", scenarios)
        baselines = [overall(e, "success_rate", scenarios) for e in results.values() if e.role == "baseline"]
        out["beats_constant_baselines"] = all(success > b for b in baselines)
    row = latency(run.bench, shipped)
    out["p99_ms"] = None if row is None else row["p99_ms"]
    out["p99_met"] = row is not None and row["p99_ms"] <= P99_MS
    out["params"] = results[shipped].params if shipped in results else None
    out["params_met"] = out["params"] is not None and out["params"] <= MAX_PARAMS
    return out


def _yes(met: bool) -> str:
    return "met" if met else "**not met**"


def imitation_goal_lines(name: str, g: dict[str, Any], prefix: str = "imitation") -> list[str]:
    if f"{prefix}_accuracy" not in g:
        return []
    majority = g.get(f"{prefix}_majority_accuracy", {})
    accuracy = ", ".join(f"{s} {v:.3f} (goal ≥ {OPEN_LOOP_GOAL[s]:.2f}" + _majority_words(majority.get(s), v) + ")"
                         for s, v in g[f"{prefix}_accuracy"].items() if v is not None)  # fmt: skip
    progress = ", ".join(f"{s} {v:.2f}" for s, v in g[f"{prefix}_progress"].items())
    return [
        f"- `{name}` open-loop action accuracy: {accuracy or 'n/a'}: {_yes(g[f'{prefix}_accuracy_met'])}.",
        f"- `{name}` closed loop, collisions ≤ {MAX_COLLISIONS_VS_EXPERT:g}x the expert's in every scenario: "
        f"{_yes(g[f'{prefix}_collisions_met'])}; progress ≥ {MIN_PROGRESS:.0%} of the expert's in every scenario "
        f"({progress}): {_yes(g[f'{prefix}_progress_met'])}.",
    ]


def _majority_words(majority: float | None, accuracy: float) -> str:
    """'; majority class 0.883', flagged when the policy does not beat it."""
    if majority is None:
        return ""
    return f"; majority class {majority:.3f}" + ("" if accuracy > majority else ": **no better than it**")


def reasoning_goal_line(g: dict[str, Any]) -> str:
    best = g.get("reasoning_gain_best")
    if best is None:
        return f"- Reasoning losses: no ablation in this run: {_yes(False)}."
    return (f"- Reasoning losses, at the smallest data budget ({best['budget']}): best `{best['variant']}` fails in "
            f"{best['failure_rate_b']:.3f} of the episodes vs {best['failure_rate_a']:.3f} for imitation alone "
            f"({fewer_words(best['reduction'])}, McNemar p = {best['p_value']:.3g}); goal ≥ "
            f"{100 * REASONING_GAIN:.0f}% fewer with p < {ALPHA:g}: {_yes(g['reasoning_gain_met'])}.")  # fmt: skip


def scenario_gain_lines(g: dict[str, Any]) -> list[str]:
    split = g.get("ablation_by_scenario") or {}
    if not split:
        return []
    count = sum(len(per) for per in split["tests"].values())
    found = ", ".join(f"`{cell}`" for cell in g["reasoning_gain_scenarios"]) or "none"
    return [f"- Scenario by scenario at {split['budget']} (failures, McNemar Holm-adjusted over {count} tests; a "
            f"finding beside the pooled goal above, not the goal): ≥ {100 * REASONING_GAIN:.0f}% fewer with adjusted "
            f"p < {ALPHA:g} in {found}."]  # fmt: skip


def scenario_ablation_lines(split: dict[str, Any]) -> list[str]:
    """The smallest budget's ablation table, one column per scenario (:func:`ablation_by_scenario`)."""
    if not split:
        return []
    scenarios = list(next(iter(split["tests"].values())))
    lines = [f"### By scenario, at {split['budget']} of the data", "",
             "The same pairs split by scenario. Cell: failure rate (imitation's → the variant's), relative change, "
             "McNemar's exact p and the p Holm-adjusted over every cell of this table.", "",
             "| variant | " + " | ".join(scenarios) + " |", "|---|" + "---|" * len(scenarios)]  # fmt: skip
    for variant, per in split["tests"].items():
        cells = [f"{t['failure_rate_a']:.3f} → {t['failure_rate_b']:.3f} ({-100 * t['reduction']:+.0f}%, "
                 f"p = {t['p_value']:.2g}, Holm {t['p_holm']:.2g})" for t in per.values()]  # fmt: skip
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def ablation_lines(table: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """Failure rate (a crash, or under 90% of the expert's distance) of each variant next to imitation alone at the
    same data budget, pooled over seeds, scenarios and episodes, with McNemar's exact test."""
    if not table:
        return []
    budgets = list(table)
    lines = ["## Reasoning-loss ablation (closed loop, failures)", "",
             "Each reasoning variant against imitation alone trained on the same share of the training episodes, on "
             "the same closed-loop episodes with the same training seeds. Cell: failure rate (imitation's → the "
             "variant's), relative change, McNemar's exact p over the paired episodes; – : the variant was not "
             "trained at that budget (above `ablate_up_to` only imitation and all train).", "",
             "| variant | " + " | ".join(budgets) + " |", "|---|" + "---|" * len(budgets)]  # fmt: skip
    variants = sorted({v for row in table.values() for v in row}, key=list(VARIANTS).index)
    for variant in variants:
        cells = []
        for budget in budgets:
            r = table[budget].get(variant)
            cells.append("–" if r is None else f"{r['failure_rate_a']:.3f} → {r['failure_rate_b']:.3f} "
                         f"({-100 * r['reduction']:+.0f}%, p = {r['p_value']:.2g})")  # fmt: skip
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def shift_lines(run: DrivingResult) -> list[str]:
    """Collision and success rates under distribution shift, next to the scenario the shifted ones vary."""
    shifts = list(run.recipe.shift_scenarios)
    if not shifts:
        return []
    columns = sorted({sim.SCENARIOS[s].kind for s in shifts}) + shifts
    trained = ", ".join(run.recipe.scenarios)
    lines = ["## Closed loop under distribution shift", "",
             f"Trained on {trained} only; the shifted scenarios are driven, never trained on (highway-dense: traffic "
             "density 1.5 instead of 1; highway-4lanes: four lanes instead of three).", ""]  # fmt: skip
    for title, metric in (("collision rate", "collision_rate"), ("success rate", "success_rate")):
        lines += [f"### {title}", "", *split_columns_table(run.results, columns, metric, 3), ""]
    return lines


def lookalike_lines(lookalikes: dict[str, list[str]]) -> list[str]:
    """A flag for every planner (and seed) that drove exactly like a constant policy on every test episode."""
    if not lookalikes:
        return ["- No planner drove exactly like a constant policy (every seed, every scenario): met."]
    return [f"- **`{key.replace('|', '` seed ')} drove exactly like {' and '.join(same)} in every closed-loop "
            "episode: it never left its default.**" for key, same in lookalikes.items()]  # fmt: skip


def write_report(run: DrivingResult, seconds: float) -> dict[str, Any]:
    recipe, out, scenarios = run.recipe, run.recipe.report_path, list(run.recipe.scenarios)
    out.mkdir(parents=True, exist_ok=True)
    doc = summary(run, seconds)
    split_bars(
        run.results,
        scenarios,
        "collision_rate",
        out / "driving_collisions.png",
        "Closed-loop collision rate (mean ± std over training seeds)",
    )
    samples = Path(recipe.output_dir) / "samples.png"
    if samples.exists():
        shutil.copy(samples, out / "driving_samples.png")
    g, reduction = doc["goals"], doc["goals"].get("collision_reduction")
    shipped = f"`{recipe.backbone}-{SHIPPED}`"
    lines = header("Driving: distilling a teacher's reasoning into a real-time pixel planner", doc, seconds,
                   "driving.json") + [
        "## Setup",
        f"- highway-env scenarios {', '.join(scenarios)}; {camera_words(recipe)}; one decision per second.",
        f"- Teacher: `{recipe.teacher}` (the privileged expert reads the full simulator state and writes perception / "
        "prediction / planning rationales and one description per visible agent). " + encoder_words(run.text_encoder),
        f"- Expert (labels every frame): {expert_words(recipe.expert)}.",
        f"- Data: {recipe.train_episodes} training and {recipe.val_episodes} validation expert episodes per scenario"
        f"{scale_words(recipe)} ({run.train_frames} and {run.val_frames} frames{dagger_words(recipe)}).",
        f"- Student: `pixel-planner` ({recipe.backbone} backbone), trained {recipe.epochs} epochs per variant and "
        f"seed ({recipe.budget_epochs} on a share of the expert's frames: few steps an epoch; seeds {recipe.seeds})"
        f"{share_words(recipe)}, "
        + precision_words(doc["training_precision"]) + ". "
        "Variants add one reasoning loss to imitation "
        f"(CE + {recipe.waypoint_weight:g} x waypoint L2), or all five. Loss weights: "
        + ", ".join(f"{t} {w:g}" for t, w in recipe.weights.items()) + ".",
        f"- Closed loop: the same {recipe.eval_episodes} seeded episodes per scenario (never seen in training) are "
        "driven by the expert, by constant-action baselines (IDLE, SLOWER, and the majority class: the expert's most "
        "frequent training action) and by every trained planner (each training seed drives all of them). Mean ± std "
        "are over the training seeds.",
        "",
        "## Goals",
        "Gate (issue 14): an MLP cloned from the privileged state the expert reads, no pixels"
        + (" (with the nearest car ahead and behind in each lane beside the ego)" if recipe.gate_lane_slots else "")
        + gate_dagger_words(recipe)
        + ". If it misses these goals the expert's labels are the problem, not the camera.",
        *imitation_goal_lines(GATE, g, prefix="gate"),
        "",
        "Planners:",
        *imitation_goal_lines(f"{recipe.backbone}-imitation", g),
        *lookalike_lines(g["constant_lookalikes"]),
        f"- Collisions, {shipped} vs `{recipe.backbone}-imitation` (mean over scenarios): "
        + (f"{fewer_words(reduction)} (goal ≥ 30% fewer): {_yes(g['collision_reduction_met'])}"
           if reduction is not None else "n/a") + ".",
        reasoning_goal_line(g),
        *scenario_gain_lines(g),
        f"- {shipped} succeeds more often than every constant-action baseline (no crash and ≥ 90% of the expert's "
        "distance, mean over scenarios): "
        f"{_yes(g.get('beats_constant_baselines', False))}.",
        f"- Latency p99 at batch 1 (ONNX, one CPU thread): {number(g['p99_ms'])} ms (goal ≤ {P99_MS:g} ms): "
        f"{_yes(g['p99_met'])}.",
        f"- Parameters: {g['params']:,} (goal ≤ {MAX_PARAMS / 1e6:g}M): {_yes(g['params_met'])}." if g.get("params")
        else "",
        "",
    ]  # fmt: skip
    lines += ablation_lines(g["ablation"]) + scenario_ablation_lines(g["ablation_by_scenario"]) + shift_lines(run)
    titles = [("collision rate", "collision_rate", 3), ("success rate (no crash, ≥ 90% of the expert's distance)",
              "success_rate", 3), ("collisions per km", "collisions_per_km", 2),
              ("progress (distance / the expert's)", "progress", 2), ("mean speed (m/s)", "mean_speed", 1),
              ("episode return", "episode_return", 2), ("off-road rate", "offroad_rate", 3)]  # fmt: skip
    for title, metric, digits in titles:
        lines += [f"## Closed loop: {title}", "", *split_columns_table(run.results, scenarios, metric, digits), ""]
        if metric == "collision_rate":
            lines += ["![collision rate](driving_collisions.png)", ""]
    lines += [
        "## Open loop (validation episodes)", "",
        "Rationale retrieval: the reasoning head's vector picks the nearest of the validation set's distinct planning "
        "rationales; it is right when that is the frame's own. Only variants that train the reasoning head "
        "(consistency, all) can do better than chance.", "",
        *metrics_table(run.results, "open_loop", OPEN, primary="action_accuracy"), "",
        "## Latency (ms, p50 / p99; batch 1, CPU)", "",
        *latency_table(list(run.exports), run.bench, [("ONNX fp32", "onnxruntime", "fp32", 1),
                                                      ("PyTorch eager", "torch", "", 1)]), "",
        "## Sample frames and the teacher's rationales", "", "![samples](driving_samples.png)", "",
        *[f"{i + 1}. **{s['scenario']}**: {s['perception']} {s['prediction']} *{s['planning']}*"
          for i, s in enumerate(run.samples)], "",
        "Variants: " + ", ".join(f"`{k}` = {' + '.join(v) or 'imitation only'}" for k, v in VARIANTS.items()
                                 if k in recipe.variants) + ".",
    ]  # fmt: skip
    write_markdown(out / "driving.md", lines)
    write_summary(out / "driving.json", doc)
    print(f"[driving] report: {out / 'driving.md'}")
    return doc


def scale_words(recipe: Any) -> str:
    """The scenarios ``episode_scale`` gives more episodes, in words ('' without any)."""
    from domains.driving.recipe import scaled_episodes

    more = scaled_episodes(recipe, recipe.train_episodes)
    if not more:
        return ""
    listed = ", ".join(f"{n} of {s}" for s, n in more)
    return (
        f", except {listed} (`episode_scale`: the same multiple of each DAgger round's episodes; the extra "
        "episodes join the 100% budget only)"
    )


def fewer_words(reduction: float) -> str:
    """A relative reduction in words: '38% fewer', '20% more' (a negative reduction is an increase)."""
    return f"{100 * reduction:.0f}% fewer" if reduction >= 0 else f"{-100 * reduction:.0f}% more"


def share_words(recipe: Any) -> str:
    """How much of a scenario one epoch draws (``epoch_share``), in words ('' without any)."""
    if not recipe.epoch_share:
        return ""
    listed = ", ".join(f"{share:.0%} of {s}'s" for s, share in sorted(recipe.epoch_share.items()))
    return f"; an epoch on all the frames draws {listed} frames, afresh each epoch (`epoch_share`)"


def expert_shares(rounds: int) -> str:
    """The expert's share of each DAgger round's steps, as the report lists them ("0.50, 0.00")."""
    from domains.driving.dagger import betas

    return ", ".join(f"{b:.2f}" for b in betas(rounds))


def gate_dagger_words(recipe: Any) -> str:
    """The gate's own DAgger rounds, in words ('' without any)."""
    if not recipe.gate_dagger_rounds:
        return ""
    from domains.driving.recipe import scaled_episodes

    shares = expert_shares(recipe.gate_dagger_rounds)
    more = "".join(f", {n} of {s}" for s, n in scaled_episodes(recipe, recipe.dagger_episodes))
    return (f", then retrained after each of {recipe.gate_dagger_rounds} DAgger rounds in which it drives "
            f"{recipe.dagger_episodes} episodes per scenario{more} (the expert taking each step with probability "
            f"{shares}) and the expert labels every state it visits")  # fmt: skip


def dagger_words(recipe: Any) -> str:
    """The DAgger rounds behind the training frames, in words ('' without any)."""
    if not recipe.dagger_rounds:
        return ""
    shares = expert_shares(recipe.dagger_rounds)
    return (f"; the training frames include {recipe.dagger_rounds} DAgger rounds of {recipe.dagger_episodes} episodes "
            f"per scenario driven by that round's imitation planner, the expert taking each step with probability "
            f"{shares}, and labelled by the expert (they join the 100% budget only: the smaller budgets are "
            f"shares of the expert's episodes alone)")  # fmt: skip


def encoder_words(check: dict[str, Any]) -> str:
    """Which encoder embedded the rationales, and what adapting it on BDD-X did to BDD-X retrieval."""
    if not check:
        return "Texts are embedded with MiniLM-L6."
    before, after = check["retrieval_at_1_before"], check["retrieval_at_1_after"]
    return (f"Texts are embedded with MiniLM-L6 adapted on {check['train_pairs']:,} BDD-X (action, justification) "
            f"pairs for {check['steps']} steps: action -> justification retrieval R@1 on {check['test_pairs']} BDD-X "
            f"test pairs {before:.3f} before, {after:.3f} after.")  # fmt: skip


def precision_words(precision: str) -> str:
    """How the planners were trained, in words (the recipe's ``mixed_precision=auto`` picks it per machine)."""
    if precision == "bf16":
        return "in bf16 autocast (weights kept in fp32)"
    return "in fp32"


def expert_words(config: Any) -> str:
    """The expert's margins and what it assumes of other cars, in words (an ``ExpertConfig``)."""
    routes = {
        "known": "their planned routes, read from the simulator (privileged: `expert.other_routes=known`)",
        "any": "every road they could take next (what a camera could know: `expert.other_routes=any`)",
    }
    return (f"keeps lane and speed with {config.keep_margin:g} m of clearance over 4 s, changes lanes with "
            f"{config.change_margin:g} m, speeds up with {config.speed_up_margin:g} m, and predicts the other cars "
            f"along {routes[config.other_routes]}")  # fmt: skip


def camera_words(recipe: Any) -> str:
    """What the planner sees, in words: '4 stacked 128x64 RGB frames (camera `ego`, 4-pixel scene tokens)'."""
    height, width = sim.camera(recipe.camera).shape
    view = f"camera `{recipe.camera}`, {recipe.token_stride}-pixel scene tokens"
    return f"{recipe.frames} stacked {width}x{height} RGB frames ({view})"


def write_model_card(run: DrivingResult, doc: dict[str, Any]) -> Path:
    recipe, name = run.recipe, f"{run.recipe.backbone}-{SHIPPED}"
    return model_card(recipe.model_card_path, f"Driving planner `{name}`", doc, recipe.report_path / "driving.md",
                      "collision_rate", {
        "What it is": [
            "A pixel-to-plan student for highway-env (highway, merge, intersection, roundabout): "
            f"{camera_words(recipe)} and the ego speed (m/s) in; action logits over LANE_LEFT, IDLE, LANE_RIGHT, "
            "FASTER, SLOWER, "
            "three waypoints (1/2/3 s, metres, ego frame) and a 384-d reasoning vector (nearest MiniLM embedding of "
            "the teacher's planning rationales) out. The table above gives each model's closed-loop collision rate "
            "per scenario (the expert and the constant-action baseline on the same episodes)."],
        "Intended use": [
            "Research on reasoning distillation in simulation. Not for real vehicles: it has only seen highway-env's "
            "rendering, and it collides in closed loop."],
        "Data": ["Episodes generated with highway-env (MIT licence) and the pack's privileged expert, which "
                 f"{expert_words(recipe.expert)}."],
        "Training": [f"Imitation plus the five reasoning losses, {recipe.epochs} epochs, "
                     f"{precision_words(doc['training_precision'])}."],
    })  # fmt: skip
