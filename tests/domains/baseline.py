"""Quick-profile results recorded before the packs moved onto the shared run stages (tests/fixtures/quick_baseline):
the slow tests compare a fresh quick run against them, so a refactor cannot move the numbers beyond seed noise."""

from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "quick_baseline"
# Stated tolerances: the same seeds on the same kind of CPU reproduce the numbers exactly; another CPU's kernels can
# flip a few borderline predictions (200 examples per split: 0.02 = 4 of them) or one closed-loop episode in 4
# (0.25 per scenario, 0.125 on the mean of 4 scenarios).
TOLERANCE = {"accuracy": 0.02, "macro_f1": 0.03, "action_accuracy": 0.02, "waypoint_l2_3s": 0.05, "mean_speed": 0.05}


def compare_with_baseline(pack: str, models: dict) -> list[str]:
    """Every difference beyond tolerance between ``models`` (a run summary's) and the recorded baseline."""
    baseline = json.loads((FIXTURES / f"{pack}.json").read_text())["models"]
    problems = [f"{name}: missing" for name in baseline if name not in models]
    for name, splits in baseline.items():
        if name not in models:
            continue
        for split, metrics in splits.items():
            for metric, expected in metrics.items():
                actual = models[name]["metrics"][split][metric]
                if metric == "collision_rate":
                    continue  # compared on the mean over scenarios below
                relative = metric in ("waypoint_l2_3s", "mean_speed")
                allowed = TOLERANCE[metric] * (abs(expected) if relative else 1)
                if abs(actual - expected) > allowed:
                    problems.append(
                        f"{name} {split} {metric}: {actual:.4f} vs {expected:.4f} (allowed ±{allowed:.4f})"
                    )
        rates = [(models[name]["metrics"][s]["collision_rate"], m["collision_rate"])
                 for s, m in splits.items() if "collision_rate" in m]  # fmt: skip
        if rates and abs(sum(a - e for a, e in rates) / len(rates)) > 0.125:
            problems.append(f"{name}: mean collision rate moved by more than 0.125")
    return problems
