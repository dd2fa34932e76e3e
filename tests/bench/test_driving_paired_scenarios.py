"""benchmarks.driving_paired_scenarios: the check's paired test split by scenario, with Holm's adjustment."""

from __future__ import annotations

import json

import pytest

from benchmarks.driving_paired_scenarios import goal_cells, main, paired_by_scenario

EPISODES = 60


def check(outcomes: dict[str, dict[str, str]], seeds: tuple[int, ...] = (0, 1)) -> dict:
    """A more_episodes.json with kept outcomes: every seed of a planner drives alike (``name`` -> scenario -> str)."""
    kept = {"expert": {s: "." * EPISODES for s in next(iter(outcomes.values()))}}
    kept |= {f"{name}|{seed}": per for name, per in outcomes.items() for seed in seeds}
    return {"command": "python -m benchmarks.driving_more_episodes ...", "seeds": list(seeds), "outcomes": kept}


def test_a_gain_in_one_scenario_shows_there_and_survives_holm_only_when_large():
    doc = check({
        "tiny-imitation-10pct": {"merge": "c" * 30 + "." * 30, "highway": "s" * 12 + "." * 48},
        "tiny-consistency-10pct": {"merge": "c" * 5 + "." * 55, "highway": "s" * 10 + "." * 50},
        "tiny-attention-10pct": {"merge": "c" * 30 + "." * 30, "highway": "c" * 12 + "." * 48},
    })  # fmt: skip
    result = paired_by_scenario(doc)
    assert result["base"] == "tiny-imitation-10pct" and result["scenarios"] == ["merge", "highway"]
    merge = result["tests"]["tiny-consistency-10pct"]["merge"]["crashes"]
    assert (merge["only_a"], merge["only_b"], merge["cases"]) == (50, 0, 120)  # two seeds, paired episode by episode
    assert merge["reduction"] == pytest.approx(25 / 30)
    assert merge["p_holm"] >= merge["p_value"]  # eight tests in the table
    short = result["tests"]["tiny-consistency-10pct"]["highway"]
    assert short["failures"]["only_a"] == 4 and short["crashes"]["only_a"] == 0  # short of distance: a failure only
    attention = result["tests"]["tiny-attention-10pct"]["highway"]
    assert attention["failures"]["p_value"] == 1.0 and attention["crashes"]["only_b"] == 24  # same failures, crashes
    assert goal_cells(result) == [
        "tiny-consistency-10pct / merge / failures",
        "tiny-consistency-10pct / merge / crashes",
    ]


def test_the_command_writes_both_files_beside_the_check_and_refuses_checks_without_outcomes(tmp_path, capsys):
    doc = check({"tiny-imitation-10pct": {"merge": "c" * 40 + "." * 20}, "tiny-all-10pct": {"merge": "." * 60}})
    path = tmp_path / "more_episodes.json"
    path.write_text(json.dumps(doc))
    main([str(path)])
    written = json.loads((tmp_path / "paired_scenarios.json").read_text())
    assert written["goal"] == ["tiny-all-10pct / merge / failures", "tiny-all-10pct / merge / crashes"]
    assert "| tiny-all-10pct | 0.667 → 0.000 (-100%, 80 vs 0," in (tmp_path / "paired_scenarios.md").read_text()
    (tmp_path / "old.json").write_text(json.dumps({**doc, "outcomes": {}}))
    with pytest.raises(SystemExit, match="keeps no per-episode outcomes"):
        main([str(tmp_path / "old.json")])
    no_base = check({"tiny-all-10pct": {"merge": "." * 60}})
    (tmp_path / "no_base.json").write_text(json.dumps(no_base))
    with pytest.raises(SystemExit, match="expected one imitation planner"):
        main([str(tmp_path / "no_base.json")])
