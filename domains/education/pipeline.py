"""``distill run education``: data -> teacher -> stored teacher outputs -> students with and without KD -> metrics
-> ONNX export with parity -> latency -> report. Every stage is a core call; this file only wires them.
"""

from __future__ import annotations

import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from domains.education.data import SRA_SPLITS, VERIFIER_SPLITS, Example, load_sra, load_verifier, problem_split
from domains.education.recipe import SRA_RUBRIC, VERIFIER_RUBRIC, EducationRecipe
from suite import pairs
from suite.errors import ConfigError
from suite.export.errors import ExportParityError

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


def load_task(recipe: EducationRecipe, task: str) -> TaskData:
    if task == "sra":
        splits = load_sra(recipe.sra_path, recipe.sra_corpus)
        names, extra = SRA_SPLITS, []
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
def prepare_teacher(recipe: EducationRecipe, task: str, data: TaskData, task_dir: Path, resume: bool) -> Any:
    """The teacher backend whose logits every student distils (a fine-tuned cross-encoder unless told otherwise)."""
    from suite.teachers import HFTeacher, OpenAICompatibleTeacher
    from suite.teachers.rubric import RubricClassifierTeacher

    max_length = recipe.max_length(task)
    if recipe.teacher == "openai":
        backend = OpenAICompatibleTeacher(
            recipe.teacher_url, recipe.teacher_served_model, max_tokens=1, top_logprobs=5
        )
        template = SRA_RUBRIC if task == "sra" else VERIFIER_RUBRIC
        return RubricClassifierTeacher(backend, template, ["incorrect", "correct"])
    if recipe.teacher == "hf":
        return HFTeacher(recipe.teacher_model, task="classification", max_length=max_length)
    hf_dir = task_dir / "teacher" / "hf"
    if (hf_dir / "config.json").is_file():
        print(f"[{task}] teacher: reusing the fine-tuned teacher in {hf_dir}")
    else:
        fine_tune_teacher(recipe, task, data, task_dir / "teacher", resume)
    return HFTeacher(hf_dir, task="classification", max_length=max_length)


def fine_tune_teacher(recipe: EducationRecipe, task: str, data: TaskData, teacher_dir: Path, resume: bool) -> None:
    """Fine-tune ``teacher_model`` (``minilm-l6`` or a local HF folder) as a cross-encoder; saved as an HF folder
    (``teacher_dir/hf``, what HFTeacher loads)."""
    from suite.students import build_student

    config = pairs.with_output_dir(recipe.teacher_trainer(task), teacher_dir / "run")
    torch.manual_seed(config.seed)  # the fresh classification head is drawn here
    if recipe.teacher_model == "minilm-l6":
        teacher = build_student("minilm-classifier", num_labels=2)
    else:  # any local HF encoder folder, through the same student entry that exports it
        teacher = build_student("hf-classifier", path=recipe.teacher_model, num_labels=2)
    tokenizer = teacher.tokenizer
    tokenizer.model_max_length = recipe.max_length(task)  # what the exported teacher will truncate to
    train = encode(tokenizer, data.train + data.teacher_extra, recipe.max_length(task))
    dev = encode(tokenizer, data.dev, recipe.max_length(task))
    print(f"[{task}] teacher: fine-tuning {recipe.teacher_model} on {len(train)} pairs")
    pairs.fine_tune_cross_encoder(teacher, tokenizer, train, dev, config, resume=resume)
    teacher.model.save_pretrained(teacher_dir / "hf")
    tokenizer.save_pretrained(teacher_dir / "hf")


def save_local_teacher(hf_dir: Path, out_dir: Path, max_length: int) -> Path:
    """A local HF teacher as a saved student (``hf-classifier``), which is what export takes."""
    from suite.students import build_student
    from suite.students.io import save_student

    kwargs = {"path": str(hf_dir), "num_labels": 2}
    teacher = build_student("hf-classifier", **kwargs)
    teacher.tokenizer.model_max_length = max_length
    return save_student(teacher, out_dir, "hf-classifier", kwargs, teacher.tokenizer)


def encode(tokenizer: Any, examples: list[Example], max_length: int) -> list[dict]:
    return pairs.encode_pairs(tokenizer, [(e.text, e.text_pair) for e in examples], [e.label for e in examples],
                              max_length)  # fmt: skip


def teacher_logits(teacher: Any, examples: list[Example], task_dir: Path) -> torch.Tensor:
    return pairs.stored_teacher_logits(teacher, [(e.text, e.text_pair) for e in examples], task_dir / "teacher_store")


# -- students ----------------------------------------------------------------------------------------------------
@dataclass
class Arch:
    """How to build one student architecture: registry name, its kwargs, tokenizer and trainer settings."""

    name: str
    registry_name: str
    kwargs: dict[str, Any]
    tokenizer: Any
    trainer: Any

    def build(self) -> torch.nn.Module:
        from suite.students import build_student

        model = build_student(self.registry_name, **self.kwargs)
        if self.registry_name == "minilm-truncated":  # pretrained embeddings: keep them, train the layers
            model.get_input_embeddings().weight.requires_grad_(False)
        return model


def architectures(recipe: EducationRecipe, task: str, data: TaskData) -> list[Arch]:
    from suite.hub import load_minilm
    from suite.students.text import build_vocab_tokenizer

    max_length, archs = recipe.max_length(task), []
    if "tiny" in recipe.students:
        tokenizer = build_vocab_tokenizer([f"{e.text} {e.text_pair}" for e in data.train], recipe.vocab_size)
        kwargs = {"vocab_size": len(tokenizer), "num_labels": 2, "dim": recipe.tiny_dim,
                  "layers": recipe.tiny_layers, "max_len": max_length, "pad_id": tokenizer.pad_token_id}  # fmt: skip
        archs.append(Arch("tiny", "tiny-text-arch", kwargs, tokenizer, recipe.tiny_trainer))
    if "minilm2" in recipe.students:
        _, tokenizer = load_minilm(num_labels=2, num_layers=2)
        tokenizer.model_max_length = max_length
        archs.append(Arch("minilm2", "minilm-truncated", {"num_labels": 2}, tokenizer, recipe.minilm2_trainer))
    return archs


def model_name(task: str, arch: str, kd: bool) -> str:
    return f"{task}_{arch}_{'kd' if kd else 'no_kd'}"


# -- metrics -----------------------------------------------------------------------------------------------------
def split_metrics(probs: np.ndarray, labels: np.ndarray, noisy_probs: np.ndarray, noisy_labels: np.ndarray) -> dict:
    """Accuracy, macro-F1, QWK, ECE on a split; PDR (survey Eq. 27) of accuracy under answer typos on its prefix."""
    from suite.eval import (
        accuracy,
        expected_calibration_error,
        macro_f1,
        performance_drop_rate,
        quadratic_weighted_kappa,
    )

    predictions = probs.argmax(-1).tolist()
    clean_prefix = accuracy(predictions[: len(noisy_labels)], noisy_labels.tolist())
    return {
        "accuracy": accuracy(predictions, labels.tolist()),
        "macro_f1": macro_f1(predictions, labels.tolist()),
        "qwk": quadratic_weighted_kappa(predictions, labels.tolist(), rating_range=(0, 1)),
        "ece": expected_calibration_error(probs, labels),
        "pdr_typos": performance_drop_rate(
            clean_prefix, accuracy(noisy_probs.argmax(-1).tolist(), noisy_labels.tolist())
        ),
    }


def softmax(logits: torch.Tensor) -> np.ndarray:
    return logits.float().softmax(-1).numpy()


@dataclass
class TaskResult:
    """What one task contributes to the summary and the report."""

    task: str
    max_length: int
    sizes: dict[str, int]
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> params, kd, metrics, probs
    seed_study: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # arch -> kd/no_kd -> per-seed acc
    labels: dict[str, np.ndarray] = field(default_factory=dict)  # gold labels per test split
    teacher: Any = None  # the backend the students distilled from
    export_dirs: dict[str, Path] = field(default_factory=dict)
    bench: dict[str, Any] = field(default_factory=dict)


def run_task(recipe: EducationRecipe, task: str, task_dir: Path, resume: bool) -> TaskResult:
    data = load_task(recipe, task)
    sizes = {"train": len(data.train), "dev": len(data.dev), "teacher_extra": len(data.teacher_extra),
             **{k: len(v) for k, v in data.tests.items()}}  # fmt: skip
    print(f"[{task}] data: " + ", ".join(f"{k} {v}" for k, v in sizes.items()))
    result = TaskResult(task, recipe.max_length(task), sizes, labels={s: labels_of(e) for s, e in data.tests.items()})
    write_eval_data(task_dir / "data", data.tests)
    teacher = result.teacher = prepare_teacher(recipe, task, data, task_dir, resume)
    n_noisy = recipe.robustness_examples
    noisy = {s: data.perturbed(s, n_noisy) for s in data.tests}
    print(f"[{task}] teacher outputs: through the teacher-output store")
    train_logits = teacher_logits(teacher, data.train, task_dir)
    metrics, probs = {}, {}
    for split, examples in data.tests.items():
        probs[split] = softmax(teacher_logits(teacher, examples, task_dir))
        noisy_probs = softmax(teacher_logits(teacher, noisy[split], task_dir))
        metrics[split] = split_metrics(probs[split], labels_of(examples), noisy_probs, labels_of(noisy[split]))
    result.models[f"{task}_teacher"] = {"params": teacher_params(teacher), "kd": False, "metrics": metrics,
                                        "probs": probs, "arch": "teacher"}  # fmt: skip
    for arch in architectures(recipe, task, data):
        train_students(recipe, task, arch, data, noisy, train_logits, task_dir, result, resume)
    return result


def labels_of(examples: list[Example]) -> np.ndarray:
    return np.array([e.label for e in examples], dtype=np.int64)


def teacher_params(teacher: Any) -> int:
    from suite.eval import parameter_count

    model = getattr(teacher, "model", None)
    return parameter_count(model) if model is not None else 0


def train_students(
    recipe: EducationRecipe,
    task: str,
    arch: Arch,
    data: TaskData,
    noisy: dict[str, list[Example]],
    train_logits: torch.Tensor,
    task_dir: Path,
    result: TaskResult,
    resume: bool,
) -> None:
    """Train ``arch`` with and without KD for each seed; the first seed's models are saved for export."""
    from suite.eval import parameter_count
    from suite.students.io import save_student

    max_length = recipe.max_length(task)
    train = pairs.attach_teacher_logits(encode(arch.tokenizer, data.train, max_length), train_logits)
    dev = encode(arch.tokenizer, data.dev, max_length)
    tests = {s: encode(arch.tokenizer, e, max_length) for s, e in data.tests.items()}
    noisy_items = {s: encode(arch.tokenizer, e, max_length) for s, e in noisy.items()}
    seeds = recipe.seeds if arch.name == "tiny" else recipe.seeds[: recipe.minilm2_seeds]
    study = result.seed_study.setdefault(arch.name, {"kd": [], "no_kd": []})
    for kd in (True, False):
        name = model_name(task, arch.name, kd)
        for seed in seeds:
            run_dir = task_dir / "students" / f"{name}_s{seed}"
            print(f"[{task}] {name} seed {seed}: {'CE + soft-label KD (Eq. 1)' if kd else 'hard labels only'}")
            torch.manual_seed(seed)
            student = arch.build()
            config = pairs.with_output_dir(arch.trainer, run_dir, seed=seed)
            pairs.train_pair_student(student, arch.tokenizer, train, dev, config, kd=kd, alpha=recipe.alpha,
                                     temperature=recipe.temperature, resume=resume)  # fmt: skip
            metrics, probs = {}, {}
            for split, items in tests.items():
                probs[split] = pairs.predict_proba(student, arch.tokenizer, items)
                noisy_probs = pairs.predict_proba(student, arch.tokenizer, noisy_items[split])
                metrics[split] = split_metrics(probs[split], pairs.item_labels(items), noisy_probs,
                                               pairs.item_labels(noisy_items[split]))  # fmt: skip
            study["kd" if kd else "no_kd"].append(metrics[next(iter(tests))]["accuracy"])
            if seed == seeds[0]:
                save_student(student, run_dir / "model", arch.registry_name, arch.kwargs, arch.tokenizer)
                result.models[name] = {"params": parameter_count(student), "kd": kd, "metrics": metrics,
                                       "probs": probs, "arch": arch.name, "model_dir": run_dir / "model",
                                       "seed": seed}  # fmt: skip


# -- export and latency ------------------------------------------------------------------------------------------
def export_models(recipe: EducationRecipe, result: TaskResult, teacher: Any, task_dir: Path) -> None:
    """ONNX with parity checks for the teacher (if local) and the first-seed students, plus int8 where its accuracy
    on the first test split drops by at most 1 point (otherwise the model ships fp32 only and the report says why).
    """
    from suite.teachers import HFTeacher

    eval_split = next(iter(result.models[f"{result.task}_teacher"]["metrics"]))
    eval_data = task_dir / "data" / f"{eval_split}.jsonl"
    for name, entry in result.models.items():
        model_dir = entry.get("model_dir")
        if model_dir is None and isinstance(teacher, HFTeacher):
            model_dir = save_local_teacher(teacher.path, task_dir / "teacher" / "model", result.max_length)
        if model_dir is None:
            print(f"[{result.task}] {name}: not exported (the teacher is not a local model)")
            continue
        print(f"[{result.task}] exporting {name} (ONNX{' + int8' if recipe.int8 else ''}, parity-checked)")
        target = Path(recipe.output_dir) / "export" / name
        try:
            result.export_dirs[name] = export_one(model_dir, target, name, entry, eval_data, int8=recipe.int8)
        except ExportParityError as error:
            if not recipe.int8 or "int8" not in str(error):
                raise
            entry["int8_rejected"] = str(error)
            print(f"[{result.task}] {name}: int8 rejected ({error}); exporting fp32 only")
            result.export_dirs[name] = export_one(model_dir, target, name, entry, eval_data, int8=False)


def export_one(model_dir: Path, target: Path, name: str, entry: dict, eval_data: Path, int8: bool) -> Path:
    from suite.export.package import ModelCardInfo
    from suite.export.saved import export_saved_text_student

    if target.is_dir():  # this run's own earlier export; export refuses to write over anything else
        shutil.rmtree(target)
    card = ModelCardInfo(name=name, license="see the datasets' licenses", datasets=[name.split("_")[0]])
    return export_saved_text_student(
        model_dir, target, int8=int8, labels=["incorrect", "correct"], card=card, eval_data=eval_data,
        max_metric_drop=0.01, metrics={"params": entry["params"]},
    )  # fmt: skip


def write_eval_data(data_dir: Path, tests: dict[str, list[Example]]) -> None:
    """Test splits as JSONL (text, text_pair, label) for ``distill eval`` and the int8 acceptance check."""
    import json

    data_dir.mkdir(parents=True, exist_ok=True)
    for split, examples in tests.items():
        lines = [json.dumps({"text": e.text, "text_pair": e.text_pair, "label": e.label}) for e in examples]
        (data_dir / f"{split}.jsonl").write_text("\n".join(lines) + "\n")


def benchmark(recipe: EducationRecipe, result: TaskResult) -> None:
    """Teacher vs students at the task's max length: onnxruntime fp32 + int8 and eager PyTorch at batch 1, then
    fp32 and PyTorch at batch 32 with fewer repeats (a teacher call at batch 32 takes a second or more here)."""
    from suite.bench import run_benchmark

    if not result.export_dirs:
        return
    dirs, out = list(result.export_dirs.values()), Path(recipe.output_dir) / "bench" / result.task
    common = {"providers": ("cpu",), "warmup": 3, "seq_len": result.max_length, "progress": True}
    single = run_benchmark(dirs, batch_sizes=(1,), variants=("fp32", "int8"), out_dir=out / "batch1",
                           repeats=recipe.bench_repeats, metric="accuracy", **common)  # fmt: skip
    batched = run_benchmark(dirs, batch_sizes=(32,), variants=("fp32",), out_dir=out / "batch32",
                            repeats=max(5, recipe.bench_repeats // 3), **common)  # fmt: skip
    result.bench = {"machine": single["machine"], "results": single["results"] + batched["results"]}


def run(recipe: EducationRecipe, resume: bool = False) -> dict[str, Any]:
    """Run every task of the recipe end to end and write the report; returns the summary."""
    from domains.education.report import write_model_card, write_report

    started = time.perf_counter()
    out = Path(recipe.output_dir)
    results = []
    for task in recipe.tasks:
        task_dir = out / task
        result = run_task(recipe, task, task_dir, resume)
        export_models(recipe, result, result.teacher, task_dir)
        benchmark(recipe, result)
        results.append(result)
    if not results:
        raise ConfigError("tasks: nothing to run")
    doc = write_report(recipe, results, seconds=time.perf_counter() - started)
    write_model_card(recipe, results, doc)
    return doc
