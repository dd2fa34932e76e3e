"""The driving report: ``driving.md`` + ``driving.json`` (the run summary) + plots, and the model card.

Everything here is rendered from the run's ``results.json``, so a report can be rebuilt without rerunning.
"""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path
from typing import Any

from domains.driving.recipe import VARIANTS, DrivingRecipe
from domains.driving.terms import distils_from_teacher
from suite.results import invoked_command, model_entry, write_summary

CLOSED = ("collision_rate", "mean_speed", "episode_return", "offroad_rate")
OPEN = ("action_accuracy", "waypoint_l2_1s", "waypoint_l2_2s", "waypoint_l2_3s", "rationale_retrieval")
SHIPPED = "all"  # the variant the model card describes


def _mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def per_model(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """model name -> {"seeds": [...], "metrics": {split: {metric: mean}}, "std": {split: {metric: std}}}."""
    grouped: dict[str, dict[int, dict[str, dict[str, float]]]] = {}
    for key, per_scenario in results["closed_loop"].items():
        name, seed = key.split("|")
        grouped.setdefault(name, {})[int(seed)] = dict(per_scenario)
    for key, metrics in results["open_loop"].items():
        name, seed = key.split("|")
        grouped[name][int(seed)]["open_loop"] = metrics
    table = {}
    for name, seeds in grouped.items():
        splits = next(iter(seeds.values())).keys()
        mean, std = {}, {}
        for split in splits:
            keys = next(iter(seeds.values()))[split].keys()
            stats = {k: _mean_std([seeds[s][split][k] for s in seeds]) for k in keys}
            mean[split] = {k: v[0] for k, v in stats.items()}
            std[split] = {k: v[1] for k, v in stats.items()}
        table[name] = {"seeds": sorted(seeds), "metrics": mean, "std": std}
    return table


def overall(table: dict[str, Any], name: str, metric: str, scenarios: list[str]) -> float:
    return statistics.fmean(table[name]["metrics"][s][metric] for s in scenarios)


def latency(results: dict[str, Any], name: str, runtime: str = "onnxruntime") -> dict[str, float] | None:
    for row in results["bench"].get("results", []):
        if row["model"] == name and row["runtime"] == runtime and row["batch_size"] == 1:
            return row
    return None


def summary(recipe: DrivingRecipe, results: dict[str, Any], table: dict[str, Any], seconds: float) -> dict[str, Any]:
    models = {}
    for name, entry in table.items():
        params = 0 if name == "expert" else results["params"][name]
        kd = name != "expert" and distils_from_teacher(VARIANTS[name.rsplit("-", 1)[1]])
        models[name] = model_entry(params, kd, latency(results, name), entry["metrics"])
        models[name]["metrics_std"] = entry["std"]
        models[name]["seeds"] = entry["seeds"]
    return {
        "command": invoked_command(),
        "machine": results["bench"].get("machine") or _machine(),
        "teacher": "expert",
        "models": models,
        "teacher_kind": recipe.teacher,
        "frames": {"train": results["train_frames"], "val": results["val_frames"]},
        "closed_loop_episodes_per_scenario": recipe.eval_episodes,
        "seconds": round(seconds, 1),
        "goals": goals(recipe, results, table),
    }


def _machine() -> dict[str, Any]:
    from suite.bench.machine import machine_info

    return machine_info()


def goals(recipe: DrivingRecipe, results: dict[str, Any], table: dict[str, Any]) -> dict[str, Any]:
    scenarios = list(recipe.scenarios)
    base, aligned = f"{recipe.backbone}-imitation", f"{recipe.backbone}-{SHIPPED}"
    out: dict[str, Any] = {}
    if base in table and aligned in table:
        before, after = (overall(table, n, "collision_rate", scenarios) for n in (base, aligned))
        out["collision_reduction"] = None if before == 0 else (before - after) / before
        out["collision_reduction_met"] = before > 0 and (before - after) / before >= 0.30
    row = latency(results, aligned)
    out["p99_ms"] = None if row is None else row["p99_ms"]
    out["p99_met"] = row is not None and row["p99_ms"] <= 10.0
    out["params"] = results["params"].get(aligned)
    out["params_met"] = out["params"] is not None and out["params"] <= 5_000_000
    return out


# -- markdown ----------------------------------------------------------------------------------------------------


def _f(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def _pm(entry: dict[str, Any], split: str, metric: str, digits: int = 3) -> str:
    mean, std = entry["metrics"][split][metric], entry["std"][split][metric]
    if len(entry["seeds"]) < 2:
        return _f(mean, digits)
    return f"{_f(mean, digits)} ± {_f(std, digits)}"


def closed_table(table: dict[str, Any], scenarios: list[str], metric: str, digits: int = 3) -> list[str]:
    lines = ["| model | seeds | " + " | ".join(scenarios) + " | mean |", "|---" * (len(scenarios) + 3) + "|"]
    for name, entry in table.items():
        cells = [_pm(entry, s, metric, digits) for s in scenarios]
        lines.append(
            f"| {name} | {len(entry['seeds'])} | "
            + " | ".join(cells)
            + f" | {_f(overall(table, name, metric, scenarios), digits)} |"
        )
    return lines


def open_table(table: dict[str, Any]) -> list[str]:
    lines = [
        "| model | action acc. | L2 @1 s (m) | L2 @2 s (m) | L2 @3 s (m) | rationale retrieval |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in table.items():
        if "open_loop" in entry["metrics"]:
            lines.append(f"| {name} | " + " | ".join(_pm(entry, "open_loop", m) for m in OPEN) + " |")
    return lines


def latency_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| model | params | ONNX fp32 p50 (ms) | ONNX fp32 p99 (ms) | PyTorch eager p50 (ms) |",
        "|---|---|---|---|---|",
    ]
    for name in results["exports"]:
        onnx, eager = latency(results, name), latency(results, name, "torch")
        lines.append(
            f"| {name} | {results['params'][name]:,} | {_f(onnx and onnx['p50_ms'])} | {_f(onnx and onnx['p99_ms'])} "
            f"| {_f(eager and eager['p50_ms'])} |"
        )
    return lines


def collision_plot(table: dict[str, Any], scenarios: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(table)
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(scenarios) + 0.4 * len(names)), 4))
    for i, name in enumerate(names):
        means = [table[name]["metrics"][s]["collision_rate"] for s in scenarios]
        stds = [table[name]["std"][s]["collision_rate"] for s in scenarios]
        x = np.arange(len(scenarios)) + i * width
        ax.bar(x, means, width, yerr=stds if len(table[name]["seeds"]) > 1 else None, label=name, capsize=2)
    ax.set_xticks(np.arange(len(scenarios)) + 0.4 - width / 2, scenarios)
    ax.set_ylabel("collision rate (episodes)")
    ax.set_title("Closed-loop collision rate (mean ± std over training seeds)")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _yes(met: bool) -> str:
    return "met" if met else "**not met**"


def write_report(recipe: DrivingRecipe, results: dict[str, Any], seconds: float) -> dict[str, Any]:
    out = recipe.report_path
    out.mkdir(parents=True, exist_ok=True)
    table = per_model(results)
    doc = summary(recipe, results, table, seconds)
    scenarios = list(recipe.scenarios)
    collision_plot(table, scenarios, out / "driving_collisions.png")
    samples = Path(recipe.output_dir) / "samples.png"
    if samples.exists():
        shutil.copy(samples, out / "driving_samples.png")
    g = doc["goals"]
    machine = doc["machine"]
    reduction = g.get("collision_reduction")
    lines = [
        "# Driving: distilling a teacher's reasoning into a real-time pixel planner",
        "",
        f"Command: `{doc['command']}` ({seconds / 60:.0f} min wall time).",
        f"Machine: {machine.get('cpu_model', 'unknown CPU')}, {machine.get('logical_cores', '?')} logical cores; "
        f"torch "
        f"{machine.get('torch', '?')}, onnxruntime {machine.get('onnxruntime', '?')}.",
        "",
        "## Setup",
        f"- highway-env scenarios {', '.join(scenarios)}; 64x64 RGB frames, two stacked; one decision per second.",
        f"- Teacher: `{recipe.teacher}` (the privileged expert reads the full simulator state and writes perception / "
        "prediction / planning rationales and one description per visible agent). Texts are embedded with MiniLM-L6.",
        f"- Data: {recipe.train_episodes} training and {recipe.val_episodes} validation expert episodes per scenario "
        f"({results['train_frames']} and {results['val_frames']} frames).",
        f"- Student: `pixel-planner` ({recipe.backbone} backbone), trained {recipe.epochs} epochs per variant and "
        "seed "
        f"(seeds {recipe.seeds}). Variants add one reasoning loss to imitation (CE + 0.1 x waypoint L2), or all five.",
        f"- Closed loop: the same {recipe.eval_episodes} seeded episodes per scenario (never seen in training) are "
        "driven by the expert and by every trained planner (each training seed drives all of them). Mean ± std are "
        "over the training seeds.",
        "",
        "## Goals",
        f"- Collisions, `{recipe.backbone}-all` vs `{recipe.backbone}-imitation` (mean over scenarios): "
        + (
            f"{100 * reduction:.0f}% fewer (goal ≥ 30%): {_yes(g['collision_reduction_met'])}"
            if reduction is not None
            else "n/a"
        )
        + ".",
        f"- Latency p99 at batch 1 (ONNX, CPU): {_f(g['p99_ms'])} ms (goal ≤ 10 ms): {_yes(g['p99_met'])}.",
        f"- Parameters: {g['params']:,} (goal ≤ 5M): {_yes(g['params_met'])}." if g.get("params") else "",
        "",
        "## Closed loop: collision rate",
        "",
        *closed_table(table, scenarios, "collision_rate"),
        "",
        "![collision rate](driving_collisions.png)",
        "",
        "## Closed loop: mean speed (m/s)",
        "",
        *closed_table(table, scenarios, "mean_speed", 1),
        "",
        "## Closed loop: episode return",
        "",
        *closed_table(table, scenarios, "episode_return", 2),
        "",
        "## Closed loop: off-road rate",
        "",
        *closed_table(table, scenarios, "offroad_rate"),
        "",
        "## Open loop (validation episodes)",
        "",
        "Rationale retrieval: the reasoning head's vector picks the nearest of the validation set's distinct planning "
        "rationales; it is right when that is the frame's own. Only variants that train the reasoning head "
        "(consistency, all) can do better than chance.",
        "",
        *open_table(table),
        "",
        "## Latency (batch 1, CPU)",
        "",
        *latency_table(results),
        "",
        "## Sample frames and the teacher's rationales",
        "",
        "![samples](driving_samples.png)",
        "",
        *[
            f"{i + 1}. **{s['scenario']}**: {s['perception']} {s['prediction']} *{s['planning']}*"
            for i, s in enumerate(results["samples"])
        ],
        "",
        "Variants: "
        + ", ".join(
            f"`{k}` = {' + '.join(v) or 'imitation only'}" for k, v in VARIANTS.items() if k in recipe.variants
        )
        + ".",
    ]
    (out / "driving.md").write_text("\n".join(line for line in lines if line is not None) + "\n")
    write_summary(out / "driving.json", doc)
    print(f"[driving] report: {out / 'driving.md'}")
    return doc


def write_model_card(recipe: DrivingRecipe, results: dict[str, Any], doc: dict[str, Any]) -> Path:
    name = f"{recipe.backbone}-{SHIPPED}"
    card = recipe.model_card_path
    card.mkdir(parents=True, exist_ok=True)
    entry = doc["models"].get(name, {})
    scen = list(recipe.scenarios)
    rows = (
        [
            f"| {s} | {_f(entry['metrics'][s]['collision_rate'])} "
            f"| {_f(doc['models']['expert']['metrics'][s]['collision_rate'])} |"
            for s in scen
        ]
        if entry
        else []
    )
    text = [
        f"# Driving planner `{name}`",
        "",
        "A pixel-to-plan student for highway-env (highway, merge, intersection, roundabout): two stacked 64x64 RGB "
        "frames and the ego speed (m/s) in; action logits over LANE_LEFT, IDLE, LANE_RIGHT, FASTER, SLOWER, three "
        "waypoints (1/2/3 s, metres, ego frame) and a 384-d reasoning vector (nearest MiniLM embedding of the "
        "teacher's planning rationales) out.",
        "",
        f"- Parameters: {entry.get('params', 'n/a')}; ONNX fp32 batch-1 CPU latency "
        f"p50 {_f(entry.get('latency_ms_p50'))} ms, "
        f"p99 {_f(entry.get('latency_ms_p99'))} ms ({doc['machine'].get('cpu_model', 'unknown CPU')}).",
        f"- Trained by `{doc['command']}`; report: docs/results/driving.md.",
        "- Intended use: research on reasoning distillation in simulation. Not for real vehicles: it has only seen "
        "highway-env's rendering, and it collides in closed loop (see below).",
        "",
        "| scenario | collision rate (student) | collision rate (expert) |",
        "|---|---|---|",
        *rows,
        "",
        "Data: episodes generated with highway-env (MIT licence) and the pack's privileged expert.",
    ]
    path = card / "README.md"
    path.write_text("\n".join(text) + "\n")
    return path
