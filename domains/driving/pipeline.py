"""``distill run driving``: collect -> teacher rationales and embeddings, then the shared stages
(:mod:`suite.runner`): the planner ablation x seeds, open and closed loop (with the expert and a constant-action
baseline on the same episodes), export (+ parity), latency; then the report. A rerun reuses the shards, the stored
embeddings and every planner whose recipe did not change."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from domains.driving import scenarios as sim
from domains.driving.data import (
    DrivingData,
    action_prototypes,
    action_weights,
    budget_rows,
    epoch_draws,
    make_collate,
)
from domains.driving.evaluate import (
    action_metrics,
    closed_loop,
    constant_open_loop,
    open_loop_metrics,
    same_as_constant,
    summarise_all,
)
from domains.driving.policies import PolicySpec, constant_spec
from domains.driving.recipe import VARIANTS, DrivingRecipe, planner_epochs, planner_kwargs
from domains.driving.state import GATE_WEIGHTS
from domains.driving.teacher_data import adapt_on_bddx, load_splits, sample_frames, save_rationale_bank
from domains.driving.terms import build_terms, distils_from_teacher
from suite.runner import ModelResult, Pack, Trained, Variant, evaluate_variants, export_first_seeds, train_variants
from suite.stages import StageLedger
from suite.trainer import TrainerConfig, resolve_mixed_precision

# -- the pack ----------------------------------------------------------------------------------------------------


# Trivial policies every planner must beat: the first planners drove exactly like constant IDLE (issue 14). The
# majority class (the expert's most frequent training action, driven as a constant) is added per run.
CONSTANTS = {"constant-IDLE": "IDLE", "constant-SLOWER": "SLOWER"}
MAJORITY = "majority-class"
GATE = "state-clone"  # the expert cloned from privileged state: what imitation can reach before pixels
# What trains at the budgets above ``ablate_up_to`` (the 90-minute limit) and on the extra backbone.
LEAN_VARIANTS = ("imitation", "all")


class DrivingPack(Pack):
    """The expert's (or a VLM's) rationales distilled into pixel planners, as the shared stages see them."""

    def __init__(self, recipe: DrivingRecipe, ledger: StageLedger, resume: bool):
        self.recipe, self.resume, self.out = recipe, resume, ledger.root
        self.precision = resolve_mixed_precision(recipe.mixed_precision)  # what the planners train in, on this machine
        inputs = {k: getattr(recipe, k) for k in ("scenarios", "train_episodes", "val_episodes", "seed", "frames",
                                                  "camera", "token_stride", "teacher", "teacher_model",
                                                  "teacher_url", "expert")}  # fmt: skip
        if recipe.episode_scale:  # only then: older runs' teacher stage keeps its fingerprint
            inputs["episode_scale"] = recipe.episode_scale
        self.encoder_check: dict[str, Any] = {}  # BDD-X retrieval before / after adapting the rationale encoder
        encoder, first = None, []
        self.encoder_path: Path | None = None
        if recipe.encoder_adapt_steps:
            steps = {"steps": recipe.encoder_adapt_steps, "bddx_path": recipe.bddx_path}
            adapted = ledger.run("text_encoder", steps, lambda out: adapt_on_bddx(recipe, out), lambda out: out)
            encoder, first = adapted / "encoder", ["text_encoder"]
            self.encoder_path = encoder
            self.encoder_check = json.loads((adapted / "retrieval.json").read_text())
        inputs["encoder_adapt_steps"] = recipe.encoder_adapt_steps
        self.train_data, self.val = ledger.run("teacher", inputs, lambda out: load_splits(recipe, self.out, encoder),
                                               after=first)  # fmt: skip
        self.expert_data = self.train_data  # the expert's own frames (DAgger's rounds join train_data below)
        self.gate_weights = ledger.run("gate", self.gate_settings(), self.train_gate, lambda out: out / GATE_WEIGHTS,
                                       after=["teacher"])  # fmt: skip
        if recipe.gate_dagger_rounds:  # the clone drives, the expert labels: states the expert never visits
            from domains.driving.dagger import gate_rounds

            self.gate_weights = gate_rounds(self, ledger, self.gate_weights)
        self.data_stage = "teacher"  # what the planners' training frames depend on
        # planner variant -> share of the training episodes it learns from
        self.budget_of = {model_name(b, v, budget): budget for b, v, _, budget in runs(recipe)}
        self._fit_statistics()
        # The reasoning-loss ablation's smaller budgets are shares of the expert's demonstrations alone
        # (expert_data): DAgger's frames come from planners that learned on all of them, which would leak the full
        # budget into the small.
        if recipe.dagger_rounds:  # the expert's frames plus the states its learners visit
            from domains.driving.dagger import aggregate

            self.train_data, self.data_stage = aggregate(self, ledger)
            self._fit_statistics()
        self.closed: dict[str, dict[str, dict[str, float]]] = {}  # policy -> scenario -> metrics
        self.episodes: dict[str, Any] = {}  # policy -> scenario -> episode rows (same seeds for every policy)
        self.majority = sim.ACTIONS[int(torch.bincount(self.train_data.actions).argmax())]
        self.baseline_actions = {**CONSTANTS, MAJORITY: self.majority}

    def _fit_statistics(self) -> None:
        """Action prototypes (DSDrive) and class weights (imitation) of the current training frames."""
        self.prototypes = action_prototypes(self.train_data, len(sim.ACTIONS))
        self.class_weights = action_weights(self.train_data, len(sim.ACTIONS), self.recipe.class_weight_power)

    def gate_settings(self) -> dict[str, Any]:
        """What the gate's clone is trained with (its stages' fingerprints)."""
        gate = {"epochs": self.recipe.gate_epochs, "seed": self.recipe.seeds[0]}
        if self.recipe.gate_lane_slots:  # only then: a gate without them keeps its stage fingerprint
            gate["lane_slots"] = True
        return gate

    def train_gate(self, out: Path) -> Path:
        print(f"[driving] gate: cloning the expert from privileged state ({len(self.expert_data)} frames)")
        return self.save_gate(self.expert_data.state, self.expert_data.actions, out)

    def save_gate(self, states: torch.Tensor, actions: torch.Tensor, out: Path) -> Path:
        """The gate's clone of the expert's ``actions`` from ``states``, saved in ``out``."""
        from domains.driving.state import save_cloner, train_state_cloner

        cloner = train_state_cloner(states, actions, self.recipe.gate_epochs, seed=self.recipe.seeds[0],
                                    slots=self.recipe.gate_lane_slots)  # fmt: skip
        return save_cloner(cloner, out / GATE_WEIGHTS)

    def gate_result(self) -> ModelResult:
        """The state clone: open loop on the validation frames' states, closed loop on the shared episodes."""
        from domains.driving.state import load_cloner

        with torch.inference_mode():
            predicted = load_cloner(self.gate_weights)(self.val.state).argmax(-1)
        return ModelResult.single("gate", {"open_loop": action_metrics(predicted, self.val), **self.closed[GATE]})

    def variants(self) -> list[Variant]:
        recipe, out = self.recipe, []
        for backbone, variant, seeds, budget in runs(recipe):
            terms = {t: recipe.weights[t] for t in ("imitation", *VARIANTS[variant])}
            name = model_name(backbone, variant, budget)
            out.append(Variant(name, backbone, terms, seeds, distils_from_teacher(VARIANTS[variant])))
        return out

    def _settings(self) -> dict[str, float]:
        names = ("waypoint_weight", "clearance_weight", "critical_weight", "agents_temperature",
                 "consistency_temperature", "mask_ratio")  # fmt: skip
        return {name: getattr(self.recipe, name) for name in names} | {"keep_margin": self.recipe.expert.keep_margin}

    def student_settings(self, variant: Variant) -> Any:
        recipe = self.recipe
        budget = self.budget_of.get(variant.name, 1.0)
        epochs = planner_epochs(recipe, variant.student, budget)
        settings = {"planner": planner_kwargs(recipe, variant.student), "epochs": epochs,
                    "batch_size": recipe.batch_size, "lr": recipe.lr, "weight_decay": recipe.weight_decay,
                    "terms": self._settings(), "class_weight_power": recipe.class_weight_power,
                    "budget": budget, "mixed_precision": self.precision}  # fmt: skip
        if budget == 1 and recipe.epoch_share:  # only then: older runs' planners keep their fingerprints
            settings["epoch_share"] = dict(sorted(recipe.epoch_share.items()))
        return settings

    def train(self, variant: Variant, seed: int, directory: Path) -> torch.nn.Module:
        return self.fit_planner(variant, seed, directory, self.frames_for(self.budget_of.get(variant.name, 1.0)))

    def frames_for(self, budget: float) -> DrivingData:
        """The training frames of a data budget: all of them (DAgger's and ``episode_scale``'s extra episodes too)
        at 1, else that share of the expert's first ``train_episodes`` episodes of each scenario."""
        expert = self.expert_data
        return self.train_data if budget == 1 else expert.rows(budget_rows(expert, budget, self.recipe.train_episodes))

    def fit_planner(self, variant: Variant, seed: int, directory: Path, data: DrivingData) -> torch.nn.Module:
        """Train ``variant``'s planner on ``data`` (the training frames; a DAgger round's aggregate so far)."""
        from safetensors.torch import save_model

        from suite.distiller import Distiller
        from suite.students.planner import PixelPlanner
        from suite.trainer import Trainer, seed_everything

        settings = self.student_settings(variant)
        draws = epoch_draws(data, settings.get("epoch_share", {}))
        drawn = f" (an epoch draws {sum(n for _, n in draws)} of them: `epoch_share`)" if draws else ""
        print(f"[driving] training {variant.name} seed {seed} on {len(data)} frames{drawn}")
        seed_everything(seed)
        planner = PixelPlanner(**planner_kwargs(self.recipe, variant.student), pretrained=True)
        variant_terms = tuple(t for t in variant.terms if t != "imitation")
        terms = build_terms(variant_terms, planner, self.prototypes, self.class_weights, self._settings())
        config = TrainerConfig(
            output_dir=str(directory), epochs=settings["epochs"], batch_size=self.recipe.batch_size, lr=self.recipe.lr,
            weight_decay=self.recipe.weight_decay, seed=seed, warmup_ratio=0.05, schedule="cosine", log_every=50,
            progress=self.recipe.progress, tensorboard=False, mixed_precision=self.precision,
        )  # fmt: skip
        Trainer(Distiller(planner, terms, variant.terms), config, data, make_collate(data),
                epoch_draws=draws).fit(self.resume)  # fmt: skip
        save_model(planner, str(directory / "model.safetensors"))
        return planner.eval()

    def load(self, variant: Variant, seed: int, directory: Path) -> torch.nn.Module:
        from safetensors.torch import load_model

        from suite.students.planner import PixelPlanner

        planner = PixelPlanner(**planner_kwargs(self.recipe, variant.student), pretrained=False)
        load_model(planner, str(directory / "model.safetensors"))
        return planner.eval()

    def evaluate(self, trained: list[Trained]) -> list[dict]:
        """Open loop on the validation frames; closed loop for every planner, the expert and the baselines at once
        (the same seeded episodes, in worker processes)."""
        recipe = self.recipe
        specs = reference_policies(recipe, self.gate_weights)
        shared = next((name for name, a in CONSTANTS.items() if a == self.majority), None)
        if shared is None:  # the majority action is no other constant's: drive it too
            specs[MAJORITY] = constant_spec(self.majority)
        for run in trained:
            specs[f"{run.variant.name}|{run.seed}"] = planner_policy(recipe, run.variant.student, run.directory)
        print(f"[driving] closed loop: {recipe.eval_episodes} episodes per scenario for each of {len(specs)} policies")
        driven = (*recipe.scenarios, *recipe.shift_scenarios)
        self.episodes = closed_loop(specs, driven, recipe.eval_episodes, recipe.seed,
                                    recipe.workers, progress=recipe.progress, camera=recipe.camera)  # fmt: skip
        if shared is not None:  # the same constant policy: the same episodes
            self.episodes[MAJORITY] = self.episodes[shared]
        self.closed = summarise_all(self.episodes)
        return [{"open_loop": open_loop_metrics(run.model, self.val), **self.closed[f"{run.variant.name}|{run.seed}"]}
                for run in trained]  # fmt: skip

    def baselines(self) -> dict[str, dict]:
        return {name: {"open_loop": constant_open_loop(action, self.val), **self.closed[name]}
                for name, action in self.baseline_actions.items()}  # fmt: skip

    def constant_lookalikes(self, trained: list[Trained]) -> dict[str, list[str]]:
        """``{planner|seed: [constant baselines]}``: the planners that took exactly a constant policy's actions in
        every closed-loop episode (they never left their default)."""
        out: dict[str, list[str]] = {}
        for run in trained:
            key = f"{run.variant.name}|{run.seed}"
            same = [name for name in CONSTANTS if all(same_as_constant(self.episodes[key][s], self.episodes[name][s])
                                                      for s in self.recipe.scenarios)]  # fmt: skip
            if same:
                out[key] = same
        return out

    def export(self, trained: Trained, target: Path) -> Path | None:
        return export_planner(self.recipe, trained.model, trained.variant.student, self.val, target)


def gate_weights_in(run: Path, recipe: DrivingRecipe) -> Path:
    """Where the finished run in ``run`` keeps its gate's final weights: its last DAgger round's, or the plain
    clone's."""
    from domains.driving.dagger import GATE_STAGE

    stage = GATE_STAGE.format(recipe.gate_dagger_rounds) if recipe.gate_dagger_rounds else "gate"
    return run / stage / GATE_WEIGHTS


def reference_policies(recipe: DrivingRecipe, gate_weights: Path) -> dict[str, PolicySpec]:
    """What every planner is driven beside: the expert, its state clone (the gate) and the constant baselines."""
    expert = PolicySpec("expert", kwargs=tuple(dataclasses.asdict(recipe.expert).items()))
    specs = {"expert": expert, GATE: PolicySpec("state", str(gate_weights))}
    return specs | {name: constant_spec(action) for name, action in CONSTANTS.items()}


def planner_policy(recipe: DrivingRecipe, backbone: str, directory: Path) -> PolicySpec:
    """A trained planner (``directory``: its training stage, holding ``model.safetensors``) as a closed-loop policy."""
    kwargs = tuple(sorted(planner_kwargs(recipe, backbone).items()))
    return PolicySpec("planner", str(directory / "model.safetensors"), kwargs)


def runs(recipe: DrivingRecipe) -> list[tuple[str, str, list[int], float]]:
    """(backbone, variant, seeds, data budget) of every planner variant the recipe trains: each variant at the
    budgets up to ``ablate_up_to`` (the reasoning-loss ablation), imitation and all at the larger ones, the extra
    backbone on the whole data with its first seed."""
    plan = [(recipe.backbone, v, list(recipe.seeds), b) for b in sorted(recipe.budgets) for v in recipe.variants
            if b <= recipe.ablate_up_to or v in LEAN_VARIANTS]  # fmt: skip
    if recipe.extra_backbone:
        plan += [(recipe.extra_backbone, v, recipe.seeds[:1], 1.0) for v in LEAN_VARIANTS if v in recipe.variants]
    return plan


def model_name(backbone: str, variant: str, budget: float = 1.0) -> str:
    """``tiny-all``; below the whole data, its share: ``tiny-all-10pct``."""
    return f"{backbone}-{variant}" if budget == 1 else f"{backbone}-{variant}-{round(100 * budget)}pct"


# -- the run -----------------------------------------------------------------------------------------------------


def run(recipe: DrivingRecipe, resume: bool = False) -> dict[str, Any]:
    from domains.driving.report import write_model_card, write_report

    started = time.perf_counter()
    ledger = StageLedger(recipe.output_dir)
    pack = DrivingPack(recipe, ledger, resume)
    trained = train_variants(pack, ledger, after=[pack.data_stage])
    results = evaluate_variants(pack, trained)
    results = {"expert": ModelResult.single("teacher", pack.closed["expert"]), GATE: pack.gate_result(), **results}
    exports = export_first_seeds(pack, trained, ledger.root / "export")
    save_rationale_bank([pack.train_data, pack.val], ledger.root / "rationale_bank.json")
    samples = sample_frames(pack.val, ledger.root / "samples.png")
    bench = benchmark(recipe, exports, ledger.root)
    run_result = DrivingResult(recipe, results, exports, bench, len(pack.train_data), len(pack.val), samples,
                               pack.constant_lookalikes(trained), pack.episodes, pack.encoder_check,
                               pack.precision)  # fmt: skip
    doc = write_report(run_result, seconds=time.perf_counter() - started)
    write_model_card(run_result, doc)
    shipped = model_name(recipe.backbone, "all")
    if shipped in exports:  # the planner the model card describes, beside it (--publish: models/driving/)
        from domains.driving.release import release_run

        release_run(ledger.root, recipe.model_card_path, shipped, tuple(recipe.scenarios), doc["command"])
    return doc


@dataclass
class DrivingResult:
    """What the report is written from."""

    recipe: DrivingRecipe
    results: dict[str, ModelResult]
    exports: dict[str, Path]
    bench: dict[str, Any]
    train_frames: int
    val_frames: int
    samples: list[dict[str, Any]]
    lookalikes: dict[str, list[str]]  # planner|seed -> the constant policies it drove exactly like
    episodes: dict[str, Any] = field(default_factory=dict)  # policy (planner|seed) -> scenario -> episode rows
    text_encoder: dict[str, Any] = field(default_factory=dict)  # BDD-X retrieval before / after adapting it
    precision: str = "no"  # what the planners trained in: bf16 (autocast) or no (fp32)


# -- export and latency ------------------------------------------------------------------------------------------


def export_planner(recipe: DrivingRecipe, planner: torch.nn.Module, backbone: str, val: DrivingData,
                   target: Path) -> Path:  # fmt: skip
    """A planner -> ONNX (logits, waypoints, reasoning), parity-checked on validation frames it was not traced on."""
    from suite.students.planner import export_planner as export

    kwargs = planner_kwargs(recipe, backbone)
    return export(
        planner, kwargs, list(sim.ACTIONS), val.images, val.speed, target, "MIT (highway-env data, generated)"
    )


def benchmark(recipe: DrivingRecipe, exports: dict[str, Path], out: Path) -> dict[str, Any]:
    """Batch-1 onnxruntime CPU latency of every exported planner on one thread (the goal's edge budget), plus eager
    PyTorch for comparison."""
    from suite.bench import run_benchmark

    if not exports:
        return {}
    return run_benchmark(
        list(exports.values()), batch_sizes=(1,), providers=("cpu",), variants=("fp32",), out_dir=out / "bench",
        warmup=20, repeats=recipe.bench_repeats, progress=recipe.progress, intra_op_threads=1,
    )  # fmt: skip
