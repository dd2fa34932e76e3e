"""The intersection probe's arms are valid recipe settings, and its table judges each arm against the expert."""

import pytest

from benchmarks.driving_intersection_probe import (
    ARMS,
    SCENARIOS,
    arm_row,
    arm_settings,
    base_settings,
    main,
    markdown,
    references,
)
from domains.driving.recipe import PROFILES, DrivingRecipe
from suite.config import apply_overrides, build_config


@pytest.mark.parametrize("arm", list(ARMS))
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_arm_is_a_valid_driving_recipe_on_its_scenario_alone(arm, scenario):
    settings = [*base_settings(scenario), *arm_settings(arm, scenario)]
    recipe = build_config(DrivingRecipe, apply_overrides({}, PROFILES["full"]), settings)
    assert recipe.scenarios == [scenario] and recipe.variants == ["imitation"] and recipe.seeds in ([0, 1], [0])
    if arm == "scale-5x":  # its settings name the probed scenario, whichever it is
        assert recipe.episode_scale == {scenario: 5} and recipe.epoch_share == {scenario: 0.2}
    elif arm == "baseline":  # as many episodes of the intersection as of any other scenario, every frame each epoch
        assert recipe.episode_scale == {} and recipe.epoch_share == {} and recipe.train_episodes == 60


SCENARIO = "highway"


def _model(collisions: float, progress: float, spread: float = 0.0) -> dict:
    closed = {"collision_rate": collisions, "progress": progress, "success_rate": 0.5, "mean_speed": 20.0}
    return {"metrics": {SCENARIO: closed, "open_loop": {"action_accuracy": 0.77, "action_macro_f1": 0.6}},
            "metrics_std": {SCENARIO: dict.fromkeys(closed, spread)}, "seeds": [0, 1]}  # fmt: skip


def _results(collisions: float, progress: float) -> dict:
    models = {name: _model(0.05, 1.0) for name in ("expert", "state-clone", "constant-IDLE", "constant-SLOWER")}
    del models["expert"]["metrics"]["open_loop"]  # the expert labels the frames: it has no open-loop score
    # the run's report judges its goals (domains.driving.report.imitation_goals); the probe copies the verdicts
    goals = {"imitation_collisions_met": collisions <= 2 * 0.05, "imitation_progress_met": progress >= 0.8}
    return {"models": {**models, "tiny-imitation": _model(collisions, progress, 0.02)}, "goals": goals}


def test_an_arm_meets_the_goals_only_with_few_collisions_and_enough_progress():
    arms = {"baseline": (0.05, 0.60), "four-frames": (0.20, 0.90), "balanced": (0.10, 0.85)}
    payload = {"command": "probe", "machine": {}, "episodes": 60, "scenario": SCENARIO,
               "references": references(_results(0.05, 0.6), SCENARIO),
               "arms": {name: arm_row(_results(*values), SCENARIO) for name, values in arms.items()}}  # fmt: skip
    rows = {line.split(":")[0].strip("| "): line for line in markdown(payload, 60.0).splitlines() if ": " in line}
    assert "**not met**" in rows["baseline"]  # too little progress
    assert "**not met**" in rows["four-frames"]  # 4x the expert's collisions
    assert rows["balanced"].endswith("| met |")  # 2x the expert's, 85% of its progress
    assert "below the majority class" not in rows["balanced"]  # 0.77 open-loop accuracy, as constant IDLE's
    assert "| – | 0, 1 | 0.050 ± 0.020 | 0.60 ± 0.02 |" in rows["baseline"]  # its settings, seeds, spreads
    table = markdown(payload, 60.0)
    assert "imitation planner on highway alone" in table and "`scenarios=[highway]`" in table
    assert "| expert (reference) | – | – | 0.050 | 1.00 | 0.500 | – | – | – |" in table
    assert "| constant-IDLE (reference) | – | – | 0.050 | 1.00 | 0.500 | 0.770 | 0.600 | – |" in table
    payload["references"]["constant-IDLE"]["action_accuracy"] = 0.8
    assert "0.770 **(below the majority class)**" in markdown(payload, 60.0)
    assert "changes the expert" not in table


def test_an_arm_that_changes_the_expert_is_read_against_its_own_expert():
    own = _results(0.01, 0.9)
    own["models"]["expert"]["metrics"][SCENARIO].update(collision_rate=0.02, mean_speed=12.5)
    arms = {"baseline": arm_row(_results(0.05, 0.6), SCENARIO), "routes-any": arm_row(own, SCENARIO)}
    payload = {"command": "probe", "machine": {}, "episodes": 60, "scenario": SCENARIO,
               "references": references(_results(0.05, 0.6), SCENARIO), "arms": arms}  # fmt: skip
    assert payload["arms"]["routes-any"]["expert"] == {"collision_rate": 0.02, "mean_speed": 12.5}
    assert ("Arm routes-any changes the expert, so its progress and goals are against that run's own expert "
            "(collision rate 0.020, mean speed 12.50 m/s; the reference expert's: 0.050, 20.00 m/s).") in markdown(
        payload, 60.0)  # fmt: skip


def test_the_probe_refuses_to_run_without_its_baseline_arm(tmp_path):
    with pytest.raises(SystemExit):
        main(["--arms", "balanced", "--out", str(tmp_path)])
    assert not any(tmp_path.iterdir())


def test_a_probe_wide_setting_reaches_every_arm_and_an_arms_own_setting_wins():
    extra = ["epochs=50", "frames=3"]
    built = {arm: build_config(DrivingRecipe, apply_overrides({}, PROFILES["full"]),
                               [*base_settings("intersection", extra), *ARMS[arm][1]])
             for arm in ("baseline", "long")}  # fmt: skip
    assert built["baseline"].epochs == 50 and built["baseline"].frames == 3
    assert built["long"].epochs == 100 and built["long"].frames == 3  # the arm's 4x epochs, the probe's frames
