"""Two driving runs' wider closed-loop checks side by side (e.g. runs made with two different experts).

    python -m benchmarks.driving_compare_runs A/more_episodes.json B/more_episodes.json --names A B
        [--out docs/results/driving_routes_any]

Each input is the ``more_episodes.json`` of ``benchmarks.driving_more_episodes`` on one run. For every policy both
hold (the expert, the state clone, the constant baselines, which drive alike in both if the episodes are the same,
the planners) and every scenario it prints the crashes, the collision rate, the mean speed (m/s, absolute: progress
and success are against each run's own expert, so they do not compare across runs with different experts) and
Fisher's exact test on the two crash counts, then each policy's crashes over all scenarios. Both checks drive the
same seeded episodes; where both kept each episode's outcome (checks made since they keep ``outcomes``), McNemar's
exact test pairs them too (training seed with training seed, episode with episode): it counts only the episodes
where one check crashed and the other did not, so episodes hard for both do not dilute it. Writes ``compare.md`` /
``compare.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.driving_more_episodes import outcome_flags, seed_counts

POLICIES = ("expert", "state-clone", "constant-IDLE", "constant-SLOWER", "tiny-imitation", "tiny-all")  # first


def shared_policies(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    """The policies both checks drove: the baselines and full-data planners in POLICIES' order, then any other
    (a data budget's planners, other variants) in the first check's order."""
    both = [p for p in first["results"] if p in second["results"]]
    return [p for p in POLICIES if p in both] + [p for p in both if p not in POLICIES]


def read_check(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise SystemExit(f"{path}: not a readable more_episodes.json ({error})") from error
    if "results" not in doc:
        raise SystemExit(f"{path}: no 'results': is it the more_episodes.json of benchmarks.driving_more_episodes?")
    return doc


def crash_test(a: dict[str, float], b: dict[str, float]) -> float:
    """Two-sided p-value of Fisher's exact test on (crashes, episodes without a crash) of ``a`` against ``b``."""
    from scipy.stats import fisher_exact

    table = [[a["crashes"], a["episodes"] - a["crashes"]], [b["crashes"], b["episodes"] - b["crashes"]]]
    return float(fisher_exact(table).pvalue)


def paired_crashes(first: dict[str, Any], second: dict[str, Any], policy: str, scenarios: list[str]) -> float | None:
    """McNemar's exact p on ``policy``'s crashes in the two checks, paired episode by episode and training seed by
    training seed over ``scenarios``; None where either check did not keep the outcomes of the same seeds."""
    from suite.eval.paired import mcnemar_exact

    kept = [{name: per for name, per in doc.get("outcomes", {}).items() if name.split("|")[0] == policy}
            for doc in (first, second)]  # fmt: skip
    if not kept[0] or sorted(kept[0]) != sorted(kept[1]):
        return None
    return mcnemar_exact(*(outcome_flags(k, sorted(k), scenarios, "c") for k in kept))["p_value"]


def compare(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """``{policy: {scenario: {...}, "all": {...}}}`` for the policies and scenarios both checks drove."""
    table: dict[str, Any] = {}
    for policy in shared_policies(first, second):
        a, b = first["results"][policy], second["results"][policy]
        rows = {}
        for scenario in [s for s in a if s in b]:
            rows[scenario] = {"crashes": [a[scenario]["crashes"], b[scenario]["crashes"]],
                              "episodes": [a[scenario]["episodes"], b[scenario]["episodes"]],
                              "collision_rate": [a[scenario]["collision_rate"], b[scenario]["collision_rate"]],
                              "mean_speed": [a[scenario]["mean_speed"], b[scenario]["mean_speed"]],
                              "p_value": crash_test(a[scenario], b[scenario]),
                              "paired_p_value": paired_crashes(first, second, policy, [scenario])}  # fmt: skip
            if "crashes_by_seed" in a[scenario] and "crashes_by_seed" in b[scenario]:  # checks since they kept them
                rows[scenario]["crashes_by_seed"] = [a[scenario]["crashes_by_seed"], b[scenario]["crashes_by_seed"]]
        totals = [{k: sum(row[k][i] for row in rows.values()) for k in ("crashes", "episodes")} for i in (0, 1)]
        rows["all"] = {"crashes": [t["crashes"] for t in totals], "episodes": [t["episodes"] for t in totals],
                       "p_value": crash_test(*totals),
                       "paired_p_value": paired_crashes(first, second, policy, [s for s in rows])}  # fmt: skip
        table[policy] = rows
    return table


def report(table: dict[str, Any], names: list[str], payload: dict[str, Any]) -> list[str]:
    a, b = names
    made = "; ".join(f"{name}: `{command}`" for name, command in zip(names, payload["commands"], strict=True))
    return [
        f"# Driving: {a} vs {b}, the wider closed-loop checks side by side", "",
        f"Produced by `{payload['command']}` (it reads the two checks' JSON; they were made by {made}). "
        "Machine-readable: [compare.json](compare.json).", "",
        "Both checks drive the same seeded episodes; a planner row pools its training seeds. p: Fisher's exact test "
        "on the pooled crash counts (unpaired; it also ignores how much the training seeds differ, shown in brackets "
        "where both checks kept each seed's crashes). paired p: McNemar's exact test on the same episodes and "
        "training seeds, where both checks kept every episode's outcome (– where not). Mean speed is absolute "
        "(progress and success are against each run's own expert, so they are not compared here).", "",
        f"| policy | scenario | crashes {a} / {b} | collision rate {a} / {b} | mean speed m/s {a} / {b} | p | "
        "paired p |",
        "|---|---|---|---|---|---|---|",
        *table_rows(table), "",
    ]  # fmt: skip


def table_rows(table: dict[str, Any]) -> list[str]:
    lines = []
    for policy, rows in table.items():
        for scenario, row in rows.items():
            by_seed = row.get("crashes_by_seed", [[], []])  # absent from checks made before they kept it
            crashes = " / ".join(
                f"{c:.0f} of {n:.0f}{seed_counts(seeds)}"
                for c, n, seeds in zip(row["crashes"], row["episodes"], by_seed, strict=True)
            )
            rate = " / ".join(f"{r:.3f}" for r in row.get("collision_rate", []))
            speed = " / ".join(f"{v:.2f}" for v in row.get("mean_speed", []))
            label = "**all four**" if scenario == "all" else scenario
            paired = row.get("paired_p_value")
            lines.append(f"| {policy} | {label} | {crashes} | {rate or '–'} | {speed or '–'} | "
                         f"{row['p_value']:.2g} | {'–' if paired is None else f'{paired:.2g}'} |")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checks", nargs=2, type=Path, help="two more_episodes.json files")
    parser.add_argument("--names", nargs=2, default=["A", "B"], help="what to call the two runs")
    parser.add_argument("--out", type=Path, default=Path("runs/driving_compare"))
    args = parser.parse_args(argv)
    first, second = (read_check(path) for path in args.checks)
    if first["episodes"] != second["episodes"] or first.get("offset") != second.get("offset"):
        raise SystemExit("the two checks drove different episodes (--episodes or the report's offset differ)")
    table = compare(first, second)
    command = "python -m benchmarks.driving_compare_runs " + " ".join(argv if argv is not None else sys.argv[1:])
    payload = {"command": command, "names": args.names,
               "inputs": [str(path) for path in args.checks], "commands": [first["command"], second["command"]],
               "comparison": table}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compare.json").write_text(json.dumps(payload, indent=2))
    (args.out / "compare.md").write_text("\n".join(report(table, args.names, payload)), encoding="utf-8")
    print(f"wrote {args.out / 'compare.md'}")


if __name__ == "__main__":
    main()
