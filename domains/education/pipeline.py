"""``distill run education``: for each task, data and a teacher (fine-tuned cross-encoder, local HF classifier or an
OpenAI-compatible endpoint) asked through the teacher-output store; then the shared stages (:mod:`suite.runner`):
students x loss-term variants x seeds, evaluation, export with its int8 gate, latency; then one report.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from domains.education.data import LABELS, SRA_SPLITS, VERIFIER_SPLITS, Example, load_sra, load_verifier, problem_split
from domains.education.recipe import SRA_RUBRIC, VERIFIER_RUBRIC, EducationRecipe
from suite import pairs
from suite.errors import ConfigError
from suite.runner import (
    ModelResult,
    Pack,
    Trained,
    Variant,
    evaluate_variants,
    export_first_seeds,
    fresh_export_dir,
    train_variants,
)
from suite.stages import StageLedger, fingerprint

PERTURBATION = "char_typos"  # answers typed in a hurry: the noise a school deployment sees most


@dataclass
class TaskData:
    train: list[Example]
    dev: list[Example]
    tests: dict[str, list[Example]]
    teacher_extra: list[Example] = field(default_factory=list)  # rationale augmentation (teacher only)

    def perturbed(self, split: str, n: int) -> list[Example]:
        """The first ``n`` examples of a test split with typos in the answer (the part a student writes)."""
        from suite.eval import perturb

        subset = self.tests[split][:n]
        noisy = perturb([e.text_pair for e in subset], PERTURBATION, seed=0)
        return [Example(e.text, answer, e.label, e.group) for e, answer in zip(subset, noisy, strict=True)]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "dev": len(self.dev), "teacher_extra": len(self.teacher_extra),
                **{k: len(v) for k, v in self.tests.items()}}  # fmt: skip


def load_task(recipe: EducationRecipe, task: str) -> TaskData:
    if task == "sra":
        splits, names, extra = load_sra(recipe.sra_path, recipe.sra_corpus), SRA_SPLITS, []
    else:
        splits = load_verifier(
            recipe.gsm8k_path, recipe.verifier_test_fraction, recipe.verifier_rationales, seed=recipe.seeds[0]
        )
        names, extra = VERIFIER_SPLITS, splits.get("rationales", [])
    train = list(splits["train"])
    random.Random(0).shuffle(train)
    train = train[: recipe.max_train_examples or None]
    # Dev holds out whole questions/problems, like the unseen-questions test split.
    dev = [e for e in train if problem_split(e.group, recipe.dev_fraction, salt="dev") == "test"]
    train = [e for e in train if problem_split(e.group, recipe.dev_fraction, salt="dev") == "train"]
    tests = {name: splits[name][: recipe.max_eval_examples or None] for name in names if name in splits}
    return TaskData(train, dev, tests, extra)


# -- teacher -----------------------------------------------------------------------------------------------------
def teacher_inputs(recipe: EducationRecipe, task: str, data: TaskData) -> dict[str, Any]:
    """What makes a teacher: a change reruns the teacher stage and every student after it."""
    from suite.teachers.hf import model_digest

    inputs: dict[str, Any] = {
        "backend": recipe.teacher,
        "model": recipe.teacher_model,
        "max_length": recipe.max_length(task),
    }
    if recipe.teacher == "finetune":
        examples = data.train + data.teacher_extra + data.dev
        inputs |= {
            "trainer": recipe.teacher_trainer(task),
            "data": fingerprint([dataclasses.astuple(e) for e in examples]),
        }
    elif recipe.teacher == "hf":
        inputs["weights"] = model_digest(Path(recipe.teacher_model).expanduser().resolve())
    else:
        inputs |= {"url": recipe.teacher_url, "served_model": recipe.teacher_served_model}
    return inputs


def prepare_teacher(recipe: EducationRecipe, task: str, data: TaskData, ledger: StageLedger, resume: bool) -> Any:
    """The teacher backend every student distils from (a fine-tuned cross-encoder unless told otherwise)."""
    from suite.teachers import HFTeacher, OpenAICompatibleTeacher
    from suite.teachers.rubric import RubricClassifierTeacher

    max_length = recipe.max_length(task)
    if recipe.teacher == "openai":
        backend = OpenAICompatibleTeacher(
            recipe.teacher_url, recipe.teacher_served_model, max_tokens=1, top_logprobs=5
        )
        build = lambda out: RubricClassifierTeacher(  # noqa: E731
            backend, SRA_RUBRIC if task == "sra" else VERIFIER_RUBRIC, LABELS
        )
    elif recipe.teacher == "hf":
        build = lambda out: HFTeacher(recipe.teacher_model, task="classification", max_length=max_length)  # noqa: E731
    else:
        build = lambda out: fine_tune_teacher(recipe, task, data, out, resume)  # noqa: E731
    load = lambda out: HFTeacher(out / "hf", task="classification", max_length=max_length)  # noqa: E731
    return ledger.run(f"{task}/teacher", teacher_inputs(recipe, task, data), build,
                      load if recipe.teacher == "finetune" else build)  # fmt: skip


def fine_tune_teacher(recipe: EducationRecipe, task: str, data: TaskData, out: Path, resume: bool) -> Any:
    """Fine-tune ``teacher_model`` (``minilm-l6`` or a local HF folder) as a cross-encoder, saved to ``out/hf``."""
    from suite.students import build_student
    from suite.teachers import HFTeacher

    config = pairs.with_output_dir(recipe.teacher_trainer(task), out / "run")
    torch.manual_seed(config.seed)  # the fresh classification head is drawn here
    if recipe.teacher_model == "minilm-l6":
        teacher = build_student("minilm-classifier", num_labels=2)
    else:  # any local HF encoder folder, through the same student entry that exports it
        teacher = build_student("hf-classifier", path=recipe.teacher_model, num_labels=2)
    tokenizer, max_length = teacher.tokenizer, recipe.max_length(task)
    tokenizer.model_max_length = max_length  # what the exported teacher will truncate to
    train, dev = (
        encode(tokenizer, data.train + data.teacher_extra, max_length),
        encode(tokenizer, data.dev, max_length),
    )
    print(f"[{task}] teacher: fine-tuning {recipe.teacher_model} on {len(train)} pairs")
    pairs.fine_tune_cross_encoder(teacher, tokenizer, train, dev, config, resume=resume)
    teacher.model.save_pretrained(out / "hf")
    tokenizer.save_pretrained(out / "hf")
    return HFTeacher(out / "hf", task="classification", max_length=max_length)


def encode(tokenizer: Any, examples: list[Example], max_length: int) -> list[dict]:
    return pairs.encode_pairs(tokenizer, [(e.text, e.text_pair) for e in examples], [e.label for e in examples],
                              max_length)  # fmt: skip


def teacher_logits(teacher: Any, examples: list[Example], task_dir: Path) -> torch.Tensor:
    return pairs.stored_teacher_logits(teacher, [(e.text, e.text_pair) for e in examples], task_dir / "teacher_store")


# -- metrics -----------------------------------------------------------------------------------------------------
def split_metrics(probs: np.ndarray, labels: np.ndarray, noisy_probs: np.ndarray, noisy_labels: np.ndarray) -> dict:
    """Accuracy, macro-F1, QWK, ECE on a split; PDR (survey Eq. 27) of accuracy under answer typos on its prefix."""
    from suite.eval import accuracy, expected_calibration_error, macro_f1, performance_drop_rate
    from suite.eval import quadratic_weighted_kappa as qwk

    predictions = probs.argmax(-1).tolist()
    clean_prefix = accuracy(predictions[: len(noisy_labels)], noisy_labels.tolist())
    noisy = accuracy(noisy_probs.argmax(-1).tolist(), noisy_labels.tolist())
    gold = labels.tolist()
    return {"accuracy": accuracy(predictions, gold), "macro_f1": macro_f1(predictions, gold),
            "qwk": qwk(predictions, gold, rating_range=(0, 1)), "ece": expected_calibration_error(probs, labels),
            "pdr_typos": performance_drop_rate(clean_prefix, noisy)}  # fmt: skip


def labels_of(examples: list[Example]) -> np.ndarray:
    return np.array([e.label for e in examples], dtype=np.int64)


# -- the pack ----------------------------------------------------------------------------------------------------
class EducationTask(Pack):
    """One task (``sra`` or ``verifier``) as the shared stages see it."""

    def __init__(self, recipe: EducationRecipe, task: str, ledger: StageLedger, resume: bool):
        self.recipe, self.task, self.resume = recipe, task, resume
        self.dir, self.max_length = ledger.root / task, recipe.max_length(task)
        self.data = load_task(recipe, task)
        print(f"[{task}] data: " + ", ".join(f"{k} {v}" for k, v in self.data.sizes().items()))
        self.noisy = {s: self.data.perturbed(s, recipe.robustness_examples) for s in self.data.tests}
        write_eval_data(self.dir / "data", self.data.tests)
        self.teacher = prepare_teacher(recipe, task, self.data, ledger, resume)
        print(f"[{task}] teacher outputs: through the teacher-output store")
        self.train_logits = teacher_logits(self.teacher, self.data.train, self.dir)
        self.students = {arch: student_setup(recipe, task, arch, self.data) for arch in recipe.students}
        self.probs: dict[str, dict[str, np.ndarray]] = {}  # model -> split -> probs (first seed), for the plots

    def variants(self) -> list[Variant]:
        recipe = self.recipe
        return [Variant(f"{self.task}_{arch}_{name}", arch, terms, recipe.seeds_of(arch), kd=terms.get("kd", 0) > 0)
                for arch in recipe.students for name, terms in recipe.variants.items()]  # fmt: skip

    def student_settings(self, variant: Variant) -> Any:
        setup = self.students[variant.student]
        train = fingerprint([dataclasses.astuple(e) for e in self.data.train])
        return {"kwargs": setup["kwargs"], "trainer": setup["trainer"], "max_length": self.max_length,
                "kd": self.recipe.kd, "train": train}  # fmt: skip

    def train(self, variant: Variant, seed: int, directory: Path) -> torch.nn.Module:
        from suite.students import build_student
        from suite.students.io import save_student

        setup, terms = self.students[variant.student], " + ".join(f"{w:g} x {t}" for t, w in variant.terms.items())
        print(f"[{self.task}] {variant.name} seed {seed}: {terms}")
        torch.manual_seed(seed)
        student = build_student(setup["registry"], **setup["kwargs"])
        if setup["registry"] == "minilm-truncated":  # pretrained embeddings: keep them, train the layers
            student.get_input_embeddings().weight.requires_grad_(False)
        items = pairs.attach_teacher_logits(
            encode(setup["tokenizer"], self.data.train, self.max_length), self.train_logits
        )
        dev = encode(setup["tokenizer"], self.data.dev, self.max_length)
        config = pairs.with_output_dir(setup["trainer"], directory, seed=seed)
        pairs.train_pair_student(student, setup["tokenizer"], items, dev, config, terms=variant.terms,
                                 kd=self.recipe.kd, resume=self.resume)  # fmt: skip
        save_student(student, directory / "model", setup["registry"], setup["kwargs"], setup["tokenizer"])
        return student

    def load(self, variant: Variant, seed: int, directory: Path) -> torch.nn.Module:
        from suite.students.io import load_student

        return load_student(directory / "model")[0]

    def evaluate(self, trained: list[Trained]) -> list[dict]:
        out = []
        for run in trained:
            tokenizer = self.students[run.variant.student]["tokenizer"]
            probs = {s: pairs.predict_proba(run.model, tokenizer, encode(tokenizer, e, self.max_length))
                     for s, e in self.data.tests.items()}  # fmt: skip
            noisy = {s: pairs.predict_proba(run.model, tokenizer, encode(tokenizer, e, self.max_length))
                     for s, e in self.noisy.items()}  # fmt: skip
            self.probs.setdefault(run.variant.name, probs)
            out.append(self._metrics(probs, noisy))
        return out

    def _metrics(self, probs: dict[str, np.ndarray], noisy: dict[str, np.ndarray]) -> dict:
        return {s: split_metrics(probs[s], labels_of(e), noisy[s], labels_of(self.noisy[s]))
                for s, e in self.data.tests.items()}  # fmt: skip

    def baselines(self) -> dict[str, dict]:
        """The majority class of the training labels, predicted for every example."""
        counts = np.bincount(labels_of(self.data.train), minlength=len(LABELS))
        constant = lambda n: np.tile(counts / counts.sum(), (n, 1))  # noqa: E731
        probs = {s: constant(len(e)) for s, e in self.data.tests.items()}
        return {f"{self.task}_majority": self._metrics(probs, {s: constant(len(e)) for s, e in self.noisy.items()})}

    def teacher_result(self) -> ModelResult:
        from suite.eval import parameter_count

        probs = {s: teacher_logits(self.teacher, e, self.dir).softmax(-1).numpy() for s, e in self.data.tests.items()}
        noisy = {s: teacher_logits(self.teacher, e, self.dir).softmax(-1).numpy() for s, e in self.noisy.items()}
        self.probs[f"{self.task}_teacher"] = probs
        model = getattr(self.teacher, "model", None)
        return ModelResult.single("teacher", self._metrics(probs, noisy), parameter_count(model) if model else 0)

    def export(self, trained: Trained, target: Path) -> Path | None:
        return self._export(trained.directory / "model", target, trained.variant.name)

    def export_teacher(self, target: Path) -> Path | None:
        from suite.students import build_student
        from suite.students.io import save_student
        from suite.teachers import HFTeacher

        if not isinstance(self.teacher, HFTeacher):
            print(f"[{self.task}] teacher: not exported (not a local model)")
            return None
        kwargs = {"path": str(self.teacher.path), "num_labels": 2}
        model = build_student("hf-classifier", **kwargs)
        model.tokenizer.model_max_length = self.max_length
        saved = save_student(model, self.dir / "teacher" / "model", "hf-classifier", kwargs, model.tokenizer)
        return self._export(saved, target, f"{self.task}_teacher")

    def _export(self, model_dir: Path, target: Path, name: str) -> Path:
        from suite.eval import parameter_count
        from suite.export.package import ModelCardInfo
        from suite.export.saved import export_saved_text_student
        from suite.students.io import load_student

        params = parameter_count(load_student(model_dir)[0])
        card = ModelCardInfo(name=name, license="see the datasets' licenses", datasets=[self.task])
        eval_data = self.dir / "data" / f"{next(iter(self.data.tests))}.jsonl"
        return export_saved_text_student(
            model_dir, target, int8=self.recipe.int8, labels=LABELS, card=card, eval_data=eval_data,
            max_metric_drop=0.01, metrics={"params": params}, drop_failing_variants=True,
        )  # fmt: skip


def student_setup(recipe: EducationRecipe, task: str, arch: str, data: TaskData) -> dict[str, Any]:
    """Registry name, kwargs, tokenizer and trainer of one student architecture."""
    from suite.hub import load_minilm
    from suite.students.text import build_vocab_tokenizer

    max_length = recipe.max_length(task)
    if arch == "tiny":
        tokenizer = build_vocab_tokenizer([f"{e.text} {e.text_pair}" for e in data.train], recipe.vocab_size)
        kwargs = {"vocab_size": len(tokenizer), "num_labels": 2, "dim": recipe.tiny_dim, "layers": recipe.tiny_layers,
                  "max_len": max_length, "pad_id": tokenizer.pad_token_id}  # fmt: skip
        return {"registry": "tiny-text-arch", "kwargs": kwargs, "tokenizer": tokenizer, "trainer": recipe.tiny_trainer}
    _, tokenizer = load_minilm(num_labels=2, num_layers=2)
    tokenizer.model_max_length = max_length
    return {"registry": "minilm-truncated", "kwargs": {"num_labels": 2}, "tokenizer": tokenizer,
            "trainer": recipe.minilm2_trainer}  # fmt: skip


def write_eval_data(data_dir: Path, tests: dict[str, list[Example]]) -> None:
    """Test splits as JSONL (text, text_pair, label) for ``distill eval`` and the int8 acceptance check."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for split, examples in tests.items():
        lines = [json.dumps({"text": e.text, "text_pair": e.text_pair, "label": e.label}) for e in examples]
        (data_dir / f"{split}.jsonl").write_text("\n".join(lines) + "\n")


def benchmark(recipe: EducationRecipe, task: str, exports: dict[str, Path]) -> dict[str, Any]:
    """Teacher vs students at the task's max length: onnxruntime fp32 + int8 and eager PyTorch at batch 1, then
    fp32 and PyTorch at batch 32 with fewer repeats (a teacher call at batch 32 takes a second or more here)."""
    from suite.bench import run_benchmark

    if not exports:
        return {}
    dirs, out = list(exports.values()), Path(recipe.output_dir) / "bench" / task
    common = {"providers": ("cpu",), "warmup": 3, "seq_len": recipe.max_length(task), "progress": recipe.progress}
    single = run_benchmark(dirs, batch_sizes=(1,), variants=("fp32", "int8"), out_dir=out / "batch1",
                           repeats=recipe.bench_repeats, metric="accuracy", **common)  # fmt: skip
    batched = run_benchmark(dirs, batch_sizes=(32,), variants=("fp32",), out_dir=out / "batch32",
                            repeats=max(5, recipe.bench_repeats // 3), **common)  # fmt: skip
    return {"machine": single["machine"], "results": single["results"] + batched["results"]}


@dataclass
class TaskResult:
    """What one task contributes to the summary and the report."""

    task: str
    pack: EducationTask
    results: dict[str, ModelResult]
    exports: dict[str, Path]
    bench: dict[str, Any]


def run_task(recipe: EducationRecipe, task: str, ledger: StageLedger, resume: bool) -> TaskResult:
    pack = EducationTask(recipe, task, ledger, resume)
    trained = train_variants(pack, ledger, after=[f"{task}/teacher"])
    teacher = pack.teacher_result()
    results = {f"{task}_teacher": teacher, **evaluate_variants(pack, trained)}
    exports = {}
    teacher_export = pack.export_teacher(fresh_export_dir(Path(recipe.output_dir) / "export" / f"{task}_teacher"))
    if teacher_export is not None:
        exports[f"{task}_teacher"] = teacher_export
    exports |= export_first_seeds(pack, trained, Path(recipe.output_dir) / "export")
    return TaskResult(task, pack, results, exports, benchmark(recipe, task, exports))


def run(recipe: EducationRecipe, resume: bool = False) -> dict[str, Any]:
    """Run every task of the recipe end to end and write the report; returns the summary."""
    from domains.education.report import write_model_card, write_report

    if not recipe.tasks:
        raise ConfigError("tasks: nothing to run")
    started, ledger = time.perf_counter(), StageLedger(recipe.output_dir)
    results = [run_task(recipe, task, ledger, resume) for task in recipe.tasks]
    doc = write_report(recipe, results, seconds=time.perf_counter() - started)
    write_model_card(recipe, results, doc)
    release(recipe, results, doc["command"])
    return doc


def release(recipe: EducationRecipe, results: list[TaskResult], command: str) -> None:
    """Copy the recipe's released models beside the model card, each checked on a slice of its first test split."""
    from suite.release import release_exports

    exports = {name: path for r in results for name, path in r.exports.items() if name in recipe.release}
    missing = sorted(set(recipe.release) - set(exports))
    if missing:
        print(f"not released (not exported in this run): {', '.join(missing)}")
    tasks = {r.task: r for r in results}

    def check(released: Path) -> dict[str, Any]:
        task = tasks[released.name.split("_")[0]]
        split = next(iter(task.pack.data.tests))
        return release_check(released, task.pack.data.tests[split][: recipe.release_check_examples], split)

    if exports:
        release_exports(exports, recipe.model_card_path, command, check)
        print(f"released {', '.join(exports)} to {recipe.model_card_path / 'export'}")


def release_check(export_dir: Path, examples: list[Example], split: str) -> dict[str, Any]:
    """Accuracy of the exported ONNX files (fp32 and, where released, int8) on ``examples``."""
    from suite.export.runtime import load_exported

    check: dict[str, Any] = {"split": split, "examples": len(examples)}
    labels = labels_of(examples)
    for variant in ("fp32", "int8"):
        if (export_dir / ("model.onnx" if variant == "fp32" else "model.int8.onnx")).is_file():
            model = load_exported(export_dir, variant=variant)
            probs = model.predict_proba([e.text for e in examples], [e.text_pair for e in examples])
            check[f"accuracy_{variant}"] = float((probs.argmax(-1) == labels).mean())
    return check
