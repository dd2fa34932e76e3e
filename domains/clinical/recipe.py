"""The clinical recipe: three decision-support tasks, rationale distillation at four data budgets; defaults are the
full profile."""

from __future__ import annotations

from dataclasses import dataclass, field

from domains.clinical.data import TASKS
from suite.config import check
from suite.losses import SoftLabelKDConfig
from suite.losses.rationale import RationaleConfig
from suite.runner import RunOutputs
from suite.trainer import TrainerConfig


def _methods() -> dict[str, dict]:
    """Label-only, logit KD (Eq. 1), distilling step-by-step (Eq. 4) and KPOD (Eq. 5) on the same student."""
    return {
        "label_only": {"terms": {"task": 1.0}},
        "logit_kd": {"terms": {"task": 0.5, "kd": 0.5}},
        "step_by_step": {"terms": {"task": 1.0, "rationale": 1.0}},
        "kpod": {"terms": {"task": 1.0, "rationale": 1.0}, "kpod": True},
    }


def _teacher_trainer() -> TrainerConfig:
    return TrainerConfig(epochs=6, batch_size=16, lr=1e-4, warmup_ratio=0.1, log_every=20, group_by_length=True)


def _student_trainer() -> TrainerConfig:
    # 10 epochs (patience 3): the full profile's 144 students have to train within one sitting on 2 cores
    return TrainerConfig(epochs=10, batch_size=16, lr=1e-3, warmup_ratio=0.05, log_every=50, group_by_length=True,
                         early_stopping_patience=3)  # fmt: skip


@dataclass
class ClinicalRecipe(RunOutputs):
    """PubMedQA, Symptom2Disease and MTSamples: a MiniLM teacher -> small students that answer and explain."""

    output_dir: str = field(default="runs/clinical/full", metadata={"help": "teachers, stores, students, exports"})
    tasks: list[str] = field(default_factory=lambda: list(TASKS), metadata={"help": ", ".join(TASKS)})
    data_paths: dict[str, str] = field(default_factory=dict, metadata={"help": "task -> folder (default: registry)"})
    teacher: str = field(default="finetune", metadata={"help": "finetune (teacher_model on the task) | hf (a folder)"})
    teacher_model: str = field(
        default="minilm-l6", metadata={"help": "finetune: minilm-l6 or a local encoder; hf: a fine-tuned classifier"}
    )
    max_length: dict[str, int] = field(
        default_factory=lambda: {"pubmedqa": 256, "symptom2disease": 96, "mtsamples": 256},
        metadata={"help": "input tokens per task (256, not more: 144 students train in one sitting on 2 cores)"},
    )
    rationale_source: dict[str, str] = field(
        default_factory=lambda: {"pubmedqa": "gold", "symptom2disease": "teacher", "mtsamples": "teacher"},
        metadata={"help": "task -> gold (the data's) | teacher (its extractive evidence)"},
    )
    differential: bool = field(
        default=False, metadata={"help": "teacher rationales also name its runner-up (a differential diagnosis)"}
    )
    equal_steps: bool = field(
        default=True, metadata={"help": "every budget gets the optimizer steps of the whole training set"}
    )
    max_rationale: int = field(default=64, metadata={"help": "rationale tokens the student learns to write"})
    budgets: list[float] = field(default_factory=lambda: [0.1, 0.25, 0.5, 1.0], metadata={"help": "training shares"})
    methods: dict[str, dict] = field(default_factory=_methods, metadata={"help": "name -> {terms, kpod}"})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "training seeds per variant"})
    student_size: str = field(default="2m", metadata={"help": "t5 student size (2m | 8m | 30m)"})
    vocab_size: int = field(default=8000, metadata={"help": "student WordPiece vocabulary"})
    kd: SoftLabelKDConfig = field(default_factory=SoftLabelKDConfig)
    kpod: RationaleConfig = field(
        default_factory=lambda: RationaleConfig(token_weights=True, start_fraction=0.4, ramp=0.5),
        metadata={"help": "KPOD: IDF token weights, 40% of each rationale's easiest steps at first, all by half-way"},
    )
    max_train_examples: int = field(default=0, metadata={"help": "cap per task (0: all)"})
    max_eval_examples: int = field(default=0, metadata={"help": "cap per test split (0: all)"})
    robustness_examples: int = field(default=200, metadata={"help": "test prefix perturbed for PDR"})
    explain_examples: int = field(default=100, metadata={"help": "test cases each explaining student writes for"})
    int8: bool = field(default=True, metadata={"help": "also export int8 (kept only within 1 point of fp32)"})
    bench_repeats: int = field(default=40, metadata={"help": "timed calls per model"})
    progress: bool = field(default=True, metadata={"help": "progress lines"})
    teacher_trainer: TrainerConfig = field(default_factory=_teacher_trainer)
    student_trainer: TrainerConfig = field(default_factory=_student_trainer)
    release: list[str] = field(
        default_factory=lambda: ["symptom2disease_b100_step_by_step", "symptom2disease_b100_step_by_step_explain"],
        metadata={"help": "models released to models/clinical (a label path and its explain path)"},
    )

    def __post_init__(self) -> None:
        unknown = sorted(set(self.tasks) - set(TASKS))
        check(not unknown and bool(self.tasks), "tasks", f"choose from {list(TASKS)}, got {self.tasks}")
        check(all(0 < b <= 1 for b in self.budgets), "budgets", "shares in (0, 1]")
        for name, method in self.methods.items():
            terms = method.get("terms", {})
            check(bool(terms) and set(terms) <= {"task", "kd", "rationale"}, f"methods.{name}.terms",
                  "weights over task, kd and rationale")  # fmt: skip
            check(set(method) <= {"terms", "kpod"}, f"methods.{name}", "keys: terms, kpod")
        for task in self.tasks:
            check(self.rationale_source.get(task) in ("gold", "teacher"), f"rationale_source.{task}",
                  "gold or teacher")  # fmt: skip
        check(len(self.seeds) >= 1, "seeds", "at least one seed")
        check(self.teacher in ("finetune", "hf"), "teacher", "finetune or hf")


PROFILES: dict[str, list[str]] = {
    # Under 10 minutes on 2 CPU cores: Symptom2Disease only, two budgets, two methods, one seed. It proves the
    # wiring; a 2-epoch teacher learns little (the full profile is the result). Students get 12 epochs: with 4 the
    # rationale decoder had not learned to state a label (agreement 30%), with 12 it had (100% at the full budget).
    "quick": [
        "output_dir=runs/clinical/quick",
        "tasks=[symptom2disease]",
        "budgets=[0.25, 1.0]",
        "methods={label_only: {terms: {task: 1.0}}, step_by_step: {terms: {task: 1.0, rationale: 1.0}}}",
        "seeds=[0]",
        "teacher_trainer.epochs=2",
        "student_trainer.epochs=12",
        "robustness_examples=60",
        "explain_examples=30",
        "bench_repeats=5",
        "release=[symptom2disease_b100_step_by_step, symptom2disease_b100_step_by_step_explain]",
    ],
    "full": [],
}
