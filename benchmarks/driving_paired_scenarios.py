"""Each reasoning variant against imitation alone, scenario by scenario, from a wider check's kept outcomes.

    python -m benchmarks.driving_paired_scenarios CHECK/more_episodes.json [--out DIR]

``CHECK/more_episodes.json`` is what ``benchmarks.driving_more_episodes`` wrote (since it keeps each episode's
outcome): nothing is driven again. The check's own paired table pools the four scenarios, where a large gain in one
can drown in the others; this splits it. For every variant and scenario: failures (a crash, or under 90% of the
expert's distance) and crashes against the imitation planners of the same budget, on the same episodes, training
seed by training seed, with McNemar's exact test. Many tests are read together (variants x scenarios x two kinds),
so each p-value is also given Holm-adjusted over the whole table (family-wise error <= 0.05 where the adjusted value
is below 0.05). Writes ``paired_scenarios.md`` / ``.json`` to ``--out`` (default: beside the check).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.driving_more_episodes import paired

KINDS = ("failures", "crashes")  # the two tests of driving_more_episodes.paired
GOAL = 0.30  # issue 14: >= 30% fewer than imitation alone


def read_check(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise SystemExit(f"{path}: not a readable more_episodes.json ({error})") from error
    if not doc.get("outcomes"):
        raise SystemExit(f"{path}: keeps no per-episode outcomes (a check made before they were kept); rerun it")
    return doc


def planner_groups(outcomes: dict[str, Any]) -> tuple[str, list[str]]:
    """The imitation planners' name and the other planners' names (``name|seed`` keys grouped by name)."""
    names = list(dict.fromkeys(key.split("|")[0] for key in outcomes if "|" in key))
    base = [n for n in names if "-imitation" in n]
    if len(base) != 1:
        raise SystemExit(f"expected one imitation planner among {names}, found {base or 'none'}")
    return base[0], [n for n in names if n != base[0]]


def paired_by_scenario(doc: dict[str, Any]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """``{variant: {scenario: {kind: test}}}``: McNemar per variant, scenario and kind, plus ``p_holm`` over all."""
    from suite.eval.paired import add_holm

    kept, seeds = doc["outcomes"], doc["seeds"]
    base, variants = planner_groups(kept)
    scenarios = list(kept[f"{base}|{seeds[0]}"])
    table = {v: {s: paired(kept, base, v, seeds, [s]) for s in scenarios} for v in variants}  # one scenario at a time
    tests = [test for per in table.values() for kinds in per.values() for test in kinds.values()]
    add_holm(tests)
    return {"base": base, "scenarios": scenarios, "tests": table}


def goal_cells(result: dict[str, Any]) -> list[str]:
    """``variant / scenario / kind`` cells with >= 30% fewer than imitation alone and Holm-adjusted p < 0.05."""
    return [f"{v} / {s} / {kind}" for v, per in result["tests"].items() for s, kinds in per.items()
            for kind, t in kinds.items() if t["reduction"] >= GOAL and t["p_holm"] < 0.05]  # fmt: skip


def cell(test: dict[str, float]) -> str:
    change = f"{test['failure_rate_a']:.3f} → {test['failure_rate_b']:.3f} ({-test['reduction']:+.0%}"
    return f"{change}, {test['only_a']} vs {test['only_b']}, p = {test['p_value']:.2g}, Holm {test['p_holm']:.2g})"


def markdown(result: dict[str, Any], source: Path, command: str) -> list[str]:
    base, scenarios = result["base"], result["scenarios"]
    lines = [f"# Driving: each reasoning variant against {base}, scenario by scenario", "",
             f"Produced by `{command}` from [{source.name}]({source.name})'s kept outcomes (nothing is driven "
             "again). Cell: rate of the imitation planners → the variant's, the change, the episodes where only "
             "one of the two failed (imitation vs variant), McNemar's exact p and the p Holm-adjusted over every "
             "cell of both tables.", ""]  # fmt: skip
    for kind in KINDS:
        lines += [f"## {kind.capitalize()}", "", "| variant | " + " | ".join(scenarios) + " |",
                  "|---" * (len(scenarios) + 1) + "|"]  # fmt: skip
        lines += [f"| {v} | " + " | ".join(cell(per[s][kind]) for s in scenarios) + " |"
                  for v, per in result["tests"].items()]  # fmt: skip
        lines.append("")
    met = goal_cells(result)
    lines.append(f"At least {GOAL:.0%} fewer with Holm-adjusted p < 0.05: " + (", ".join(met) if met else "none"))
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("check", type=Path, help="a more_episodes.json that keeps outcomes")
    parser.add_argument("--out", type=Path, help="where paired_scenarios.md/.json go (default: the check's folder)")
    args = parser.parse_args(argv)
    result = paired_by_scenario(read_check(args.check))
    out = args.out or args.check.parent
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.driving_paired_scenarios " + " ".join(argv if argv is not None else sys.argv[1:])
    (out / "paired_scenarios.json").write_text(json.dumps({"command": command, **result, "goal": goal_cells(result)},
                                                          indent=2))  # fmt: skip
    (out / "paired_scenarios.md").write_text("\n".join(markdown(result, args.check, command)) + "\n")
    print(f"wrote {out / 'paired_scenarios.md'}")


if __name__ == "__main__":
    main()
