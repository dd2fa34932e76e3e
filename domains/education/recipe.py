"""The education recipe: which data, teacher, students, loss weights and metrics; defaults are the full profile."""

from __future__ import annotations

from dataclasses import dataclass, field

from domains.education.own_data import OwnData
from suite.augment import TransferConfig
from suite.config import check
from suite.losses import MultiTeacherConfig, SoftLabelKDConfig
from suite.losses.layer_map import LayerMapConfig
from suite.losses.self_distillation import ShallowExitsConfig
from suite.pair_pack import check_listed_variants
from suite.pairs import PAIR_TERMS, PosteriorConfig
from suite.runner import RunOutputs
from suite.trainer import TrainerConfig

TASKS = ("sra", "verifier")
STUDENTS = ("tiny", "minilm2")
TEACHER_BACKENDS = ("finetune", "hf", "openai")

SRA_RUBRIC = (
    "You grade a student's answer to a science question against the reference answer.\n"
    "Question and reference: {text}\nStudent answer: {text_pair}\n"
    "Is the student answer correct or incorrect? Answer with one word: correct or incorrect."
)
OWN_DATA_RUBRIC = (  # a user's own graded answers: any subject, any set of grades
    "You grade a student's answer to a question against the reference answer.\n"
    "Question and reference: {text}\nStudent answer: {text_pair}\n"
    "Grade the student answer. Answer with one of: {labels}."
)
VERIFIER_RUBRIC = (
    "You check a worked solution to a grade-school math problem.\nProblem: {text}\nSolution: {text_pair}\n"
    "Is the final answer correct or incorrect? Answer with one word: correct or incorrect."
)


def _sra_teacher_trainer() -> TrainerConfig:
    # At lr 1e-4 for 3 epochs, three seeds ended 0.65-0.73 on unseen answers (one below the word-overlap baseline):
    # half the rate for one more epoch trades speed for steadier members
    return TrainerConfig(epochs=4, batch_size=32, lr=5e-5, warmup_ratio=0.1, log_every=20, group_by_length=True)


def _verifier_teacher_trainer() -> TrainerConfig:
    # One epoch: solutions are ~2x longer than SRA pairs, so an epoch costs ~16 min on 2 cores.
    return TrainerConfig(epochs=1, batch_size=32, lr=1e-4, warmup_ratio=0.1, log_every=20, group_by_length=True)


def _tiny_trainer() -> TrainerConfig:
    return TrainerConfig(epochs=8, batch_size=32, lr=2e-3, warmup_ratio=0.05, log_every=50, group_by_length=True)


def _minilm2_trainer() -> TrainerConfig:
    # 3 epochs: after one (220 steps) the 2-layer students' task loss was still near ln 2 and they predicted the
    # majority class
    return TrainerConfig(epochs=3, batch_size=32, lr=1e-4, warmup_ratio=0.1, log_every=50, group_by_length=True)


@dataclass
class EducationRecipe(RunOutputs):
    """Answer scoring (SemEval-2013 SRA) and solution verification (GSM8K) distilled into school-laptop students."""

    output_dir: str = field(default="runs/education/full", metadata={"help": "teachers, store, students, exports"})
    tasks: list[str] = field(default_factory=lambda: list(TASKS), metadata={"help": "sra and/or verifier"})
    data: OwnData = field(default_factory=OwnData, metadata={"help": "your own graded answers (data.path=...)"})
    sra_path: str = field(default="", metadata={"help": "SemEval folder (empty: dataset registry)"})
    sra_corpus: str = field(default="both", metadata={"help": "sciEntsBank | beetle | both"})
    sra_references: int = field(
        default=6, metadata={"help": "reference answers shown per pair (Beetle has up to 14; the first are the best)"}
    )
    gsm8k_path: str = field(default="", metadata={"help": "GSM8K folder (empty: dataset registry)"})
    verifier_test_fraction: float = field(default=0.3, metadata={"help": "share of GSM8K problems held out"})
    verifier_agreement: bool = field(
        default=True, metadata={"help": "verifier input starts with how many other solutions of the problem agree"}
    )
    verifier_rationales: int = field(
        default=300, metadata={"help": "GSM8K train problems whose human rationales augment the teacher (Eq. 4)"}
    )
    dev_fraction: float = field(default=0.1, metadata={"help": "share of training groups held out as dev"})
    dev_answers_fraction: float = field(
        default=0.1,
        metadata={"help": "and share of the other groups' answers held out too, for a task tested on unseen answers"},
    )
    max_train_examples: int = field(default=0, metadata={"help": "cap per task (0: all)"})
    max_eval_examples: int = field(default=0, metadata={"help": "cap per test split (0: all)"})
    robustness_examples: int = field(default=500, metadata={"help": "examples per split perturbed for the PDR"})
    sra_max_length: int = field(default=128, metadata={"help": "tokens per SRA pair"})
    verifier_max_length: int = field(default=192, metadata={"help": "tokens per (problem, solution) pair"})
    teacher: str = field(default="finetune", metadata={"help": "finetune | hf | openai"})
    teacher_model: str = field(
        default="minilm-l6",
        metadata={"help": "finetune: short name (minilm-l6; mpnet-base, the larger opt-in teacher) or HF folder; hf: "
                  "a fine-tuned classifier"},
    )  # fmt: skip
    teacher_url: str = field(default="", metadata={"help": "openai: base URL of an OpenAI-compatible server"})
    teacher_served_model: str = field(default="", metadata={"help": "openai: the served model name"})
    students: list[str] = field(default_factory=lambda: list(STUDENTS), metadata={"help": "tiny and/or minilm2"})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "training seeds (tiny student)"})
    minilm2_seeds: int = field(default=1, metadata={"help": "how many of the seeds the 2-layer MiniLM trains"})
    student_variants: dict[str, list[str]] = field(
        default_factory=dict,
        metadata={"help": "student -> the variants it trains (a student not named trains every variant)"},
    )
    tiny_dim: int = field(default=64, metadata={"help": "tiny student width"})
    tiny_layers: int = field(default=2, metadata={"help": "tiny student transformer layers"})
    vocab_size: int = field(default=6000, metadata={"help": "WordPiece vocabulary learned for the tiny student"})
    tiny_segments: bool = field(
        default=True, metadata={"help": "give the tiny student segment embeddings: context vs answer (as BERT's)"}
    )
    tiny_exact_match: bool = field(
        default=True,
        metadata={"help": "mark the answer's pieces that occur in the question or reference, and theirs that occur in "
                  "the answer (an input embedding, DrQA's exact-match feature; needs tiny_segments)"},
    )  # fmt: skip
    tiny_embed_init: str = field(
        default="minilm",
        metadata={"help": "none | minilm: start the tiny student's token embedding from MiniLM's view of each piece"},
    )
    variants: dict[str, dict[str, float]] = field(
        default_factory=lambda: {"kd": {"task": 0.5, "kd": 0.5}, "no_kd": {"task": 1.0}},
        metadata={"help": "students' loss variants: name -> {term: weight}; terms: task (hard-label CE), kd "
                  "(soft-label KD); {task: alpha, kd: 1 - alpha} is survey Eq. 1"},
    )  # fmt: skip
    verifier_variants: dict[str, dict[str, float]] = field(
        default_factory=dict, metadata={"help": "the verifier's own variants (empty: the variants above)"}
    )
    kd: SoftLabelKDConfig = field(default_factory=SoftLabelKDConfig, metadata={"help": "the kd term's settings"})
    teacher_ensemble: int = field(
        default=1, metadata={"help": "finetune: teachers trained with seeds seed, seed+1, ...; > 1: multi-teacher KD"}
    )
    teacher_neighbours: int = field(
        default=0,
        metadata={"help": "> 0: one more ensemble member, the graded-neighbours teacher: this many graded training "
                  "answers to the same question, the most similar, vote (suite.teachers.neighbours)"},
    )  # fmt: skip
    ensemble_tasks: list[str] = field(
        default_factory=list, metadata={"help": "tasks whose teacher is the ensemble (empty: every task)"}
    )
    teacher_members: list[int] = field(
        default_factory=list,
        metadata={"help": "train only these teachers (ensemble members, 0 first) and stop: a sitting that trains "
                  "teachers beside another on the same run directory (empty: the whole run)"},
    )  # fmt: skip
    students_only: bool = field(
        default=False,
        metadata={"help": "stop after the student stages: a sitting that trains some seeds or tasks beside another "
                  "(the report comes from a sitting without it)"},
    )  # fmt: skip
    multi_teacher: MultiTeacherConfig = field(
        default_factory=MultiTeacherConfig,
        metadata={"help": "how an ensemble's teachers combine: weighting, conflicts, temperature (survey Eq. 7-8)"},
    )
    transfer: TransferConfig = field(
        default_factory=TransferConfig,
        metadata={"help": "augmented copies of the training pairs the teacher labels for the KD students"},
    )
    layer_map: LayerMapConfig = field(
        default_factory=LayerMapConfig,
        metadata={"help": "a variant's `layers` term (minilm2 student): student layer -> teacher layer (TinyBERT)"},
    )
    exits: ShallowExitsConfig = field(
        default_factory=ShallowExitsConfig,
        metadata={"help": "a variant's `exits` term: exit heads on these student layers learn from its deepest"},
    )
    posterior: PosteriorConfig = field(
        default_factory=PosteriorConfig,
        metadata={"help": "a `prior` variant's SGLD posterior: samples (0: off), burn_in, thin, lr, batch_size"},
    )
    calibrated_variants: list[str] = field(
        default_factory=list,
        metadata={"help": "variants that learn from each teacher's logits over its temperature on dev (Guo et al. "
                  "2017): a teacher is surer on its own training pairs than it is right on new ones (empty: none)"},
    )  # fmt: skip
    leave_one_teacher_out: bool = field(
        default=False, metadata={"help": "with an ensemble: every KD student also once without each teacher"}
    )
    ensemble_variants: list[str] = field(
        default_factory=list,
        metadata={"help": "variants that learn from the whole ensemble, the rest from its first teacher (empty: every "
                  "variant with a kd or end2 term)"},
    )  # fmt: skip
    transfer_variants: list[str] = field(
        default_factory=list,
        metadata={"help": "variants that also learn on the transfer set (empty: every variant that learns from the "
                  "teacher)"},
    )  # fmt: skip
    int8: bool = field(default=True, metadata={"help": "also export dynamic int8 ONNX (kept if accuracy holds)"})
    release: list[str] = field(
        default_factory=lambda: ["sra_tiny_kd"],
        metadata={"help": "exported models copied beside the model card (--publish: models/education/export/)"},
    )
    release_check_examples: int = field(
        default=200, metadata={"help": "released models are checked on this many examples of the first test split"}
    )
    bench_repeats: int = field(default=60, metadata={"help": "timed runs per latency measurement"})
    progress: bool = field(default=True, metadata={"help": "progress lines while benchmarking"})
    sra_teacher_trainer: TrainerConfig = field(default_factory=_sra_teacher_trainer)
    verifier_teacher_trainer: TrainerConfig = field(default_factory=_verifier_teacher_trainer)
    tiny_trainer: TrainerConfig = field(default_factory=_tiny_trainer)
    minilm2_trainer: TrainerConfig = field(default_factory=_minilm2_trainer)

    def __post_init__(self) -> None:
        if self.data.path:  # the user's data replaces the built-in tasks, and names the models
            self.tasks = [self.data.task]
            self.release = [f"{self.data.task}_tiny_kd" if r == "sra_tiny_kd" else r for r in self.release]
        else:
            check(self.tasks and set(self.tasks) <= set(TASKS), "tasks", f"choose from {', '.join(TASKS)}")
        check(self.students and set(self.students) <= set(STUDENTS), "students", f"choose from {STUDENTS}")
        check(self.teacher in TEACHER_BACKENDS, "teacher", f"choose from {', '.join(TEACHER_BACKENDS)}")
        check(self.teacher != "openai" or bool(self.teacher_url and self.teacher_served_model), "teacher_url",
              "the openai teacher needs teacher_url and teacher_served_model")  # fmt: skip
        check(0 < self.verifier_test_fraction < 1, "verifier_test_fraction", "must be in (0, 1)")
        check(0 < self.dev_fraction < 0.5, "dev_fraction", "must be in (0, 0.5)")
        check(self.sra_references >= 1, "sra_references", "must be >= 1")
        check(0 <= self.dev_answers_fraction < 0.5, "dev_answers_fraction", "must be in [0, 0.5)")
        check(len(self.seeds) >= 1, "seeds", "at least one seed")
        check(1 <= self.minilm2_seeds <= len(self.seeds), "minilm2_seeds", "must be in [1, len(seeds)]")
        check(
            self.tiny_segments or not self.tiny_exact_match,
            "tiny_exact_match",
            "needs tiny_segments=true (or set tiny_exact_match=false)",
        )
        check(self.teacher_ensemble >= 1, "teacher_ensemble", "at least one teacher")
        check(self.teacher_neighbours >= 0, "teacher_neighbours", "must be >= 0 (0: off)")
        check(self.teacher_ensemble == 1 or self.teacher == "finetune", "teacher_ensemble",
              "an ensemble is fine-tuned here: teacher must be finetune")  # fmt: skip
        check(bool(self.variants), "variants", "at least one variant")
        every_variant = self.variants | self.verifier_variants
        check_listed_variants(every_variant, ensemble_variants=self.ensemble_variants,
                              transfer_variants=self.transfer_variants,
                              calibrated_variants=self.calibrated_variants)  # fmt: skip
        check(set(self.student_variants) <= set(STUDENTS), "student_variants", f"choose from {STUDENTS}")
        for student, names in self.student_variants.items():
            check_listed_variants(every_variant, **{f"student_variants.{student}": names})
        known = [*TASKS, *(t for t in self.tasks if t not in TASKS)]  # a sitting may run one of them only
        check(set(self.ensemble_tasks) <= set(known), "ensemble_tasks", f"choose from {', '.join(known)}")
        members = range(self.teacher_ensemble + (self.teacher_neighbours > 0))
        check(set(self.teacher_members) <= set(members), "teacher_members", f"choose from {list(members)}")
        check(not (self.teacher_members and self.students_only), "students_only",
              "a sitting trains teachers (teacher_members) or students, not both")  # fmt: skip
        for name, terms in every_variant.items():
            unknown = sorted(set(terms) - set(PAIR_TERMS))
            check(not unknown, f"variants.{name}", f"unknown terms {unknown}; choose from {', '.join(PAIR_TERMS)}")
            check(bool(terms) and all(w >= 0 for w in terms.values()), f"variants.{name}", "non-negative weights")
        check(self.tiny_embed_init in ("none", "minilm"), "tiny_embed_init", "must be none or minilm")
        check(min(self.sra_max_length, self.verifier_max_length) >= 16, "max_length", "must be >= 16")
        check(self.bench_repeats >= 5, "bench_repeats", "must be >= 5 (p99 of fewer runs means little)")

    # the user's own data is short-answer scoring: it takes the SRA settings
    def max_length(self, task: str) -> int:
        return self.verifier_max_length if task == "verifier" else self.sra_max_length

    def teacher_trainer(self, task: str) -> TrainerConfig:
        return self.verifier_teacher_trainer if task == "verifier" else self.sra_teacher_trainer

    def seeds_of(self, student: str) -> list[int]:
        return self.seeds if student == "tiny" else self.seeds[: self.minilm2_seeds]

    def variants_of(self, task: str) -> dict[str, dict[str, float]]:
        return self.verifier_variants if task == "verifier" and self.verifier_variants else self.variants

    def ensemble_of(self, task: str) -> int:
        """The task's teachers: the fine-tuned ones and the graded-neighbours one (its last), or the single one."""
        return self.teacher_ensemble + (self.teacher_neighbours > 0) if self.ensemble_task(task) else 1

    def ensemble_task(self, task: str) -> bool:
        return not self.ensemble_tasks or task in self.ensemble_tasks


PROFILES: dict[str, list[str]] = {
    # Under 10 minutes on 2 CPU cores: small slices of every split, one seed, short training. It proves the wiring,
    # not the quality: ~40 teacher steps leave the teacher near the majority class (the full profile is the result).
    "quick": [
        "output_dir=runs/education/quick",
        "max_train_examples=1200",
        "max_eval_examples=200",
        "robustness_examples=100",
        "verifier_rationales=0",
        "sra_max_length=64",
        "verifier_max_length=96",
        "seeds=[0]",
        "sra_teacher_trainer.epochs=1",
        "tiny_trainer.epochs=6",
        "bench_repeats=20",
    ],
    # Every example of every split; the committed report. The ablation (survey 3.2-3.4), each method alone and
    # combined, 5 seeds of the tiny student on answer scoring: one teacher vs an ensemble of three, the transfer set,
    # Bayesian KD with its SGLD posterior, EnD^2, shallow exits, a mutual peer; the 2-layer MiniLM adds TinyBERT's
    # intermediate layers (one seed: it costs ~10x a tiny student). The verifier keeps one teacher and plain KD.
    # 20 tiny epochs, exact match on, 2 transfer copies per pair (neighbours, typos) at equal optimizer steps. Stage
    # times from the run's stages.json, in sittings on 2 cores, one thread each and two side by side: SRA teachers
    # 16.7 + 35.7 + 17.3 min, the verifier's 10.4 min; 50 tiny SRA students 343 min (5-8 min each, `mutual` 15: it
    # trains its peer too), 2-layer SRA students 36 min; the verifier's students 52 (tiny) + 19 (2-layer) min. About
    # 8.8 hours of one core in all; publishing, every stage reused, 11.8 min with 2 threads (20.5 in
    # an earlier sitting the same day: the host's speed varied).
    "full": [
        "seeds=[0, 1, 2, 3, 4]",
        "teacher_ensemble=3",
        "ensemble_tasks=[sra]",
        "variants={no_kd: {task: 1.0}, kd: {task: 0.5, kd: 0.5}, kd_cal: {task: 0.5, kd: 0.5}, "
        "ensemble: {task: 0.5, kd: 0.5}, "
        "end2: {task: 0.5, end2: 0.5}, transfer: {task: 0.5, kd: 0.5}, bayes: {task: 1.0, prior: 3.0}, "
        "exits: {task: 1.0, exits: 1.0}, mutual: {task: 1.0, mutual: 1.0}, "
        "combined: {task: 0.5, kd: 0.5, exits: 1.0}, layers: {task: 0.5, kd: 0.5, layers: 1.0}}",
        "ensemble_variants=[ensemble, end2, combined]",
        "transfer_variants=[transfer, combined]",
        "calibrated_variants=[kd_cal, bayes]",
        "transfer.neighbours=1",
        "transfer.typos=1",
        "transfer.equal_steps=true",
        "tiny_trainer.epochs=20",
        "posterior.samples=20",
        "posterior.lr=1e-5",
        "student_variants={tiny: [no_kd, kd, kd_cal, ensemble, end2, transfer, bayes, exits, mutual, combined], "
        "minilm2: [no_kd, kd, layers]}",
        "verifier_variants={no_kd: {task: 1.0}, kd: {task: 0.5, kd: 0.5}}",
    ],
}
