"""The fp32 / bf16 comparison pools each precision's seeds on the same episodes and pairs them seed by seed."""

import json

from benchmarks.driving_precision import compare, report, training_seconds
from tests.bench.episodes import episode


def test_each_precision_pools_its_seeds_and_the_test_pairs_the_same_seed_on_the_same_episode():
    crashes = {"fp32|0": [1, 0, 0, 0], "fp32|1": [0, 0, 0, 0], "bf16|0": [1, 1, 1, 0], "bf16|1": [0, 1, 0, 0]}
    episodes = {name: {"intersection": [episode(bool(c)) for c in row]} for name, row in crashes.items()}
    episodes["expert"] = {"intersection": [episode(False)] * 4}
    row = compare(episodes, [0, 1], ["intersection"])["intersection"]
    assert row["fp32"]["crashes"] == 1 and row["bf16"]["crashes"] == 4 and row["expert"]["crashes"] == 0
    assert row["fp32"]["per_seed_collision_rate"] == [0.25, 0.0]
    assert row["bf16"]["per_seed_collision_rate"] == [0.75, 0.25]
    test = row["mcnemar_fp32_vs_bf16"]
    assert (test["only_a"], test["only_b"], test["cases"]) == (0, 3, 8)  # fp32 seed 0's crash is bf16 seed 0's too


def test_the_report_shows_both_precisions_and_the_paired_p_value(tmp_path):
    records = {"fp32/s0": {"seconds": 300.0}, "fp32/s1": {"seconds": 340.0}, "bf16/s0": {"seconds": 190.0},
               "bf16/s1": {"seconds": 210.0}, "fp32/s2": {"seconds": 350.0}}  # fmt: skip
    (tmp_path / "stages.json").write_text(json.dumps(records))
    times = training_seconds(tmp_path)
    assert times == {"fp32": 340.0, "bf16": 200.0}  # medians
    episodes = {name: {"merge": [episode(False), episode(name == "bf16|0")]} for name in ("fp32|0", "bf16|0")}
    episodes["expert"] = {"merge": [episode(False)] * 2}
    payload = {"command": "python -m benchmarks.driving_precision", "machine": {}, "seconds": 60.0,
               "run_dir": "RUN", "run_precision": "bf16", "train_frames": 10, "seeds": [0], "episodes": 2,
               "offset": 20, "training_seconds_median": times,
               "open_loop": {p: {"action_accuracy": 0.9, "action_macro_f1": 0.7} for p in ("fp32", "bf16")},
               "weight_gap_to_run_planners": {"bf16": {0: 0.0}},
               "results": compare(episodes, [0], ["merge"])}  # fmt: skip
    text = "\n".join(report(payload))
    assert "| fp32 | 340 s | 0.900 | 0.700 |" in text and "| bf16 | 200 s |" in text
    assert "| merge | bf16 | 1 | 0.500 | 0.500 | 1.00 | 0.500 | 1.000 |" in text
    assert "differ from the run's own by at most 0 in any weight" in text


def test_the_run_is_read_with_its_own_settings_and_a_reuse_only_ledger(monkeypatch, tmp_path):
    import domains.driving.pipeline as pipeline
    from benchmarks.driving_precision import load_pack

    seen = {}
    capture = lambda recipe, ledger, resume: seen.update(recipe=recipe, ledger=ledger)  # noqa: E731
    monkeypatch.setattr(pipeline, "DrivingPack", capture)
    load_pack(tmp_path, "no", ["expert.other_routes=known"])
    recipe = seen["recipe"]
    assert recipe.expert.other_routes == "known" and recipe.mixed_precision == "no"
    assert recipe.output_dir == str(tmp_path) and not recipe.progress and seen["ledger"].reuse_only


def test_a_run_that_recorded_its_recipe_is_read_with_it_and_no_settings(monkeypatch, tmp_path):
    import domains.driving.pipeline as pipeline
    from benchmarks.driving_precision import load_pack
    from domains.driving.recipe import full_recipe
    from suite.config import save_run_recipe

    made = full_recipe(["expert.other_routes=known", "mixed_precision=no", "dagger_rounds=3"])
    save_run_recipe(made, tmp_path, "driving", "distill run driving ...")
    seen = {}
    monkeypatch.setattr(pipeline, "DrivingPack", lambda recipe, ledger, resume: seen.update(recipe=recipe))
    load_pack(tmp_path)
    recipe = seen["recipe"]
    assert recipe.expert.other_routes == "known" and recipe.mixed_precision == "no" and recipe.dagger_rounds == 3
    load_pack(tmp_path, "bf16")  # a precision given wins over the recorded one
    assert seen["recipe"].mixed_precision == "bf16" and seen["recipe"].dagger_rounds == 3
