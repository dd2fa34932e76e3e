"""Text-pair classification on the shared stages, for any pack that scores (text, text_pair) pairs.

The teacher is a fine-tuned cross-encoder, a local Hugging Face classifier, or an OpenAI-compatible endpoint asked
with a rubric over label log-probabilities; its logits go through the teacher-output store. Students (a tiny
transformer with its own WordPiece vocabulary, MiniLM cut to 2 layers) are trained with every loss variant and seed
(:mod:`suite.runner`), evaluated with the pack's metrics next to the majority class, exported (MiniLM fused; int8
behind its accuracy gate) and benchmarked. A pack supplies the examples, the labels and the metric function.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from suite import pairs
from suite.augment import TransferConfig
from suite.errors import ConfigError
from suite.losses import MultiTeacherConfig, SoftLabelKDConfig
from suite.losses.layer_map import LayerMapConfig
from suite.losses.self_distillation import ShallowExitsConfig
from suite.runner import (
    ModelResult,
    Pack,
    TaskResult,
    Trained,
    Variant,
    evaluate_variants,
    export_first_seeds,
    fresh_export_dir,
    train_variants,
)
from suite.stages import StageLedger, fingerprint
from suite.trainer import TrainerConfig


class Example(Protocol):
    """A pack's labelled pair: a dataclass with at least these fields (its other fields, e.g. a group id, count in the
    fingerprints of the stages it feeds)."""

    text: str
    text_pair: str
    label: int


Metrics = dict[str, float]
# (probs (N, C), labels (N,), probs on the split's perturbed prefix, its labels) -> metrics of one split
MetricFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], Metrics]


@dataclass
class PairData:
    """A task's examples: train and dev (dev picks the best weights), test splits, teacher-only extras (rationale
    augmentation) and a perturbed prefix of each test split (robustness)."""

    train: list[Example]
    dev: list[Example]
    tests: dict[str, list[Example]]
    teacher_extra: list[Example] = field(default_factory=list)
    noisy: dict[str, list[Example]] = field(default_factory=dict)
    # untrained rules reported as baselines beside the majority class: name -> (examples -> class probabilities)
    rules: dict[str, Callable[[list[Example]], np.ndarray]] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "dev": len(self.dev), "teacher_extra": len(self.teacher_extra),
                **{k: len(v) for k, v in self.tests.items()}}  # fmt: skip


@dataclass
class PairTask:
    """Everything the stages need to know about one pair-classification task (a pack builds it from its recipe)."""

    name: str  # prefixes every model name: <name>_teacher, <name>_<student>_<variant>
    labels: list[str]
    max_length: int
    teacher: str  # finetune | hf | openai
    teacher_model: str  # finetune: minilm-l6 or a local HF encoder folder; hf: a fine-tuned classifier folder
    teacher_trainer: TrainerConfig
    students: dict[str, TrainerConfig]  # tiny | minilm2 -> its trainer
    seeds: dict[str, list[int]]  # student -> seeds
    variants: dict[str, dict[str, float]]  # variant -> {term: weight}
    kd: SoftLabelKDConfig
    # dim, layers, vocab_size; embed_init 'minilm': its token embedding starts from MiniLM; segments: a pair's two
    # texts get their own segment embeddings; exact_match: pieces the two texts share get their own embedding
    tiny: dict[str, Any]
    int8: bool = True
    bench_repeats: int = 60
    progress: bool = True
    teacher_url: str = ""  # openai
    teacher_served_model: str = ""  # openai
    rubric: str = ""  # openai: the prompt template with {text} and {text_pair}
    ensemble: int = 1  # finetune: how many teachers (seeds seed, seed + 1, ...); > 1 is multi-teacher KD
    # > 0: the ensemble's last member is the graded-neighbours teacher (suite.teachers.neighbours), this many
    # similar graded training answers to the same context voting; the others are fine-tuned
    neighbours: int = 0
    multi: MultiTeacherConfig = field(default_factory=MultiTeacherConfig)  # how the ensemble's teachers combine
    leave_one_out: bool = False  # with an ensemble: every KD variant also once without each teacher
    transfer: TransferConfig = field(default_factory=TransferConfig)  # augmented inputs the teacher labels for KD
    layer_map: LayerMapConfig = field(default_factory=LayerMapConfig)  # a `layers` term: student -> teacher layers
    exits: ShallowExitsConfig = field(default_factory=ShallowExitsConfig)  # an `exits` term: self-distillation
    posterior: pairs.PosteriorConfig = field(default_factory=pairs.PosteriorConfig)  # SGLD after a `prior` variant
    # learn from the teachers' logits over each one's temperature on dev (Guo et al. 2017; empty: none does)
    calibrated_variants: list[str] = field(default_factory=list)
    ensemble_variants: list[str] = field(default_factory=list)  # learn from the ensemble (empty: kd / end2 variants)
    transfer_variants: list[str] = field(default_factory=list)  # learn on the transfer set (empty: every KD variant)
    student_variants: dict[str, list[str]] = field(default_factory=dict)  # student -> the variants it trains (all)

    def is_neighbours(self, member: int) -> bool:
        """Whether ensemble member ``member`` is the graded-neighbours teacher (the last one, when there is one)."""
        return self.neighbours > 0 and member == self.ensemble - 1

    @property
    def fine_tuned(self) -> int:
        """How many ensemble members are models (all but the graded-neighbours teacher)."""
        return self.ensemble - (self.neighbours > 0)

    @property
    def teacher_stages(self) -> list[str]:
        return [teacher_stage(self.name, member) for member in range(self.ensemble)]

    def uses_ensemble(self, name: str, terms: dict[str, float]) -> bool:
        """Whether recipe variant ``name`` learns from every ensemble member (multi-teacher KD, EnD^2) rather than
        from the first alone: the variants ``ensemble_variants`` names, or, when it names none, every variant with a
        kd or end2 term. Listing them lets one run hold a plain-KD and an ensemble-KD student side by side."""
        if self.ensemble == 1:
            return False
        if self.ensemble_variants:
            return name in self.ensemble_variants
        return any(terms.get(t, 0) > 0 for t in ("kd", "end2"))

    def uses_transfer(self, name: str, terms: dict[str, float]) -> bool:
        """Whether recipe variant ``name`` also learns the teacher's labels on the transfer set: a variant that
        learns from the teacher and, when ``transfer_variants`` names any, is one of them."""
        if not (self.transfer.enabled and from_teacher(terms)):
            return False
        return name in self.transfer_variants if self.transfer_variants else True

    @property
    def transfer_used(self) -> bool:
        """Whether any variant learns on the transfer set (labelling it costs a teacher pass per copy)."""
        return any(self.uses_transfer(name, terms) for name, terms in self.variants.items())

    def check_variant_sources(self) -> None:
        """Clear errors for variants whose terms cannot use the teacher they were given."""
        check_listed_variants(self.variants, ensemble_variants=self.ensemble_variants,
                              transfer_variants=self.transfer_variants,
                              calibrated_variants=self.calibrated_variants)  # fmt: skip
        for name, terms in self.variants.items():
            ensemble = self.uses_ensemble(name, terms)
            if name in self.calibrated_variants and (not from_teacher(terms) or terms.get("layers", 0) > 0):
                raise ConfigError(f"calibrated_variants: {name} learns from no stored teacher output (a layers term "
                                  "runs the teacher live; task, exits and mutual terms need none)")  # fmt: skip
            if terms.get("end2", 0) > 0 and not ensemble:
                raise ConfigError(f"variants.{name}: an end2 term needs an ensemble (teacher_ensemble >= 2, and the "
                                  "variant among ensemble_variants when that names any)")  # fmt: skip
            if ensemble and any(terms.get(t, 0) > 0 for t in ("prior", "layers")):
                raise ConfigError(f"variants.{name}: prior and layers terms learn from one teacher; leave the variant "
                                  "out of ensemble_variants")  # fmt: skip


def check_listed_variants(variants: Mapping[str, Any], **listed: list[str]) -> None:
    """A ConfigError naming the list (``ensemble_variants=...``) that names a variant the recipe does not have."""
    for which, names in listed.items():
        unknown = sorted(set(names) - set(variants))
        if unknown:
            raise ConfigError(f"{which}: unknown variants {unknown}; the recipe has {sorted(variants)}")


def from_teacher(terms: dict[str, float]) -> bool:
    """Whether a weighted term learns from the teacher (a ``mutual`` peer learns from the labels, not a teacher)."""
    return any(terms.get(t, 0) > 0 for t in ("kd", "layers", "prior", "end2"))


def teacher_stage(task: str, member: int) -> str:
    """Member 0 keeps the single teacher's stage name, so a one-teacher run's stages stay valid."""
    return f"{task}/teacher" if member == 0 else f"{task}/teacher{member}"


def encode(tokenizer: Any, examples: list[Example], max_length: int) -> list[dict]:
    return pairs.encode_pairs(tokenizer, [(e.text, e.text_pair) for e in examples], [e.label for e in examples],
                              max_length)  # fmt: skip


def labels_of(examples: list[Example]) -> np.ndarray:
    return np.array([e.label for e in examples], dtype=np.int64)


def store_dir(task_dir: Path, member: int = 0) -> Path:
    """The teacher-output store of ensemble member ``member`` (the single teacher's for 0)."""
    return task_dir / ("teacher_store" if member == 0 else f"teacher{member}_store")


def teacher_logits(teacher: Any, examples: list[Example], task_dir: Path, member: int = 0) -> torch.Tensor:
    return pairs.stored_teacher_logits(teacher, [(e.text, e.text_pair) for e in examples], store_dir(task_dir, member))


def _examples_digest(examples: list[Example]) -> str:
    return fingerprint([dataclasses.astuple(e) for e in examples])  # examples are dataclasses (see Example)


# -- teacher -----------------------------------------------------------------------------------------------------
def teacher_inputs(task: PairTask, data: PairData, member: int = 0) -> dict[str, Any]:
    """What makes a teacher: a change reruns the teacher stage and every student after it."""
    from suite.teachers.hf import model_digest

    if task.is_neighbours(member):  # what it votes with: the graded training pairs
        return {"backend": "graded-neighbours", "k": task.neighbours, "data": _examples_digest(data.train)}
    inputs: dict[str, Any] = {"backend": task.teacher, "model": task.teacher_model, "max_length": task.max_length}
    if task.teacher == "finetune":
        inputs |= {
            "trainer": member_trainer(task, member),
            "data": _examples_digest(data.train + data.teacher_extra + data.dev),
        }
    elif task.teacher == "hf":
        inputs["weights"] = model_digest(Path(task.teacher_model).expanduser().resolve())
    else:
        inputs |= {"url": task.teacher_url, "served_model": task.teacher_served_model, "rubric": task.rubric}
    return inputs


def transfer_set(task: PairTask, data: PairData) -> list[tuple[str, str]]:
    """The augmented copies of the training pairs (:mod:`suite.augment`) the teachers label for the students that
    learn on the transfer set; empty when none does. Deterministic: every sitting builds the same pairs."""
    from suite.augment import minilm_word_neighbours, transfer_pairs

    if not task.transfer_used:
        return []
    groups = [str(getattr(e, "group", i)) for i, e in enumerate(data.train)]
    neighbours = minilm_word_neighbours() if task.transfer.neighbours else None
    extra = transfer_pairs([(e.text, e.text_pair) for e in data.train], groups, task.transfer, neighbours)
    print(f"[{task.name}] transfer set: {len(extra)} augmented pairs for the teacher to label")
    return extra


def equal_step_budget(config: TrainerConfig, labelled: int) -> TrainerConfig:
    """``config`` cut to the optimizer steps (and evaluations) of its epochs over the ``labelled`` pairs alone: a
    student that also learns on the transfer set then trains exactly as long as its twin without it."""
    per_epoch = math.ceil(labelled / config.batch_size)
    return dataclasses.replace(config, max_steps=config.epochs * per_epoch, eval_every=per_epoch)


def fill_teacher_stores(task: PairTask, data: PairData, ledger: StageLedger, resume: bool,
                        members: list[int]) -> int:  # fmt: skip
    """Ensemble members ``members``' teacher stages, then each one's store on the training and transfer pairs: a
    teachers-only sitting beside other sittings on the same run directory (stage names, fingerprints and stored
    outputs do not depend on the sitting, so the others reuse them). Returns the pairs stored per member."""
    extra = transfer_set(task, data) if members else []  # built once: the neighbour table costs a MiniLM pass
    inputs, task_dir = [(e.text, e.text_pair) for e in data.train] + extra, ledger.root / task.name
    for member in members:
        teacher = prepare_teacher(task, data, ledger, resume, member)
        pairs.stored_teacher_logits(teacher, inputs, store_dir(task_dir, member))
        print(f"[{task.name}] teacher {member}: {len(inputs)} pairs in its store")
    return len(inputs)


def train_pair_students(task: PairTask, data: PairData, metrics: MetricFn, ledger: StageLedger,
                        resume: bool) -> list[str]:  # fmt: skip
    """A students-only sitting: teachers (reused or built), stores, then the student stages of ``task``'s seeds; no
    evaluation, export or report (the publishing sitting reuses the students). Returns ``variant-s<seed>`` names."""
    pack = PairClassificationPack(task, data, metrics, ledger, resume)
    return [f"{t.variant.name}-s{t.seed}" for t in train_variants(pack, ledger, after=task.teacher_stages)]


def member_trainer(task: PairTask, member: int) -> TrainerConfig:
    """Ensemble member ``k`` trains like the first teacher with seed + k (its own head, dropout and data order)."""
    config = task.teacher_trainer
    return config if member == 0 else dataclasses.replace(config, seed=config.seed + member)


def prepare_teacher(task: PairTask, data: PairData, ledger: StageLedger, resume: bool, member: int = 0) -> Any:
    """The teacher backend every student distils from, as the ``<task>/teacher`` stage (ensemble member ``k`` > 0:
    ``<task>/teacher<k>``, fine-tuned with seed + k)."""
    from suite.teachers import HFTeacher, OpenAICompatibleTeacher
    from suite.teachers.neighbours import GradedNeighbourTeacher
    from suite.teachers.rubric import RubricClassifierTeacher

    stage, inputs = teacher_stage(task.name, member), teacher_inputs(task, data, member)
    if task.is_neighbours(member):  # nothing to train or save: built from the graded pairs in every sitting
        graded = [(e.text, e.text_pair, e.label) for e in data.train]
        build = lambda out: GradedNeighbourTeacher(graded, len(task.labels), k=task.neighbours)  # noqa: E731
        return ledger.run(stage, inputs, build, build)
    if task.teacher == "openai":
        backend = OpenAICompatibleTeacher(task.teacher_url, task.teacher_served_model, max_tokens=1, top_logprobs=5)
        build = lambda out: RubricClassifierTeacher(backend, task.rubric, task.labels)  # noqa: E731
    elif task.teacher == "hf":
        build = lambda out: HFTeacher(task.teacher_model, task="classification", max_length=task.max_length)  # noqa: E731
    else:
        build = lambda out: fine_tune_teacher(task, data, out, resume, member)  # noqa: E731
    load = lambda out: HFTeacher(out / "hf", task="classification", max_length=task.max_length)  # noqa: E731
    return ledger.run(stage, inputs, build, load if task.teacher == "finetune" else build)


def fine_tune_teacher(task: PairTask, data: PairData, out: Path, resume: bool, member: int = 0) -> Any:
    """Fine-tune ``teacher_model`` (``minilm-l6`` or a local HF folder) as a cross-encoder, saved to ``out/hf``."""
    from suite.students import build_student
    from suite.teachers import HFTeacher

    config = pairs.with_output_dir(member_trainer(task, member), out / "run")
    torch.manual_seed(config.seed)  # the fresh classification head is drawn here
    labels = len(task.labels)
    if task.teacher_model == "minilm-l6":
        teacher = build_student("minilm-classifier", num_labels=labels)
    else:  # any local HF encoder folder, through the same student entry that exports it
        teacher = build_student("hf-classifier", path=task.teacher_model, num_labels=labels, new_head=True)
    tokenizer = teacher.tokenizer
    tokenizer.model_max_length = task.max_length  # what the exported teacher will truncate to
    train = encode(tokenizer, data.train + data.teacher_extra, task.max_length)
    dev = encode(tokenizer, data.dev, task.max_length)
    who = "teacher" if task.fine_tuned == 1 else f"teacher {member + 1} of {task.fine_tuned}"  # models only
    print(f"[{task.name}] {who}: fine-tuning {task.teacher_model} on {len(train)} pairs")
    pairs.fine_tune_cross_encoder(teacher, tokenizer, train, dev, config, resume=resume)
    teacher.model.save_pretrained(out / "hf")
    tokenizer.save_pretrained(out / "hf")
    return HFTeacher(out / "hf", task="classification", max_length=task.max_length)


# -- the pack ----------------------------------------------------------------------------------------------------
class PairClassificationPack(Pack):
    """One pair-classification task as the shared stages see it."""

    def __init__(self, task: PairTask, data: PairData, metrics: MetricFn, ledger: StageLedger, resume: bool):
        self.task, self.data, self.metric_fn, self.resume = task, data, metrics, resume
        self.dir = ledger.root / task.name
        print(f"[{task.name}] data: " + ", ".join(f"{k} {v}" for k, v in data.sizes().items()))
        write_eval_data(self.dir / "data", data.tests)
        if task.fine_tuned > 1 and task.teacher != "finetune":
            raise ConfigError(f"{task.name}: an ensemble of teachers is fine-tuned here (teacher: finetune)")
        if task.neighbours and task.fine_tuned < 1:
            raise ConfigError(f"{task.name}: the graded-neighbours teacher joins a model teacher (ensemble >= 2)")
        task.check_variant_sources()
        self.teachers = [prepare_teacher(task, data, ledger, resume, k) for k in range(task.ensemble)]
        self.teacher = self.teachers[0]  # the one exported and benchmarked
        print(f"[{task.name}] teacher outputs: through the teacher-output store")
        logits = [teacher_logits(t, data.train, self.dir, k) for k, t in enumerate(self.teachers)]
        # one teacher: (N, C), soft-label KD; an ensemble: (N, K, C), multi-teacher KD (survey Eq. 7-8)
        self.train_logits = logits[0] if task.ensemble == 1 else torch.stack(logits, dim=1)
        self.transfer, self.transfer_logits = self.label_transfer_set()
        self.students = {arch: student_setup(task, arch, data) for arch in task.students}
        self.probs: dict[str, dict[str, np.ndarray]] = {}  # model -> split -> probs (first seed), for the plots

    def label_transfer_set(self) -> tuple[list[tuple[str, str]], torch.Tensor | None]:
        """The transfer set (:mod:`suite.augment`) and the teachers' logits on it, through each teacher's store."""
        extra = transfer_set(self.task, self.data)
        if not extra:
            return [], None
        logits = [pairs.stored_teacher_logits(t, extra, store_dir(self.dir, k)) for k, t in enumerate(self.teachers)]
        return extra, logits[0] if self.task.ensemble == 1 else torch.stack(logits, dim=1)

    def variants(self) -> list[Variant]:
        task = self.task
        out = [Variant(f"{task.name}_{arch}_{name}", arch, terms, task.seeds[arch], kd=from_teacher(terms))
               for arch in task.students for name, terms in task.variants.items()
               if name in task.student_variants.get(arch, task.variants)]  # fmt: skip
        if task.ensemble > 1 and task.leave_one_out:  # the leave-one-teacher-out attribution runs
            out += [dataclasses.replace(v, name=f"{v.name}_without_t{k}") for v in list(out)
                    if v.terms.get("kd", 0) > 0 and self.uses_ensemble(v) for k in range(task.ensemble)]  # fmt: skip
        return out

    def recipe_name(self, variant: Variant) -> str:
        """The recipe's name of a variant: ``<task>_<student>_<name>[_without_t<k>]`` -> ``<name>``."""
        return variant.name.partition("_without_t")[0].removeprefix(f"{self.task.name}_{variant.student}_")

    def uses_ensemble(self, variant: Variant) -> bool:
        return self.task.uses_ensemble(self.recipe_name(variant), variant.terms)

    def members(self, variant: Variant) -> list[int]:
        """The ensemble members a variant learns from: all but ``k`` for ``..._without_t<k>``; only the first for
        a variant that does not learn from the ensemble."""
        if not self.uses_ensemble(variant):
            return [0]
        left_out = variant.name.rpartition("_without_t")[2] if "_without_t" in variant.name else None
        return [k for k in range(self.task.ensemble) if left_out is None or str(k) != left_out]

    def student_settings(self, variant: Variant) -> Any:
        setup = self.students[variant.student]
        train = _examples_digest(self.data.train)
        settings = {"kwargs": setup["kwargs"], "trainer": setup["trainer"], "max_length": self.task.max_length,
                    "kd": self.task.kd, "train": train}  # fmt: skip
        if self.uses_ensemble(variant):
            settings |= {"multi": self.task.multi, "members": self.members(variant)}
        if self.task.uses_transfer(self.recipe_name(variant), variant.terms):
            settings["transfer"] = self.task.transfer
        if "token_vectors" in setup:
            settings["embed_init"] = self.task.tiny["embed_init"]
        if "layers" in variant.terms:
            settings["layer_map"] = self.task.layer_map
        if "exits" in variant.terms:
            settings["exits"] = self.task.exits
        if self.recipe_name(variant) in self.task.calibrated_variants:
            settings["calibrated"] = True
        if "prior" in variant.terms:  # its SGLD posterior is sampled in this stage and saved beside the student
            settings["posterior"] = self.task.posterior
        return settings

    def kd_logits(self, variant: Variant, logits: torch.Tensor | None = None) -> torch.Tensor:
        """The teacher logits a variant distils (default: on the training set): the teacher's, or the ensemble
        members it learns from."""
        logits = self.train_logits if logits is None else logits
        if self.task.ensemble == 1:
            return logits  # (N, C)
        return logits[:, self.members(variant)] if self.uses_ensemble(variant) else logits[:, 0]  # (N, K', C) | (N, C)

    def kd_items(self, variant: Variant, tokenizer: Any) -> list[dict]:
        """The training items with the teacher's logits attached; a KD variant also gets the transfer set, whose
        items carry no label (-100: the task term skips them, only the kd term learns from them)."""
        max_length, temperature = self.task.max_length, self.teacher_temperatures(variant)
        train_logits = self.kd_logits(variant) / temperature
        items = pairs.attach_teacher_logits(encode(tokenizer, self.data.train, max_length), train_logits)
        if not (self.transfer and self.task.uses_transfer(self.recipe_name(variant), variant.terms)):
            return items
        extra = pairs.encode_pairs(tokenizer, self.transfer, [-100] * len(self.transfer), max_length)
        return items + pairs.attach_teacher_logits(extra, self.kd_logits(variant, self.transfer_logits) / temperature)

    def teacher_temperatures(self, variant: Variant) -> torch.Tensor | float:
        """What a variant's stored teacher logits are divided by: for a calibrated variant each of its teachers'
        temperature on dev (:meth:`teacher_calibration`), shaped to broadcast over ``kd_logits``; else 1."""
        if self.recipe_name(variant) not in self.task.calibrated_variants:
            return 1.0
        if self.task.ensemble == 1 or not self.uses_ensemble(variant):  # kd_logits: (N, C) of the first teacher
            return self.teacher_calibration(0)["temperature"]
        temperatures = [self.teacher_calibration(k)["temperature"] for k in self.members(variant)]
        return torch.tensor(temperatures).view(1, -1, 1)  # kd_logits: (N, K', C), one temperature per member

    def teacher_calibration(self, member: int) -> dict[str, float]:
        """Teacher ``member``'s temperature on dev, fitted by NLL (temperature scaling), with dev's ECE before and
        after. A student distils the teacher's outputs on its training pairs, where the teacher is surer than it is
        right on new ones; dev is held out from the teacher's gradient steps, so the confidence it gives is the one
        the teacher earns. Survey Eq. 6's lambda then weighs probabilities that mean what they say."""
        cache = self.__dict__.setdefault("_calibration", {})
        if member not in cache:
            from suite.eval import expected_calibration_error, fit_temperature

            logits = teacher_logits(self.teachers[member], self.data.dev, self.dir, member)
            labels = labels_of(self.data.dev)
            temperature = fit_temperature(logits, labels)
            ece = {f"dev_ece_{k}": expected_calibration_error((logits / t).softmax(-1), labels)
                   for k, t in (("before", 1.0), ("after", temperature))}  # fmt: skip
            cache[member] = {"temperature": temperature, **ece}
            print(f"[{self.task.name}] teacher {member}: temperature {temperature:.2f} on dev (dev ECE "
                  f"{ece['dev_ece_before']:.3f} -> {ece['dev_ece_after']:.3f})")  # fmt: skip
        return cache[member]

    def train(self, variant: Variant, seed: int, directory: Path) -> torch.nn.Module:
        from suite.students import build_student
        from suite.students.io import save_student

        setup, terms = self.students[variant.student], " + ".join(f"{w:g} x {t}" for t, w in variant.terms.items())
        print(f"[{self.task.name}] {variant.name} seed {seed}: {terms}")
        torch.manual_seed(seed)
        student = build_student(setup["registry"], **setup["kwargs"])
        if "token_vectors" in setup:
            from suite.students.text import start_token_embedding

            start_token_embedding(student, setup["token_vectors"])
        if setup["registry"] == "minilm-truncated":  # pretrained embeddings: keep them, train the layers
            student.get_input_embeddings().weight.requires_grad_(False)
        tokenizer, max_length = setup["tokenizer"], self.task.max_length
        dev = encode(tokenizer, self.data.dev, max_length)
        config = pairs.with_output_dir(setup["trainer"], directory, seed=seed)
        if self.task.transfer.equal_steps and self.task.uses_transfer(self.recipe_name(variant), variant.terms):
            config = equal_step_budget(config, len(self.data.train))
        multi = self.task.multi if self.uses_ensemble(variant) else None
        live: dict[str, Any] = {}
        if "layers" in variant.terms:  # intermediate layers: the teacher runs live, its logits serve the kd term too
            items, live = encode(tokenizer, self.data.train, max_length), self.live_layer_teacher(variant, student)
        else:
            items = self.kd_items(variant, tokenizer)
        if "exits" in variant.terms:  # self-distillation: exit heads on the student's own intermediate layers
            live.setdefault("built", {})["exits"] = self.exit_term(student)
        trained = self.with_peer(variant, student, seed) if "mutual" in variant.terms else student
        pairs.train_pair_student(trained, tokenizer, items, dev, config, terms=variant.terms, kd=self.task.kd,
                                 multi=multi, resume=self.resume, **live)  # fmt: skip
        if "prior" in variant.terms and self.task.posterior.samples:
            self.sample_posterior(student, tokenizer, items, variant.terms, directory)
        save_student(student, directory / "model", setup["registry"], setup["kwargs"], tokenizer)
        return student

    def live_layer_teacher(self, variant: Variant, student: torch.nn.Module) -> dict[str, Any]:
        """The live teacher and the ``layers`` term (:class:`~suite.losses.layer_map.LayerMapKD`) of a variant
        that distils intermediate layers: a MiniLM student cut from the teacher's own model shares its tokenizer."""
        from suite.losses.layer_map import LayerMapKD
        from suite.students import build_student
        from suite.teachers import HFTeacher

        task = self.task
        if variant.student != "minilm2" or self.uses_ensemble(variant) or not isinstance(self.teacher, HFTeacher):
            raise ConfigError(f"{variant.name}: a layers term needs the minilm2 student (the teacher's tokenizer and "
                              "width), one teacher and a local one (teacher: finetune or hf)")  # fmt: skip
        teacher = build_student("hf-classifier", path=str(self.teacher.path), num_labels=len(task.labels))
        width = lambda m: m.model.config.hidden_size  # noqa: E731
        return {"teacher": teacher, "built": {"layers": LayerMapKD(width(student), width(teacher), task.layer_map)}}

    def sample_posterior(self, student: torch.nn.Module, tokenizer: Any, items: list[dict],
                         terms: dict[str, float], directory: Path) -> None:  # fmt: skip
        """Bayesian KD's posterior (SGLD from the trained weights): each test split's predictive mean and the
        variance of the predicted class's probability across samples, saved beside the student."""
        from suite.losses.bayesian import predictive_moments

        tests = {s: encode(tokenizer, e, self.task.max_length) for s, e in self.data.tests.items()}
        samples = pairs.posterior_predictions(student, tokenizer, items, terms, tests, self.task.posterior)
        moments = {s: predictive_moments(torch.from_numpy(p)) for s, p in samples.items()}
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / "posterior.npz", **{f"{s}_{k}": v.numpy() for s, (mean, var) in moments.items()
                                                 for k, v in (("mean", mean), ("var", var))})  # fmt: skip

    def posterior_metrics(self, directory: Path) -> dict[str, dict[str, float]]:
        """Accuracy, ECE and selective accuracy (the 80% with the lowest posterior variance) of the predictive mean,
        per test split; empty when the variant sampled no posterior."""
        from suite.eval import accuracy, expected_calibration_error, selective_accuracy

        path = directory / "posterior.npz"
        if not path.is_file():
            return {}
        saved, out = np.load(path), {}
        for split, examples in self.data.tests.items():
            mean, var, labels = saved[f"{split}_mean"], saved[f"{split}_var"], labels_of(examples)
            selective = selective_accuracy(mean, labels, 0.8, uncertainty=var)
            out[split] = {"posterior_accuracy": accuracy(mean.argmax(-1).tolist(), labels.tolist()),
                          "posterior_ece": expected_calibration_error(mean, labels),
                          "posterior_selective_accuracy_80": selective}  # fmt: skip
        return out

    def with_peer(self, variant: Variant, student: torch.nn.Module, seed: int) -> torch.nn.Module:
        """The student paired with the model it trains alongside (a ``mutual`` term): for the tiny student a twice
        as wide tiny peer on its tokenizer; for the 2-layer MiniLM the full 6-layer MiniLM, a teacher trained
        together with its student. Only the student is saved and exported."""
        from suite.losses.self_distillation import MutualPair
        from suite.students import build_student

        setup = self.students[variant.student]
        torch.manual_seed(seed + 1000)  # the peer starts from other weights than the student
        if setup["registry"] == "minilm-truncated":
            peer = build_student("minilm-classifier", num_labels=len(self.task.labels))
        else:
            peer = build_student(setup["registry"], **{**setup["kwargs"], "dim": 2 * setup["kwargs"]["dim"]})
        return MutualPair(student, peer)

    def exit_term(self, student: torch.nn.Module) -> Any:
        """The ``exits`` term for this student: its width and the task's labels, the recipe's exit layers."""
        from suite.losses.self_distillation import ShallowExits

        width = student.model.config.hidden_size if hasattr(student, "model") else self.task.tiny["dim"]
        return ShallowExits(width, len(self.task.labels), self.task.exits)

    def load(self, variant: Variant, seed: int, directory: Path) -> torch.nn.Module:
        from suite.students.io import load_student

        return load_student(directory / "model")[0]

    def _probs(self, model: torch.nn.Module, tokenizer: Any, splits: dict[str, list[Example]]) -> dict:
        return {s: pairs.predict_proba(model, tokenizer, encode(tokenizer, e, self.task.max_length))
                for s, e in splits.items()}  # fmt: skip

    def evaluate(self, trained: list[Trained]) -> list[dict]:
        out = []
        for run in trained:
            tokenizer = self.students[run.variant.student]["tokenizer"]
            probs = self._probs(run.model, tokenizer, self.data.tests)
            self.probs.setdefault(run.variant.name, probs)
            metrics = self.metrics(probs, self._probs(run.model, tokenizer, self.data.noisy))
            for split, extra in self.posterior_metrics(run.directory).items():
                metrics[split] |= extra
            out.append(metrics)
        return out

    def metrics(self, probs: dict[str, np.ndarray], noisy: dict[str, np.ndarray]) -> dict:
        return {s: self.metric_fn(probs[s], labels_of(e), noisy[s], labels_of(self.data.noisy[s]))
                for s, e in self.data.tests.items()}  # fmt: skip

    def baselines(self) -> dict[str, dict]:
        """The untrained baselines (:func:`baseline_rules`) and the task's own rules, on every test split."""
        rules = baseline_rules(self.data.train, len(self.task.labels)) | self.data.rules
        return {f"{self.task.name}_{name}": self.metrics(*[{s: rule(e) for s, e in split.items()}
                                                           for split in (self.data.tests, self.data.noisy)])
                for name, rule in rules.items()}  # fmt: skip

    def _teacher_probs(self, splits: dict[str, list[Example]], members: list[int]) -> dict[str, np.ndarray]:
        """Per split, the class probabilities of the given ensemble members, averaged (survey Eq. 7)."""
        return {s: np.mean([teacher_logits(self.teachers[k], e, self.dir, k).softmax(-1).numpy() for k in members],
                           axis=0) for s, e in splits.items()}  # fmt: skip

    def teacher_result(self) -> ModelResult:
        """The teacher; an ensemble's members averaged (whatever the students' weighting), with the parameters of
        all its members."""
        from suite.eval import parameter_count

        everyone = list(range(self.task.ensemble))
        self.probs[f"{self.task.name}_teacher"] = tested = self._teacher_probs(self.data.tests, everyone)
        models = [getattr(t, "model", None) for t in self.teachers]
        params = sum(parameter_count(m) for m in models if m is not None)
        noisy = self._teacher_probs(self.data.noisy, everyone)
        return ModelResult.single("teacher", self.metrics(tested, noisy), params)

    def member_results(self) -> dict[str, ModelResult]:
        """Each ensemble member alone (empty for a single teacher): what the ensemble adds over its best member."""
        if self.task.ensemble == 1:
            return {}
        return {f"{self.task.name}_teacher_member{k}": ModelResult.single("teacher", self.metrics(
                    self._teacher_probs(self.data.tests, [k]), self._teacher_probs(self.data.noisy, [k])))
                for k in range(self.task.ensemble)}  # fmt: skip

    def export(self, trained: Trained, target: Path) -> Path | None:
        return self._export(trained.directory / "model", target, trained.variant.name)

    def export_teacher(self, target: Path) -> Path | None:
        from suite.students import build_student
        from suite.students.io import save_student
        from suite.teachers import HFTeacher

        if not isinstance(self.teacher, HFTeacher):
            print(f"[{self.task.name}] teacher: not exported (not a local model)")
            return None
        kwargs = {"path": str(self.teacher.path), "num_labels": len(self.task.labels)}
        model = build_student("hf-classifier", **kwargs)
        model.tokenizer.model_max_length = self.task.max_length
        saved = save_student(model, self.dir / "teacher" / "model", "hf-classifier", kwargs, model.tokenizer)
        return self._export(saved, target, f"{self.task.name}_teacher")

    def _export(self, model_dir: Path, target: Path, name: str) -> Path:
        from suite.eval import parameter_count
        from suite.export.package import ModelCardInfo
        from suite.export.saved import export_saved_text_student
        from suite.students.io import load_student

        params = parameter_count(load_student(model_dir)[0])
        card = ModelCardInfo(name=name, license="see the datasets' licenses", datasets=[self.task.name])
        eval_data = self.dir / "data" / f"{next(iter(self.data.tests))}.jsonl"
        return export_saved_text_student(
            model_dir, target, int8=self.task.int8, labels=self.task.labels, card=card, eval_data=eval_data,
            max_metric_drop=0.01, metrics={"params": params}, drop_failing_variants=True,
        )  # fmt: skip


def baseline_rules(train: list[Example], num_labels: int) -> dict[str, Callable[[list[Example]], np.ndarray]]:
    """Untrained baselines fitted on ``train``, as examples -> class probabilities: ``majority`` (the training labels'
    class shares for every example) and, where examples are pairs, ``overlap`` (a logistic regression on the word
    overlap of the two texts, :func:`suite.pairs.overlap_baseline`)."""
    counts = np.bincount(labels_of(train), minlength=num_labels)
    rules = {"majority": lambda examples: np.tile(counts / counts.sum(), (len(examples), 1))}
    if all(e.text_pair for e in train):
        as_pairs = lambda examples: [(e.text, e.text_pair) for e in examples]  # noqa: E731
        predict = pairs.overlap_baseline(as_pairs(train), labels_of(train).tolist(), num_labels)
        rules["overlap"] = lambda examples: predict(as_pairs(examples))
    return rules


def student_setup(task: PairTask, arch: str, data: PairData) -> dict[str, Any]:
    """Registry name, kwargs, tokenizer and trainer of one student architecture (``tiny`` or ``minilm2``)."""
    from suite.hub import load_minilm
    from suite.students.text import build_vocab_tokenizer, minilm_token_vectors

    labels = len(task.labels)
    if arch == "tiny":
        tokenizer = build_vocab_tokenizer([f"{e.text} {e.text_pair}" for e in data.train], task.tiny["vocab_size"])
        kwargs = {"vocab_size": len(tokenizer), "num_labels": labels, "dim": task.tiny["dim"],
                  "layers": task.tiny["layers"], "max_len": task.max_length,
                  "pad_id": tokenizer.pad_token_id}  # fmt: skip
        if task.tiny.get("segments"):  # only then: students saved before segments rebuild from the same kwargs
            kwargs["sep_id"] = tokenizer.sep_token_id
        if task.tiny.get("exact_match"):  # likewise: a student without it keeps its kwargs and stage fingerprint
            kwargs["exact_match"] = True
        setup = {"registry": "tiny-text-arch", "kwargs": kwargs, "tokenizer": tokenizer,
                 "trainer": task.students[arch]}  # fmt: skip
        if task.tiny.get("embed_init", "none") == "minilm":  # once per task: every variant and seed starts from it
            vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
            setup["token_vectors"] = minilm_token_vectors(vocab, kwargs["dim"])
        return setup
    _, tokenizer = load_minilm(num_labels=labels, num_layers=2)
    tokenizer.model_max_length = task.max_length
    return {"registry": "minilm-truncated", "kwargs": {"num_labels": labels}, "tokenizer": tokenizer,
            "trainer": task.students[arch]}  # fmt: skip


def write_eval_data(data_dir: Path, tests: dict[str, list[Example]]) -> None:
    """Test splits as JSONL (text, text_pair, label) for ``distill eval``, the int8 gate and ``distill bench``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for split, examples in tests.items():
        lines = [json.dumps({"text": e.text, "text_pair": e.text_pair, "label": e.label}) for e in examples]
        (data_dir / f"{split}.jsonl").write_text("\n".join(lines) + "\n")


def benchmark(task: PairTask, exports: dict[str, Path], out: Path) -> dict[str, Any]:
    """Teacher vs students at the task's max length: onnxruntime fp32 + int8 and eager PyTorch at batch 1, then
    fp32 and PyTorch at batch 32 with fewer repeats (a teacher call at batch 32 takes a second or more here). On a
    machine with more than one core, ORT fp32 at batch 1 also on one thread: a sub-millisecond student can lose more
    to the thread pool's hand-offs than a second thread gains it."""
    from suite.bench import run_benchmark
    from suite.bench.latency import physical_cores

    if not exports:
        return {}
    dirs = list(exports.values())
    common = {"providers": ("cpu",), "warmup": 3, "seq_len": task.max_length, "progress": task.progress}
    single = run_benchmark(dirs, batch_sizes=(1,), variants=("fp32", "int8"), out_dir=out / "batch1",
                           repeats=task.bench_repeats, metric="accuracy", **common)  # fmt: skip
    batched = run_benchmark(dirs, batch_sizes=(32,), variants=("fp32",), out_dir=out / "batch32",
                            repeats=max(5, task.bench_repeats // 3), **common)  # fmt: skip
    one_thread = {"results": []}
    if physical_cores() > 1:
        one_thread = run_benchmark(dirs, batch_sizes=(1,), variants=("fp32",), torch_eager=False, intra_op_threads=1,
                                   out_dir=out / "batch1_1thread", repeats=task.bench_repeats, **common)  # fmt: skip
    return {"machine": single["machine"], "results": single["results"] + batched["results"] + one_thread["results"]}


def run_pair_task(
    task: PairTask, data: PairData, metrics: MetricFn, ledger: StageLedger, out: Path, resume: bool
) -> TaskResult:
    """teacher -> store -> students x variants x seeds -> evaluation (with the majority class) -> export -> bench."""
    pack = PairClassificationPack(task, data, metrics, ledger, resume)
    return run_pair_stages(pack, ledger, out, after=task.teacher_stages)[0]


def run_pair_stages(pack: PairClassificationPack, ledger: StageLedger, out: Path,
                    after: list[str]) -> tuple[TaskResult, list[Trained]]:  # fmt: skip
    """The stages after a pack's teacher (``after``: the stages its students depend on): students x variants x seeds
    -> evaluation next to the teacher and the majority class -> teacher and first-seed exports -> latency. Returns
    the task's result and the trained students."""
    task = pack.task
    trained = train_variants(pack, ledger, after=after)
    results = {f"{task.name}_teacher": pack.teacher_result(), **pack.member_results(),
               **evaluate_variants(pack, trained)}  # fmt: skip
    exports = {}
    teacher_export = pack.export_teacher(fresh_export_dir(out / "export" / f"{task.name}_teacher"))
    if teacher_export is not None:
        exports[f"{task.name}_teacher"] = teacher_export
    exports |= export_first_seeds(pack, trained, out / "export")
    bench = benchmark(task, exports, out / "bench" / task.name)
    return TaskResult(task.name, pack, results, exports, bench), trained


def release_check(export_dir: Path, examples: list[Example], split: str) -> dict[str, Any]:
    """Accuracy of the exported ONNX files (fp32 and, where released, int8) on ``examples``."""
    from suite.export.runtime import load_exported

    check: dict[str, Any] = {"split": split, "examples": len(examples)}
    labels = labels_of(examples)
    for variant, filename in (("fp32", "model.onnx"), ("int8", "model.int8.onnx")):
        if (export_dir / filename).is_file():
            model = load_exported(export_dir, variant=variant)
            probs = model.predict_proba([e.text for e in examples], [e.text_pair for e in examples])
            check[f"accuracy_{variant}"] = float((probs.argmax(-1) == labels).mean())
    return check


def release_pair_models(
    names: list[str], results: list[TaskResult], target: Path, command: str, check_examples: int
) -> None:
    """Copy the named exports beside the model card (``target/export/<name>``), each checked on the first
    ``check_examples`` of its task's first test split by the released ONNX files themselves."""
    from suite.release import release_named

    task_of = {name: r.pack.data for r in results for name in r.exports}

    def check(released: Path) -> dict[str, Any]:
        data = task_of[released.name]
        split = next(iter(data.tests))
        return release_check(released, data.tests[split][:check_examples], split)

    release_named(names, {n: p for r in results for n, p in r.exports.items()}, target, command, check)
