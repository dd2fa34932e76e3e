"""The driving recipe: scenarios, data sizes, teacher, planner variants, loss weights (defaults: the full profile)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domains.driving.expert import ExpertConfig
from domains.driving.scenarios import ACTIONS, CAMERAS, SHIFTED_SCENARIOS, TRAINING_SCENARIOS, camera
from suite.config import check
from suite.runner import RunOutputs

# Each ablation variant adds its reasoning-distillation terms to imitation (CE + waypoint L2).
VARIANTS = {
    "imitation": (),
    "align": ("align",),  # VERDI, Eq. 10
    "agents": ("agents",),  # VLP, Eq. 12
    "recon": ("recon",),  # DiMA, Eq. 11
    "attention": ("attention",),  # Vi-LAD, SSIM
    "consistency": ("consistency",),  # DSDrive
    "all": ("align", "agents", "recon", "attention", "consistency"),
}
LOSS_WEIGHTS = {"imitation": 1.0, "align": 0.5, "agents": 0.2, "recon": 0.5, "attention": 0.5, "consistency": 0.5}
TEACHERS = ("expert", "openai-vlm", "hf-vlm")


@dataclass
class DrivingRecipe(RunOutputs):
    """A privileged expert (or a VLM) explains highway-env scenes; a pixel planner learns to drive and to explain."""

    output_dir: str = field(default="runs/driving/full", metadata={"help": "shards, store, students, exports"})
    scenarios: list[str] = field(
        default_factory=lambda: list(TRAINING_SCENARIOS), metadata={"help": "highway-env scenes (training and tests)"}
    )
    shift_scenarios: list[str] = field(
        default_factory=lambda: list(SHIFTED_SCENARIOS),
        metadata={"help": "closed loop only, under distribution shift: highway-dense (density 1.5), highway-4lanes"},
    )
    train_episodes: int = field(default=60, metadata={"help": "expert episodes per scenario for training"})
    # The intersection is where imitation crashed most (missed brakes): ten times its episodes, a fifth of them drawn
    # each epoch, cut its crashes there from 0.085 to 0.052 (200 episodes, the same expert) within the 90-minute
    # budget (docs/results/driving_epoch_share)
    episode_scale: dict[str, float] = field(
        default_factory=lambda: {"intersection": 10.0},
        metadata={"help": "scenario -> multiple of train_episodes and dagger_episodes for it; the extra episodes join "
                  "the 100% budget only, like DAgger's frames ({}: none; entries for scenarios not run are ignored)"},
    )  # fmt: skip
    epoch_share: dict[str, float] = field(
        default_factory=lambda: {"intersection": 0.2},
        metadata={"help": "scenario -> share of its frames one epoch of a planner trained on all the frames draws, "
                  "afresh each epoch ({intersection: 0.2} beside episode_scale {intersection: 10}: ten times the "
                  "episodes for twice the steps); the smaller budgets' planners see every frame ({}: all frames)"},
    )  # fmt: skip
    val_episodes: int = field(default=15, metadata={"help": "expert episodes per scenario for open-loop metrics"})
    eval_episodes: int = field(
        default=20,
        metadata={"help": "closed-loop episodes per scenario, driven by every trained planner and the expert"},
    )
    seed: int = field(default=0, metadata={"help": "data seed (episodes derive from it)"})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "training seeds per variant"})
    variants: list[str] = field(default_factory=lambda: list(VARIANTS), metadata={"help": "ablation variants"})
    budgets: list[float] = field(
        default_factory=lambda: [0.1, 0.25, 1.0],
        metadata={"help": "shares of the training episodes the planners train on (the data-budget ablation)"},
    )
    ablate_up_to: float = field(
        default=0.1,
        metadata={"help": "every variant trains at budgets up to this share; above it imitation and all only (time)"},
    )
    backbone: str = field(
        default="tiny", metadata={"help": "planner backbone of the ablation: tiny | efficientnet-lite0"}
    )
    extra_backbone: str = field(
        default="",
        metadata={"help": "a second backbone trained as imitation and all, first seed only ('' to skip)"},
    )
    frames: int = field(default=2, metadata={"help": "stacked frames per input"})
    camera: str = field(
        default="ego",
        metadata={"help": "what the planner sees: square64 (64x64, the first planners') | ego (128x64 at 1.75 px/m)"},
    )
    token_stride: int = field(
        default=4, metadata={"help": "pixels per scene token (tiny backbone: 4 or 8; efficientnet-lite0: 8)"}
    )
    dagger_rounds: int = field(
        default=2,
        metadata={
            "help": "DAgger rounds after the expert's episodes: an imitation planner drives, the expert labels "
            "(their frames join the 100% budget only)"
        },
    )
    dagger_episodes: int = field(default=30, metadata={"help": "episodes per scenario in each DAgger round"})
    gate_epochs: int = field(
        default=200, metadata={"help": "epochs of the gate: an MLP cloning the expert from privileged state"}
    )
    # on: on 200 episodes per scenario the clone without them crashed in 0.160 of highway's (expert 0.015), 42 of 45
    # crashes from a lane change it missed; with them 0.025 (docs/results/driving_gate_slots)
    gate_lane_slots: bool = field(
        default=True,
        metadata={"help": "the gate also reads the nearest car ahead and behind in each lane next to the ego "
                  "(domains.driving.state.lane_slots), not only the cars by distance"},
    )  # fmt: skip
    # 2 since the full run /work/run-gdag (74.1 min, the rounds 4.4 of them): on 200 further episodes per scenario
    # its clone crashed in 2 / 4 / 12 / 3 highway / merge / intersection / roundabout ones, the previous run's clone
    # without rounds in 5 / 6 / 16 / 4 (expert 3 / 0 / 5 / 2; paired p = 0.13 pooled; docs/results/driving_run_gdag)
    gate_dagger_rounds: int = field(
        default=2,
        metadata={"help": "DAgger rounds of the gate: its state clone drives dagger_episodes per scenario (scaled by "
                  "episode_scale), the expert labels every step, the clone is retrained on all the states so far"},
    )  # fmt: skip
    # 25, not 40: DAgger doubles the full-budget frames; at 40 epochs the full profile took 94 min (goal 90), at 25
    # (and budget_epochs 75) 75.2 min, imitation success 0.77 as before (docs/results/driving.md)
    epochs: int = field(default=25, metadata={"help": "training epochs (tiny backbone, 100% budget)"})
    # 75: at 25 epochs every 10% planner drove like constant IDLE; at 500 steps (84 epochs) none did, but the 25%
    # imitation planners (36 epochs) drove highway and merge like IDLE until 1000 steps (72 epochs)
    budget_epochs: int = field(
        default=75,
        metadata={"help": "training epochs of the planners on a share (< 100%) of the expert's frames: few steps an "
                  "epoch"},
    )  # fmt: skip
    extra_epochs: int = field(default=4, metadata={"help": "training epochs of the extra backbone"})
    batch_size: int = field(default=64, metadata={"help": "frames per step"})
    lr: float = field(default=3e-3, metadata={"help": "peak AdamW learning rate"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW decoupled weight decay"})
    # auto: on a 2-core AMD EPYC with bf16 instructions the full profile took 95.1 min in fp32 (commit ed5990a's
    # report) and 65.4 min in bf16 autocast (docs/results/driving.md, which says what each run trained in)
    mixed_precision: str = field(
        default="auto",
        metadata={"help": "planner training precision: auto (bf16 where the CPU or GPU runs it natively) | bf16 | no"},
    )
    weights: dict[str, float] = field(
        default_factory=lambda: dict(LOSS_WEIGHTS), metadata={"help": "loss weight of each term a variant uses"}
    )
    class_weight_power: float = field(
        default=0.5,
        metadata={"help": "imitation CE weight of each action ∝ frequency^-power: 0 plain, 1 balanced (IDLE is most)"},
    )
    waypoint_weight: float = field(
        default=0.1, metadata={"help": "imitation: weight of the waypoint L2 (metres) beside the action CE"}
    )
    clearance_weight: float = field(
        default=0.0,
        metadata={"help": "imitation: weight of the regression on the expert's clearance of every action (its "
                  "scores; 0: off)"},
    )  # fmt: skip
    critical_weight: float = field(
        default=0.0,
        metadata={"help": "imitation: frames on which the expert found keeping lane and speed unsafe count 1 + this "
                  "many times in the action cross-entropy (0: as any other)"},
    )  # fmt: skip
    agents_temperature: float = field(default=0.1, metadata={"help": "VLP agent InfoNCE temperature (Eq. 12)"})
    consistency_temperature: float = field(
        default=0.1, metadata={"help": "DSDrive: temperature of the reasoning head's implied-action softmax"}
    )
    mask_ratio: float = field(default=0.5, metadata={"help": "DiMA: share of scene tokens masked (Eq. 11)"})
    teacher: str = field(default="expert", metadata={"help": "rationale source: expert | openai-vlm | hf-vlm"})
    expert: ExpertConfig = field(
        default_factory=ExpertConfig, metadata={"help": "the expert's safety margins (it labels every frame)"}
    )
    encoder_adapt_steps: int = field(
        default=200,
        metadata={"help": "adapt the rationale encoder (MiniLM-L6) on BDD-X action/justification pairs (0: off)"},
    )
    bddx_path: str = field(default="", metadata={"help": "BDD-X folder (default: the dataset registry finds it)"})
    teacher_model: str = field(default="", metadata={"help": "VLM: served model name (openai-vlm) or folder (hf-vlm)"})
    teacher_url: str = field(default="", metadata={"help": "VLM: base URL of the OpenAI-compatible server"})
    workers: int = field(default=2, metadata={"help": "processes for collection and the closed-loop evaluation"})
    bench_repeats: int = field(default=300, metadata={"help": "timed batch-1 runs per exported planner"})
    progress: bool = field(default=True, metadata={"help": "progress bars"})

    def __post_init__(self) -> None:
        unknown = sorted(set(self.scenarios) - set(TRAINING_SCENARIOS))
        check(not unknown, "scenarios", f"unknown {unknown}; choose from {sorted(TRAINING_SCENARIOS)}")
        unknown = sorted(set(self.shift_scenarios) - set(SHIFTED_SCENARIOS))
        check(not unknown, "shift_scenarios", f"unknown {unknown}; choose from {sorted(SHIFTED_SCENARIOS)}")
        untrained = sorted(s for s in self.shift_scenarios if SHIFTED_SCENARIOS[s].kind not in self.scenarios)
        check(not untrained, "shift_scenarios", f"{untrained} shift scenarios the planners are not trained on")
        bad = sorted(set(self.variants) - set(VARIANTS))
        check(not bad, "variants", f"unknown {bad}; choose from {sorted(VARIANTS)}")
        check("imitation" in self.variants, "variants", "the imitation-only baseline is required")
        check(1.0 in self.budgets and all(0 < b <= 1 for b in self.budgets), "budgets",
              "shares in (0, 1], the whole data (1.0) among them")  # fmt: skip
        check(self.teacher in TEACHERS, "teacher", f"must be one of {TEACHERS}")
        check(self.teacher == "expert" or bool(self.teacher_model), "teacher_model", "a VLM teacher needs a model")
        check(self.train_episodes >= 1 and self.val_episodes >= 1, "train_episodes", "must be >= 1")
        check(self.eval_episodes >= 1, "eval_episodes", "must be >= 1")
        for key in ("episode_scale", "epoch_share"):  # scenario -> number
            unknown = sorted(set(getattr(self, key)) - set(TRAINING_SCENARIOS))
            check(not unknown, key, f"unknown scenarios {unknown}; choose from {sorted(TRAINING_SCENARIOS)}")
        check(all(scale >= 1 for scale in self.episode_scale.values()), "episode_scale", "multiples >= 1")
        check(all(0 < share <= 1 for share in self.epoch_share.values()), "epoch_share", "shares in (0, 1]")
        # What takes effect: the default's intersection entry must not refuse a run without the intersection, and a
        # multiple or share of 1 is the same as none (so it leaves the planners' fingerprints as they were)
        self.episode_scale = {s: x for s, x in self.episode_scale.items() if s in self.scenarios and x != 1}
        self.epoch_share = {s: x for s, x in self.epoch_share.items() if s in self.scenarios and x != 1}
        check(len(self.seeds) >= 1, "seeds", "need at least one training seed")
        check(self.frames >= 1, "frames", "must be >= 1")
        check(self.camera in CAMERAS, "camera", f"choose from {sorted(CAMERAS)}")
        check(self.token_stride in (4, 8), "token_stride", "4 or 8")
        check(self.token_stride == 8 or "efficientnet-lite0" not in (self.backbone, self.extra_backbone),
              "token_stride", "efficientnet-lite0 gives tokens at stride 8 only")  # fmt: skip
        check(self.gate_epochs >= 1, "gate_epochs", "must be >= 1")
        check(self.budget_epochs >= 1, "budget_epochs", "must be >= 1")
        check(self.dagger_rounds >= 0 and self.dagger_episodes >= 1, "dagger_rounds", "rounds >= 0, episodes >= 1")
        check(self.gate_dagger_rounds >= 0, "gate_dagger_rounds", "must be >= 0")
        missing = sorted(
            {t for v in self.variants for t in VARIANTS[v]} - set(self.weights) | {"imitation"} - set(self.weights)
        )
        check(not missing, "weights", f"no weight for the terms {missing}")
        check(min(self.agents_temperature, self.consistency_temperature) > 0, "agents_temperature", "must be > 0")
        check(0 < self.mask_ratio < 1, "mask_ratio", "must be in (0, 1)")
        check(0 <= self.class_weight_power <= 1, "class_weight_power", "must be in [0, 1]")
        check(self.clearance_weight >= 0, "clearance_weight", "must be >= 0")
        check(self.critical_weight >= 0, "critical_weight", "must be >= 0")
        check(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        check(self.mixed_precision in ("auto", "bf16", "no"), "mixed_precision", "auto, bf16 or no")
        check(0 < self.ablate_up_to <= 1, "ablate_up_to", "a share in (0, 1]")
        check(self.encoder_adapt_steps >= 0, "encoder_adapt_steps", "must be >= 0")


def scaled_episodes(recipe: DrivingRecipe, episodes: int) -> tuple[tuple[str, int], ...]:
    """(scenario, episodes) of the scenarios ``episode_scale`` gives more than ``episodes`` (a CollectPlan's
    ``scenario_episodes``; the recipe has already dropped multiples of 1)."""
    return tuple((s, round(episodes * scale)) for s, scale in sorted(recipe.episode_scale.items()))


def planner_epochs(recipe: DrivingRecipe, backbone: str, budget: float) -> int:
    """Epochs of a ``backbone`` planner trained on ``budget`` of the frames: a small budget has few steps an epoch."""
    if backbone != recipe.backbone:
        return recipe.extra_epochs
    return recipe.epochs if budget == 1 else recipe.budget_epochs


def planner_kwargs(recipe: DrivingRecipe, backbone: str) -> dict[str, Any]:
    """What rebuilds a planner of ``backbone`` for this recipe (saved with every export)."""
    return {"backbone": backbone, "frames": recipe.frames, "num_actions": len(ACTIONS),
            "frame_shape": list(camera(recipe.camera).shape), "token_stride": recipe.token_stride}  # fmt: skip


PROFILES = {
    "full": [],
    "quick": [
        "output_dir=runs/driving/quick",
        # The first planners' small camera and no ablation, shift or BDD-X adaptation: a few-minute smoke run.
        "camera=square64",
        "token_stride=8",
        "shift_scenarios=[]",
        "budgets=[1.0]",
        "encoder_adapt_steps=0",
        "dagger_rounds=0",
        "gate_dagger_rounds=1",
        "train_episodes=6",
        "episode_scale={}",
        "epoch_share={}",
        "val_episodes=2",
        "eval_episodes=4",
        "seeds=[0]",
        "variants=[imitation,all]",
        "extra_backbone=",
        "epochs=3",
        "bench_repeats=50",
    ],
}


def full_recipe(settings: list[str] | None = None) -> DrivingRecipe:
    """The full profile's recipe with ``settings`` on top: what a finished full run was made with, given its own
    ``--set`` settings (the benchmarks that read a run rebuild its expert and planners from it)."""
    from suite.config import load_config

    return load_config(DrivingRecipe, None, [*PROFILES["full"], *(settings or [])])


# Settings added after runs began to record their recipe (commit 0cd1417), each with the value that gives what a run
# made before it did: a record without the key is such a run (records are complete), and today's default would misread
# it; a run with no record predates them all
ADDED_AFTER_RECORDING = {
    "episode_scale": "{}",  # commit 58903d0
    "epoch_share": "{}",  # commit 26f3c8e
    "gate_lane_slots": "false",  # commit 450ab80
    "gate_dagger_rounds": "0",  # commit 99ce0f4 (the full profile's default 2 since the run /work/run-gdag)
}
# The full profile's defaults of a run with no record, beside those: the expert read the other cars' routes then
BEFORE_RECORDED_RECIPES = ("expert.other_routes=known", *(f"{k}={v}" for k, v in ADDED_AFTER_RECORDING.items()))


def run_recipe(run_dir: str | Path, settings: list[str] | None = None) -> DrivingRecipe:
    """The recipe the driving run in ``run_dir`` was made with (the ``recipe.yaml`` that ``distill run`` writes
    there) with ``settings`` on top. A run made before runs recorded their recipe has none: then the full profile with
    ``settings``, which must repeat that run's own ``--set`` settings (said on the console)."""
    from suite.config import RUN_RECIPE_FILE, read_run_recipe

    recorded = read_run_recipe(DrivingRecipe, run_dir, settings, added_later=ADDED_AFTER_RECORDING)
    if recorded is not None:
        return recorded
    print(f"[driving] {run_dir} has no {RUN_RECIPE_FILE} (a run made before runs recorded their recipe): assuming "
          f"the full profile of then ({' '.join(BEFORE_RECORDED_RECIPES)}) with {settings or 'no'} --set settings",
          flush=True)  # fmt: skip
    return full_recipe([*BEFORE_RECORDED_RECIPES, *(settings or [])])
