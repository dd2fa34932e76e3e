"""DAgger rounds in the driving pack, on the ego camera and with the rationale encoder adapted on BDD-X: each round's
imitation planner drives (the expert's share of the driving falling to 0), the expert labels what it saw, and the
frames join the training set; a rerun reuses every round. The gate's state clone drives rounds of its own. The
scenario has twice the episodes (``episode_scale``): the extra expert episode joins the whole budget only."""

from __future__ import annotations

import json

import pytest
import torch

from domains.driving import dagger
from domains.driving.recipe import DrivingRecipe
from suite.stages import StageLedger


@pytest.fixture(scope="module")
def dagger_pack(tmp_path_factory):
    from domains.driving import teacher_data
    from domains.driving.pipeline import DrivingPack

    threads, pairs = torch.get_num_threads(), teacher_data.RETRIEVAL_PAIRS
    torch.set_num_threads(1)  # tiny planners on a busy 2-core machine: threads only contend
    teacher_data.RETRIEVAL_PAIRS = 64  # the retrieval check on fewer BDD-X test pairs
    root = tmp_path_factory.mktemp("dagger")
    recipe = DrivingRecipe(
        output_dir=str(root / "run"), scenarios=["merge"], train_episodes=1, val_episodes=1, seeds=[0],
        variants=["imitation"], extra_backbone="", epochs=1, budget_epochs=1, gate_epochs=1, workers=1, progress=False,
        camera="ego", token_stride=4, frames=4, dagger_rounds=2, dagger_episodes=1, encoder_adapt_steps=2,
        shift_scenarios=[], episode_scale={"merge": 2}, gate_dagger_rounds=2,
    )  # fmt: skip
    yield recipe, root / "run", DrivingPack(recipe, StageLedger(recipe.output_dir), resume=False)
    torch.set_num_threads(threads)
    teacher_data.RETRIEVAL_PAIRS = pairs


def test_the_expert_share_falls_linearly_to_zero():
    assert dagger.betas(1) == [0.0]
    assert dagger.betas(4) == [0.75, 0.5, 0.25, 0.0]


def test_each_round_adds_the_frames_its_planner_visited(dagger_pack):
    recipe, out, pack = dagger_pack
    from domains.driving.collect import load_shard

    expert = sum(len(load_shard(p)[0]["actions"]) for p in (out / "data" / "train").glob("*.npz"))
    rounds = [sum(len(load_shard(p)[0]["actions"]) for p in (out / f"dagger/round{k}/data/shards").glob("*.npz"))
              for k in (1, 2)]  # fmt: skip
    assert expert > 0 and all(n > 0 for n in rounds)
    assert len(pack.train_data) == expert + sum(rounds)
    assert pack.train_data.images.shape[1:] == (12, 64, 128)  # 4 stacked ego-camera frames
    assert pack.train_data.agent_cells.shape[-2:] == (16, 32) and pack.data_stage == "dagger/round2/data"
    assert pack.train_data.teacher["planning"].shape[0] == len(pack.train_data)  # every frame has its rationale
    # Round k's episodes were driven by round k's planner with the expert taking a step with probability beta_k.
    for k, beta in enumerate(dagger.betas(2), start=1):
        manifest = json.loads((out / f"dagger/round{k}/data/shards/manifest.json").read_text())
        assert (
            manifest["beta"] == beta
            and manifest["camera"] == "ego"
            and manifest["scenario_episodes"] == [["merge", 2]]
        )
        assert len(list((out / f"dagger/round{k}/data/shards").glob("merge-*.npz"))) == 1  # both in one shard
        assert manifest["driver"]["weights"] == str(out / f"dagger/round{k}/planner/model.safetensors")


def test_the_gate_clone_drives_its_own_rounds_and_keeps_them_to_itself(dagger_pack):
    from domains.driving.collect import load_shard
    from domains.driving.pipeline import gate_weights_in
    from domains.driving.state import load_cloner

    recipe, out, pack = dagger_pack
    assert pack.gate_weights == gate_weights_in(out, recipe) == out / "gate_dagger/round2/cloner.safetensors"
    drivers = [out / "gate/cloner.safetensors", out / "gate_dagger/round1/cloner.safetensors"]
    for k, (beta, driver) in enumerate(zip(dagger.betas(2), drivers, strict=True), start=1):
        shards = out / f"gate_dagger/round{k}/shards"
        manifest = json.loads((shards / "manifest.json").read_text())
        assert manifest["beta"] == beta and manifest["scenario_episodes"] == [["merge", 2]]
        assert manifest["driver"] == {**manifest["driver"], "kind": "state", "weights": str(driver)}
        assert sum(len(load_shard(p)[0]["actions"]) for p in shards.glob("*.npz")) > 0
    assert load_cloner(pack.gate_weights).slots == recipe.gate_lane_slots
    # the gate's rounds train the clone alone: the planners' frames are the expert's and their own rounds'
    folders = [out / "data/train", *(out / f"dagger/round{k}/data/shards" for k in (1, 2))]
    frames = sum(len(load_shard(p)[0]["actions"]) for folder in folders for p in folder.glob("*.npz"))
    assert len(pack.train_data) == frames


def test_without_gate_rounds_the_gate_is_the_plain_clone(dagger_pack):
    import dataclasses

    from domains.driving.pipeline import gate_weights_in

    recipe, out, _ = dagger_pack
    plain = dataclasses.replace(recipe, gate_dagger_rounds=0)
    assert gate_weights_in(out, plain) == out / "gate/cloner.safetensors"


def test_smaller_budgets_learn_from_the_experts_episodes_alone(dagger_pack):
    # DAgger's drivers learned from every expert frame: their frames would leak the full budget into a small one.
    # episode_scale's extra episodes would make the small budgets' share of that scenario larger than the others'.
    _, _, pack = dagger_pack
    small = pack.frames_for(0.5)
    assert len(pack.expert_data) < len(pack.train_data)
    assert set(pack.expert_data.episode.tolist()) == {0, 1}  # train_episodes=1, twice that for merge
    first = pack.expert_data.episode == 0
    assert len(small) == int(first.sum()) > 0  # the first expert episode lies inside every budget; the extra one not
    assert torch.equal(small.actions, pack.expert_data.actions[first])
    assert pack.frames_for(1.0) is pack.train_data


def test_epoch_share_reaches_the_planners_on_all_the_frames_only(dagger_pack, monkeypatch, capsys, tmp_path):
    import dataclasses

    recipe, _, pack = dagger_pack
    variant = next(v for v in pack.variants() if pack.budget_of[v.name] == 1)
    assert "epoch_share" not in pack.student_settings(variant)  # without it: older runs' fingerprints unchanged
    monkeypatch.setattr(pack, "recipe", dataclasses.replace(recipe, epoch_share={"merge": 0.5}))
    assert pack.student_settings(variant)["epoch_share"] == {"merge": 0.5}
    pack.fit_planner(variant, 0, tmp_path / "planner", pack.train_data)
    drawn = round(len(pack.train_data) / 2)
    assert f"on {len(pack.train_data)} frames (an epoch draws {drawn} of them" in capsys.readouterr().out
    monkeypatch.setitem(pack.budget_of, variant.name, 0.5)  # a smaller budget's planner sees every frame
    assert "epoch_share" not in pack.student_settings(variant)


def test_a_rerun_reuses_every_round(dagger_pack, capsys):
    from domains.driving.pipeline import DrivingPack

    recipe, out, pack = dagger_pack
    weights = out / "dagger/round2/planner/model.safetensors"
    before = weights.stat().st_mtime_ns
    again = DrivingPack(recipe, StageLedger(recipe.output_dir), resume=True)
    printed = capsys.readouterr().out
    assert "[dagger/round2/planner] up to date" in printed and "[gate_dagger/round2] up to date" in printed
    assert weights.stat().st_mtime_ns == before and len(again.train_data) == len(pack.train_data)
    assert again.gate_weights == pack.gate_weights
    assert torch.equal(again.train_data.actions, pack.train_data.actions)


def test_the_rationales_are_embedded_by_the_encoder_adapted_on_bddx(dagger_pack):
    from domains.driving.teacher_data import text_encoder

    _, out, pack = dagger_pack
    check = pack.encoder_check
    assert check["steps"] == 2 and check["train_pairs"] > 20_000 and check["test_pairs"] == 64
    assert 0 <= check["retrieval_at_1_before"] <= 1 and 0 <= check["retrieval_at_1_after"] <= 1
    assert pack.encoder_path == out / "text_encoder" / "encoder"
    text = pack.train_data.texts[-1]["planning"]  # a DAgger round's frame: embedded by the same encoder
    adapted, packaged = (text_encoder(path).answer([text])[0].embedding for path in (pack.encoder_path, None))
    assert torch.allclose(pack.train_data.teacher["planning"][-1], adapted, atol=1e-5)
    assert not torch.allclose(adapted, packaged, atol=1e-3)
