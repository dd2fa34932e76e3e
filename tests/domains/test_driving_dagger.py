"""DAgger rounds in the driving pack, on the ego camera: each round's imitation planner drives (the expert's share of
the driving falling to 0), the expert labels what it saw, and the frames join the training set; a rerun reuses every
round."""

from __future__ import annotations

import json

import pytest
import torch

from domains.driving import dagger
from domains.driving.recipe import DrivingRecipe
from suite.stages import StageLedger


@pytest.fixture(scope="module")
def dagger_pack(tmp_path_factory):
    from domains.driving.pipeline import DrivingPack

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny planners on a busy 2-core machine: threads only contend
    root = tmp_path_factory.mktemp("dagger")
    recipe = DrivingRecipe(
        output_dir=str(root / "run"), scenarios=["merge"], train_episodes=1, val_episodes=1, seeds=[0],
        variants=["imitation"], extra_backbone="", epochs=1, gate_epochs=1, workers=1, progress=False,
        camera="ego", token_stride=4, frames=4, dagger_rounds=2, dagger_episodes=1,
    )  # fmt: skip
    yield recipe, root / "run", DrivingPack(recipe, StageLedger(recipe.output_dir), resume=False)
    torch.set_num_threads(threads)


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
        assert manifest["beta"] == beta and manifest["camera"] == "ego"
        assert manifest["driver"]["weights"] == str(out / f"dagger/round{k}/planner/model.safetensors")


def test_a_rerun_reuses_every_round(dagger_pack, capsys):
    from domains.driving.pipeline import DrivingPack

    recipe, out, pack = dagger_pack
    weights = out / "dagger/round2/planner/model.safetensors"
    before = weights.stat().st_mtime_ns
    again = DrivingPack(recipe, StageLedger(recipe.output_dir), resume=True)
    assert "[dagger/round2/planner] up to date" in capsys.readouterr().out
    assert weights.stat().st_mtime_ns == before and len(again.train_data) == len(pack.train_data)
    assert torch.equal(again.train_data.actions, pack.train_data.actions)
