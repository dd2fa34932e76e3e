"""``distill run driving`` end to end on one short merge episode per split: collect, embed the expert's rationales
with MiniLM, train the imitation and all-terms planners, open and closed loop, export, bench; then a rerun that reuses
what exists."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from domains.driving.recipe import DrivingRecipe

ACTIONS = {"action_accuracy", "action_macro_f1", "slower_recall", "action_accuracy_merge"}
OPEN_LOOP = ACTIONS | {"waypoint_l2_1s", "waypoint_l2_2s", "waypoint_l2_3s", "rationale_retrieval"}
CLOSED_LOOP = {"collision_rate", "collisions_per_km", "mean_speed", "episode_return", "offroad_rate", "progress",
               "success_rate", "episodes"}  # fmt: skip
BASELINES = {"constant-IDLE", "constant-SLOWER", "majority-class"}


@pytest.fixture(scope="module")
def driving_run(tmp_path_factory):
    from domains.driving.pipeline import run

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny planners on a busy 2-core machine: threads only contend
    root = tmp_path_factory.mktemp("driving")
    recipe = DrivingRecipe(
        output_dir=str(root / "run"), report_dir=str(root / "report"), model_card_dir=str(root / "card"),
        scenarios=["merge"], train_episodes=1, val_episodes=1, eval_episodes=1, seeds=[0], progress=False,
        variants=["imitation", "all"], extra_backbone="", epochs=1, budget_epochs=1, workers=1, bench_repeats=3,
        budgets=[0.5, 1.0], ablate_up_to=1.0, shift_scenarios=[], encoder_adapt_steps=0, dagger_rounds=0,
    )  # fmt: skip
    yield recipe, root / "run", run(recipe)
    torch.set_num_threads(threads)


def test_results_hold_open_and_closed_loop_for_every_variant_the_expert_and_the_baseline(driving_run):
    _, _, summary = driving_run
    assert summary["frames"]["train"] > 0 and summary["frames"]["val"] > 0
    models = summary["models"]
    planners = {"tiny-imitation", "tiny-all", "tiny-imitation-50pct", "tiny-all-50pct"}
    assert set(models) == {"expert", "state-clone"} | planners | BASELINES
    for name, entry in models.items():
        planner = name.startswith("tiny")
        assert set(entry["metrics"]) == ({"merge"} if name == "expert" else {"merge", "open_loop"}), name
        closed = entry["metrics"]["merge"]
        assert set(closed) == CLOSED_LOOP and closed["episodes"] == 1.0
        assert 0 <= closed["collision_rate"] <= 1 and closed["mean_speed"] > 0
        assert 0 <= closed["success_rate"] <= 1 and closed["progress"] > 0
        if name in BASELINES or name == "state-clone":  # the gate: the expert cloned from privileged state
            assert set(entry["metrics"]["open_loop"]) == ACTIONS and entry["params"] == 0
        if planner:
            metrics = entry["metrics"]["open_loop"]
            assert set(metrics) == OPEN_LOOP, name
            assert 0 <= metrics["action_accuracy"] <= 1 and 0 <= metrics["rationale_retrieval"] <= 1
            assert all(math.isfinite(metrics[f"waypoint_l2_{k}s"]) for k in (1, 2))
            assert entry["seeds"] == [0] and entry["kd"] == name.startswith("tiny-all")
    assert models["constant-IDLE"]["params"] == 0 and not models["constant-IDLE"]["kd"]
    assert models["expert"]["metrics"]["merge"]["progress"] == 1.0  # the reference of everyone's progress
    # The all-terms planner trains extra heads in the Distiller only: both export the same network.
    assert models["tiny-imitation"]["params"] == models["tiny-all"]["params"] > 0


def test_the_report_says_what_precision_the_planners_trained_in_on_this_machine(driving_run):
    from domains.driving.report import precision_words
    from suite.trainer import resolve_mixed_precision

    recipe, _, summary = driving_run
    expected = "bf16" if resolve_mixed_precision(recipe.mixed_precision) == "bf16" else "fp32"
    assert summary["training_precision"] == expected
    assert precision_words(expected) in (Path(recipe.report_dir) / "driving.md").read_text()
    assert precision_words(expected) in (recipe.model_card_path / "README.md").read_text()


def test_the_ablation_pairs_each_variant_with_imitation_at_its_data_budget(driving_run):
    recipe, _, summary = driving_run
    table = summary["goals"]["ablation"]
    assert list(table) == ["50%", "100%"] and all(set(row) == {"all"} for row in table.values())
    for row in table.values():
        test = row["all"]
        assert test["cases"] == 1 and 0 <= test["p_value"] <= 1  # one seed x one scenario x one episode
        assert test["only_a"] + test["only_b"] <= 1
    assert isinstance(summary["goals"]["reasoning_gain_met"], bool)
    split = summary["goals"]["ablation_by_scenario"]  # the smallest budget again, one scenario at a time
    assert split["budget"] == "50%" and list(split["tests"]["all"]) == ["merge"]
    assert split["tests"]["all"]["merge"]["cases"] == 1 and split["tests"]["all"]["merge"]["p_holm"] == 1.0
    assert "### By scenario, at 50% of the data" in (Path(recipe.report_dir) / "driving.md").read_text()


def test_both_planners_are_exported_with_parity_and_benchmarked(driving_run):
    _, out, summary = driving_run
    for name in ("tiny-imitation", "tiny-all"):
        folder = out / "export" / name
        assert (folder / "model.onnx").is_file()
        parity = json.loads((folder / "spec.json").read_text())["parity"]["fp32"]
        assert parity["max_abs_diff"] <= parity["tolerance"]
        assert 0 < summary["models"][name]["latency_ms_p50"] <= summary["models"][name]["latency_ms_p99"]
    bank = json.loads((out / "rationale_bank.json").read_text())
    assert bank["texts"] and len(bank["texts"]) == len(bank["embeddings"]) and len(bank["embeddings"][0]) == 384
    # The shipped planner is released beside the model card, checked on freshly collected episodes.
    release = json.loads((out.parent / "card" / "release.json").read_text())["models"]["tiny-all"]
    assert release["check"]["scenarios"] == ["merge"] and 0 <= release["check"]["action_accuracy_fp32"] <= 1
    assert "student.safetensors" not in release["files"] and "model.onnx" in release["files"]
    assert (out.parent / "card" / "rationale_bank.json").is_file()


def test_a_rerun_reuses_the_shards_and_the_trained_planners(driving_run, capsys):
    from domains.driving.pipeline import run

    recipe, out, first = driving_run
    kept = sorted([*out.glob("students/*/model.safetensors"), *out.glob("data/*/*.npz")])
    assert len(kept) == 6  # four planners, two shards
    mtimes = [p.stat().st_mtime_ns for p in kept]
    second = run(recipe)
    assert "[students/tiny-all-s0] up to date" in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in kept] == mtimes
    # The same weights drive the same seeded episodes: every number but the timings repeats.
    for name in first["models"]:
        assert second["models"][name]["metrics"] == first["models"][name]["metrics"], name


def test_a_changed_loss_weight_retrains_only_the_variants_that_use_it(driving_run, capsys):
    import dataclasses

    from domains.driving.pipeline import run

    recipe, _, _ = driving_run
    run(dataclasses.replace(recipe, weights={**recipe.weights, "agents": 0.3}))
    out = capsys.readouterr().out
    assert "[students/tiny-imitation-s0] up to date" in out
    assert "[students/tiny-all-s0] rebuilding: its recipe or inputs changed" in out


def test_the_report_and_card_say_which_expert_labelled_the_frames(driving_run):
    from domains.driving.expert import ExpertConfig
    from domains.driving.report import expert_words

    recipe, _, _ = driving_run
    words = expert_words(recipe.expert)
    assert f"other_routes={recipe.expert.other_routes}" in words and f"{recipe.expert.keep_margin:g} m" in words
    assert words in (Path(recipe.report_dir) / "driving.md").read_text()
    assert words in (recipe.model_card_path / "README.md").read_text()
    assert expert_words(ExpertConfig(other_routes="any")) != expert_words(ExpertConfig(other_routes="known"))
