"""The wider closed-loop check pools a variant's seeds and judges "<= 2x the expert's collisions" on the pool."""

import pytest

from benchmarks.driving_more_episodes import pooled, verdict
from tests.bench.episodes import episode


def test_seeds_are_pooled_against_the_expert_on_the_same_episodes():
    expert = [episode(False), episode(True)]
    seeds = {"tiny-imitation|0": [episode(True), episode(False, 50.0)], "tiny-imitation|1": [episode(False)] * 2}
    result = pooled(seeds, expert)
    assert result["episodes"] == 4 and result["crashes"] == 1
    assert result["collision_rate"] == 0.25
    assert result["progress"] == 350 / 400  # 100 + 50 + 100 + 100 over the expert's 200, twice
    assert result["success_rate"] == 0.5  # the crash and the 50% episode fail
    assert result["crashes_by_seed"] == [1.0, 0.0]  # in the seeds' order; they sum to the pooled count


def test_the_table_shows_each_seeds_crashes_beside_the_pooled_count_where_there_are_several_seeds():
    from benchmarks.driving_more_episodes import table

    expert = [episode(False), episode(False)]
    seeds = {"tiny-imitation|0": [episode(True), episode(True)], "tiny-imitation|1": [episode(False)] * 2}
    results = {"expert": {"highway": pooled({"expert": expert}, expert)},
               "tiny-imitation": {"highway": pooled(seeds, expert)}}  # fmt: skip
    rows = {line.split(" | ")[0]: line for line in table(results, ["highway"])[2:]}
    assert "| 4 | 2 (2 + 0) | 0.500 |" in rows["| tiny-imitation"]
    assert "| 2 | 0 | 0.000 |" in rows["| expert"]  # one policy, no brackets


def test_the_goal_allows_twice_the_expert_and_nothing_above_it():
    expert = {"collision_rate": 0.05}
    assert verdict({"collision_rate": 0.10}, expert)
    assert not verdict({"collision_rate": 0.11}, expert)
    assert not verdict({"collision_rate": 0.005}, {"collision_rate": 0.0})  # twice zero is zero


def test_crash_causes_count_the_pooled_seeds_crashes_and_nothing_else():
    from benchmarks.driving_more_episodes import cause_table, causes

    def shadowed(crashed: bool, taken: str, asked: str) -> dict:
        return episode(crashed) | {"actions": taken, "expert_actions": asked, "no_safe": "0" * len(taken)}

    seeds = {"tiny-imitation|0": [shadowed(True, "111", "114"), shadowed(False, "111", "114")],
             "tiny-imitation|1": [shadowed(True, "111", "114"), shadowed(True, "111", "111")]}  # fmt: skip
    counts = causes(seeds)
    assert counts["missed a brake"] == 2 and counts["as the expert"] == 1 and sum(counts.values()) == 3
    per_scenario = {"highway": counts, "merge": dict.fromkeys(counts, 0)}
    lines = cause_table({"tiny-imitation": per_scenario}, ["highway", "merge"])
    assert len(lines) == 3 and lines[2].startswith("| tiny-imitation | highway | 2 |")  # no row without a crash


def test_the_run_recipe_takes_the_runs_own_settings_so_the_same_expert_drives_and_shadows():
    from domains.driving.expert import ExpertConfig
    from domains.driving.recipe import full_recipe as run_recipe

    assert run_recipe().expert == ExpertConfig() == ExpertConfig(other_routes="any")
    for routes in ("known", "any"):
        recipe = run_recipe([f"expert.other_routes={routes}", "expert.keep_margin=2"])
        assert recipe.expert == ExpertConfig(keep_margin=2.0, other_routes=routes)
    with pytest.raises(ValueError, match="other_routes"):
        run_recipe(["expert.other_routes=psychic"])


def test_the_run_recipe_is_the_one_the_run_recorded_else_the_full_profile(tmp_path, capsys):
    from domains.driving.recipe import full_recipe, run_recipe
    from suite.config import save_run_recipe

    before = full_recipe(["expert.other_routes=known", "episode_scale={}", "epoch_share={}", "gate_lane_slots=false",
                          "gate_dagger_rounds=0", "eval_episodes=50"])  # fmt: skip
    assert run_recipe(tmp_path, ["eval_episodes=50"]) == before  # a run made before recipes were recorded
    assert "has no recipe.yaml" in capsys.readouterr().out  # said, since the settings must then be repeated
    made = full_recipe(["expert.other_routes=known", "eval_episodes=50"])
    save_run_recipe(made, tmp_path, "driving", "distill run driving ...")
    assert run_recipe(tmp_path) == made
    assert run_recipe(tmp_path, ["eval_episodes=30"]).expert.other_routes == "known"


def test_a_recorded_recipe_without_a_later_setting_gets_the_value_that_gives_what_its_run_did(tmp_path):
    import yaml

    from domains.driving.recipe import full_recipe, run_recipe
    from suite.config import save_run_recipe

    made = full_recipe(["eval_episodes=50"])
    assert made.gate_dagger_rounds == 2 and made.gate_lane_slots  # today's defaults
    save_run_recipe(made, tmp_path, "driving", "distill run driving ...")
    assert run_recipe(tmp_path) == made  # a record with the keys keeps them
    record = yaml.safe_load((tmp_path / "recipe.yaml").read_text())
    for key in ("gate_dagger_rounds", "gate_lane_slots"):  # as a run recorded before these settings existed
        del record["recipe"][key]
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(record))
    older = run_recipe(tmp_path)
    assert (older.gate_dagger_rounds, older.gate_lane_slots) == (0, False)
    assert older.episode_scale == made.episode_scale  # recorded: kept, not reset to the value before it existed
    assert run_recipe(tmp_path, ["gate_dagger_rounds=1"]).gate_dagger_rounds == 1  # --set still wins


def fake_gate(run, recipe):
    """An empty file where a finished run keeps its gate's final weights (the specs only name the file)."""
    from domains.driving.pipeline import gate_weights_in

    path = gate_weights_in(run, recipe)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    return path


def test_the_gate_is_its_last_dagger_rounds_clone_and_a_run_without_it_is_refused(tmp_path):
    from benchmarks.driving_more_episodes import policies
    from domains.driving.recipe import full_recipe

    recipe = full_recipe(["seeds=[0]", "variants=[imitation]", "gate_dagger_rounds=2"])
    (tmp_path / "students" / f"{recipe.backbone}-imitation-s0").mkdir(parents=True)
    (tmp_path / "students" / f"{recipe.backbone}-imitation-s0" / "model.safetensors").write_bytes(b"")
    (tmp_path / "gate").mkdir()
    (tmp_path / "gate" / "cloner.safetensors").write_bytes(b"")  # the plain clone only: its rounds never ran
    with pytest.raises(SystemExit, match="gate_dagger_rounds=2"):
        policies(tmp_path, recipe, ("imitation",))
    plain = full_recipe(["seeds=[0]", "variants=[imitation]", "gate_dagger_rounds=0"])  # no gate rounds
    plain_gate = policies(tmp_path, plain, ("imitation",))["state-clone"]
    assert plain_gate.weights == str(tmp_path / "gate/cloner.safetensors")
    last = fake_gate(tmp_path, recipe)
    assert last == tmp_path / f"gate_dagger/round{recipe.gate_dagger_rounds}/cloner.safetensors"
    assert policies(tmp_path, recipe, ("imitation",))["state-clone"].weights == str(last)


def test_a_run_without_its_all_five_planners_still_checks_imitation_alone(tmp_path):
    from benchmarks.driving_more_episodes import policies
    from domains.driving.recipe import full_recipe

    recipe = full_recipe(["seeds=[0,1]"])
    fake_gate(tmp_path, recipe)
    for seed in recipe.seeds:  # only the imitation planners were trained
        directory = tmp_path / "students" / f"{recipe.backbone}-imitation-s{seed}"
        directory.mkdir(parents=True)
        (directory / "model.safetensors").write_bytes(b"")
    specs = policies(tmp_path, recipe, ("imitation",))
    assert [name for name in specs if "|" in name] == [f"{recipe.backbone}-imitation|{s}" for s in recipe.seeds]
    assert "expert" in specs
    with pytest.raises(SystemExit, match="all-s0"):  # both variants by default: the missing ones are named
        policies(tmp_path, recipe)


def test_each_episodes_outcome_is_a_crash_a_short_drive_or_a_success_against_the_expert_on_it():
    from benchmarks.driving_more_episodes import outcomes

    expert = [episode(False, 100.0)] * 4
    rows = [episode(True, 100.0), episode(False, 89.0), episode(False, 95.0), episode(True, 10.0)]
    assert outcomes(rows, expert) == "cs.c"  # a crash counts as a crash however far it went
    with pytest.raises(ValueError):  # rows that do not pair with the expert's are refused
        outcomes(rows[:3], expert)


def test_the_paired_test_pools_training_seeds_and_tells_failures_from_crashes():
    from benchmarks.driving_more_episodes import paired

    kept = {"tiny-imitation-10pct|0": {"highway": "cc..", "merge": "s..."},
            "tiny-imitation-10pct|1": {"highway": "c...", "merge": "...."},
            "tiny-all-10pct|0": {"highway": "c...", "merge": "ss.."},
            "tiny-all-10pct|1": {"highway": "....", "merge": "...."}}  # fmt: skip
    test = paired(kept, "tiny-imitation-10pct", "tiny-all-10pct", [0, 1], ["highway", "merge"])
    failures, crashes = test["failures"], test["crashes"]
    assert failures["cases"] == crashes["cases"] == 16
    assert (failures["only_a"], failures["only_b"]) == (2, 1)  # the second crash and seed 1's; merge's second 's'
    assert failures["failure_rate_a"] == 4 / 16 and failures["failure_rate_b"] == 3 / 16
    assert failures["reduction"] == pytest.approx(0.25)
    assert (crashes["only_a"], crashes["only_b"]) == (2, 0) and crashes["reduction"] == pytest.approx(2 / 3)
    same = paired(kept, "tiny-imitation-10pct", "tiny-imitation-10pct", [0, 1], ["highway", "merge"])
    assert same["failures"]["p_value"] == 1.0 and same["failures"]["reduction"] == 0.0  # itself: no change


def test_the_paired_table_shows_both_rates_the_change_and_the_discordant_counts():
    from benchmarks.driving_more_episodes import paired, paired_table

    kept = {"a|0": {"highway": "cccc...."}, "b|0": {"highway": "c......."}}
    lines = paired_table({"b": paired(kept, "a", "b", [0], ["highway"])}, "a")
    assert lines[2] == ("| b | 0.500 → 0.125 (-75%, only one fails: 3 vs 0, p = 0.25) | "
                        "0.500 → 0.125 (-75%, only one fails: 3 vs 0, p = 0.25) |")  # fmt: skip


def test_a_budgets_planners_are_the_ones_trained_on_that_share_and_other_shares_are_refused(tmp_path):
    from benchmarks.driving_more_episodes import policies
    from domains.driving.recipe import full_recipe

    recipe = full_recipe(["seeds=[0]"])
    fake_gate(tmp_path, recipe)
    directory = tmp_path / "students" / f"{recipe.backbone}-align-10pct-s0"
    directory.mkdir(parents=True)
    (directory / "model.safetensors").write_bytes(b"")
    specs = policies(tmp_path, recipe, ("align",), 0.1)
    assert [name for name in specs if "|" in name] == [f"{recipe.backbone}-align-10pct|0"]
    with pytest.raises(SystemExit, match="budgets"):
        policies(tmp_path, recipe, ("align",), 0.5)
    with pytest.raises(SystemExit, match="align-s0"):  # the full-data planner was not trained here
        policies(tmp_path, recipe, ("align",))
