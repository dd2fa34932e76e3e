"""DAgger (Ross et al., 2011) with the privileged expert as the labeller.

Behaviour cloning only sees the states the expert visits; a planner that drifts meets states it never learned. Each
round trains an imitation planner on every frame so far, lets it drive fresh episodes (the expert takes each step with
probability ``beta``, falling linearly to 0 over the rounds) and has the expert label every frame it saw; the frames
join the training set. Each round is two stages (``dagger/round<k>/planner`` and ``dagger/round<k>/data``), so an
interrupted run resumes at the round it was in, and every planner variant then trains on the aggregate.

The gate's state clone has DAgger rounds of its own (:func:`gate_rounds`): it drives, the expert labels, and it is
retrained on every state so far; its rounds' frames never reach the pixel planners.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from domains.driving.collect import collect, load_shard
from domains.driving.data import DrivingData, concat
from domains.driving.policies import PolicySpec
from domains.driving.recipe import planner_kwargs
from domains.driving.state import GATE_WEIGHTS
from domains.driving.teacher_data import collect_plan, labelled_frames, more_words, text_encoder
from suite.runner import Variant

if TYPE_CHECKING:
    from domains.driving.pipeline import DrivingPack
    from suite.stages import StageLedger

WEIGHTS = "model.safetensors"
SEED_OFFSET = 100  # round k collects with data seed + 100 + k: never a training, validation or evaluation episode
GATE_SEED_OFFSET = 200  # the gate's round k: data seed + 200 + k, apart from the planners' rounds too
GATE_STAGE = "gate_dagger/round{}"


def betas(rounds: int) -> list[float]:
    """The expert's share of the driving in rounds 1..``rounds``: 1 - k / rounds (the last round: the planner
    alone)."""
    return [1 - k / rounds for k in range(1, rounds + 1)]


def aggregate(pack: DrivingPack, ledger: StageLedger) -> tuple[DrivingData, str]:
    """The expert's training frames plus every round's; and the name of the last stage they depend on."""
    recipe, data, previous = pack.recipe, pack.train_data, "teacher"
    imitation = Variant("dagger-imitation", recipe.backbone, {"imitation": recipe.weights["imitation"]}, [], False)
    encoder = None
    for k, beta in enumerate(betas(recipe.dagger_rounds), start=1):
        stage, seed = f"dagger/round{k}", recipe.seeds[0]
        settings = {**pack.student_settings(imitation), "round": k, "frames": len(data), "seed": seed}
        weights = ledger.run(f"{stage}/planner", settings,
                             lambda out, d=data: _train(pack, imitation, d, seed, out),  # noqa: B023
                             lambda out: out / WEIGHTS, after=[previous])  # fmt: skip
        driver = PolicySpec("planner", str(weights), tuple(sorted(planner_kwargs(recipe, imitation.student).items())))
        plan = collect_plan(recipe, recipe.dagger_episodes, recipe.seed + SEED_OFFSET + k, scaled=True,
                            driver=driver, beta=beta)  # fmt: skip
        print(f"[driving] DAgger round {k}: its planner drives {recipe.dagger_episodes} episodes per scenario"
              f"{more_words(plan)} (the expert takes a step with probability {beta:.2f}) and the expert labels every "
              "frame")  # fmt: skip
        # scenario_episodes is not in the plan's repr (older runs' stages keep their fingerprints): added when set
        key = {"plan": repr(plan)} | ({"scenario_episodes": plan.scenario_episodes} if plan.scenario_episodes else {})
        shards = ledger.run(f"{stage}/data", key, lambda out, p=plan: _collect(recipe, p, out),
                            lambda out: out / "shards", after=[f"{stage}/planner"])  # fmt: skip
        encoder = encoder or text_encoder(pack.encoder_path)
        data = concat([data, labelled_frames(recipe, plan, shards, ledger.root, encoder)])
        previous = f"{stage}/data"
    return data, previous


def _collect(recipe: Any, plan: Any, out: Path) -> Path:
    collect(plan, out / "shards", recipe.progress, recipe.workers)
    return out / "shards"


def _train(pack: DrivingPack, variant: Variant, data: DrivingData, seed: int, out: Path) -> Path:
    pack.fit_planner(variant, seed, out, data)
    return out / WEIGHTS


def gate_rounds(pack: DrivingPack, ledger: StageLedger, weights: Path) -> Path:
    """The gate's DAgger: from the plain clone's ``weights``, each round lets the current clone drive
    ``dagger_episodes`` per scenario (``episode_scale``'s multiples too; the expert takes a step with probability
    beta), records the states it visited with the expert's labels, and retrains the clone on the expert's states and
    every round's. One stage per round (``gate_dagger/round<k>``): a rerun resumes at the round it was in. Returns the
    last round's weights."""
    recipe = pack.recipe
    states, actions, previous = [pack.expert_data.state], [pack.expert_data.actions], "gate"
    for k, beta in enumerate(betas(recipe.gate_dagger_rounds), start=1):
        driver = PolicySpec("state", str(weights))
        plan = collect_plan(recipe, recipe.dagger_episodes, recipe.seed + GATE_SEED_OFFSET + k, scaled=True,
                            driver=driver, beta=beta)  # fmt: skip
        print(f"[driving] gate DAgger round {k}: the state clone drives {recipe.dagger_episodes} episodes per scenario"
              f"{more_words(plan)} (the expert takes a step with probability {beta:.2f}) and the expert labels every "
              "state")  # fmt: skip
        key = {**pack.gate_settings(), "plan": repr(plan), "scenario_episodes": plan.scenario_episodes}
        stage = GATE_STAGE.format(k)

        def build(out: Path, plan: Any = plan) -> Path:
            collect(plan, out / "shards", recipe.progress, recipe.workers)
            new_states, new_actions = labelled_states(out / "shards")
            return pack.save_gate(torch.cat([*states, new_states]), torch.cat([*actions, new_actions]), out)

        weights = ledger.run(stage, key, build, lambda out: out / GATE_WEIGHTS, after=[previous])
        new_states, new_actions = labelled_states(weights.parent / "shards")
        states.append(new_states)
        actions.append(new_actions)
        previous = stage
    return weights


def labelled_states(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The privileged states and the expert's actions recorded in the shards in ``folder``, in file-name order (the
    same when a round is built and when a rerun reads it back), without frames or rationales."""
    arrays = [load_shard(path)[0] for path in sorted(folder.glob("*.npz"))]
    return (torch.from_numpy(np.concatenate([a["state"] for a in arrays])).float(),
            torch.from_numpy(np.concatenate([a["actions"] for a in arrays])).long())  # fmt: skip
