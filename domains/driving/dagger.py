"""DAgger (Ross et al., 2011) with the privileged expert as the labeller.

Behaviour cloning only sees the states the expert visits; a planner that drifts meets states it never learned. Each
round trains an imitation planner on every frame so far, lets it drive fresh episodes (the expert takes each step with
probability ``beta``, falling linearly to 0 over the rounds) and has the expert label every frame it saw; the frames
join the training set. Each round is two stages (``dagger/round<k>/planner`` and ``dagger/round<k>/data``), so an
interrupted run resumes at the round it was in, and every planner variant then trains on the aggregate.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from domains.driving.data import DrivingData, concat
from domains.driving.policies import PolicySpec
from domains.driving.recipe import planner_kwargs
from domains.driving.teacher_data import collect_plan, labelled_frames, more_words, text_encoder
from suite.runner import Variant

if TYPE_CHECKING:
    from domains.driving.pipeline import DrivingPack
    from suite.stages import StageLedger

WEIGHTS = "model.safetensors"
SEED_OFFSET = 100  # round k collects with data seed + 100 + k: never a training, validation or evaluation episode


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
    from domains.driving.collect import collect

    collect(plan, out / "shards", recipe.progress, recipe.workers)
    return out / "shards"


def _train(pack: DrivingPack, variant: Variant, data: DrivingData, seed: int, out: Path) -> Path:
    pack.fit_planner(variant, seed, out, data)
    return out / WEIGHTS
