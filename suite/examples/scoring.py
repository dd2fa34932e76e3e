"""Built-in end-to-end example: distill a MiniLM answer scorer into a tiny student (survey Eq. 1).

1. Fine-tune the offline MiniLM (``minilm-l6``) as a cross-encoder teacher on SciEntsBank train
   (question + reference answer, student answer -> correct/incorrect).
2. Write the teacher's logits for every example through the teacher-output store (a rerun asks the teacher nothing).
3. Train a tiny student (< 1M parameters) from those stored logits with hard-label CE + soft-label KD, and the same
   student with hard labels only as the baseline.
4. Print accuracy of teacher and students on the unseen-answers split.

``distill run`` runs it with the ``quick`` profile; ``distill train configs/example_scoring.yaml`` runs the recipe from
a YAML file.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from suite.config import check
from suite.distiller import Distiller
from suite.errors import SuiteError
from suite.losses import SoftLabelKD, SoftLabelKDConfig, TaskLoss
from suite.pairs import encode_pairs, make_collate
from suite.trainer import Trainer, TrainerConfig


def _teacher_trainer() -> TrainerConfig:
    return TrainerConfig(epochs=3, batch_size=32, lr=1e-4, warmup_ratio=0.1, log_every=20)


def _student_trainer() -> TrainerConfig:
    return TrainerConfig(epochs=12, batch_size=32, lr=2e-3, warmup_ratio=0.05, log_every=50)


@dataclass
class ScoringRecipe:
    """Answer-scoring distillation on SemEval-2013 Task 7 (2-way), weights and temperature after Hinton et al."""

    output_dir: str = field(default="runs/example", metadata={"help": "teacher, store, checkpoints, results"})
    dataset: str = field(default="semeval2013-sra", metadata={"help": "registered dataset name"})
    data_path: str = field(default="", metadata={"help": "explicit dataset folder (empty: registry resolution)"})
    corpus: str = field(default="sciEntsBank", metadata={"help": "sciEntsBank | beetle | both"})
    eval_splits: list[str] = field(default_factory=lambda: ["unseen_answers"], metadata={"help": "test splits"})
    dev_fraction: float = field(default=0.1, metadata={"help": "share of train held out for evaluation callbacks"})
    max_train_examples: int = field(default=0, metadata={"help": "cap on training examples (0: all)"})
    max_eval_examples: int = field(default=0, metadata={"help": "cap on examples per test split (0: all)"})
    teacher_model: str = field(default="minilm-l6", metadata={"help": "short model name or local path"})
    freeze_teacher_embeddings: bool = field(
        default=True,
        metadata={"help": "keep the teacher's word embeddings fixed while fine-tuning (faster, ~half the weights)"},
    )
    max_length: int = field(default=128, metadata={"help": "tokens per (question+reference, answer) pair"})
    student_dim: int = field(default=64, metadata={"help": "tiny student width"})
    student_layers: int = field(default=2, metadata={"help": "tiny student transformer layers"})
    vocab_size: int = field(default=6000, metadata={"help": "WordPiece vocabulary trained for the student"})
    temperature: float = field(default=2.0, metadata={"help": "KD temperature tau (Eq. 1)"})
    alpha: float = field(default=0.5, metadata={"help": "weight of the hard-label CE; 1 - alpha weighs KD (Eq. 1)"})
    baseline: bool = field(default=True, metadata={"help": "also train the same student without KD"})
    teacher_trainer: TrainerConfig = field(default_factory=_teacher_trainer)
    student_trainer: TrainerConfig = field(default_factory=_student_trainer)

    def __post_init__(self) -> None:
        check(0 <= self.alpha <= 1, "alpha", f"must be in [0, 1], got {self.alpha}")
        check(self.temperature > 0, "temperature", f"must be > 0, got {self.temperature}")
        check(0 < self.dev_fraction < 0.5, "dev_fraction", f"must be in (0, 0.5), got {self.dev_fraction}")
        check(self.max_length >= 16, "max_length", f"must be >= 16, got {self.max_length}")
        check(self.max_train_examples >= 0, "max_train_examples", "must be >= 0")
        check(self.max_eval_examples >= 0, "max_eval_examples", "must be >= 0")


PROFILES: dict[str, list[str]] = {
    # About 10 minutes on 2 CPU cores (most of it the teacher's one epoch); `full` trains the teacher 3 epochs.
    "quick": ["teacher_trainer.epochs=1", "max_length=96", "student_trainer.epochs=8"],
    "full": [],
}


# -- data ------------------------------------------------------------------------------------------------------------
def pair_text(record: dict[str, Any]) -> tuple[str, str]:
    """(question + first reference answer, student answer): the cross-encoder input."""
    return f"{record['question']} Reference: {record['reference_answers'][0]}", record["student_answer"]


def load_splits(recipe: ScoringRecipe) -> dict[str, list[dict]]:
    from suite.data import load_dataset

    splits = load_dataset(recipe.dataset, path=recipe.data_path or None, corpus=recipe.corpus)
    train = list(splits["train"])
    random.Random(0).shuffle(train)
    if recipe.max_train_examples:
        train = train[: recipe.max_train_examples]
    n_dev = max(1, int(len(train) * recipe.dev_fraction))
    out = {"train": train[n_dev:], "dev": train[:n_dev]}
    for name in recipe.eval_splits:
        if name not in splits:
            raise SuiteError(f"eval_splits: '{name}' is not a split of {recipe.dataset} ({', '.join(splits)})")
        out[name] = list(splits[name])[: recipe.max_eval_examples or None]
    return out


def encode(tokenizer: Any, records: list[dict], max_length: int) -> list[dict[str, Any]]:
    return encode_pairs(tokenizer, [pair_text(r) for r in records], [r["label"] for r in records], max_length)


@torch.no_grad()
def predict(model: torch.nn.Module, tokenizer: Any, items: list[dict], batch_size: int = 64) -> list[int]:
    from suite.distiller import as_output_dict

    collate = make_collate(tokenizer)
    model.eval()
    predictions: list[int] = []
    for start in range(0, len(items), batch_size):
        batch = collate(items[start : start + batch_size])
        predictions += as_output_dict(model(**batch["inputs"]))["logits"].argmax(-1).tolist()
    return predictions


def item_accuracy(predictions: list[int], items: list[dict]) -> float:
    from suite.eval import accuracy

    return accuracy(predictions, [item["label"] for item in items])


def write_jsonl_splits(splits: dict[str, list[dict]], out_dir: Path) -> None:
    """The model inputs of every split as JSONL (text, text_pair, label), for ``distill eval`` on exported models."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, records in splits.items():
        with (out_dir / f"{name}.jsonl").open("w", encoding="utf-8") as stream:
            for record in records:
                text, pair = pair_text(record)
                stream.write(json.dumps({"text": text, "text_pair": pair, "label": record["label"]}) + "\n")


def _with_output_dir(config: TrainerConfig, output_dir: Path) -> TrainerConfig:
    return TrainerConfig(**{**vars(config), "output_dir": str(output_dir)})


# -- stages ----------------------------------------------------------------------------------------------------------
def load_teacher_model(name_or_path: str, num_labels: int) -> Any:
    """A MiniLMClassifier around the offline MiniLM (short name) or any local Hugging Face encoder folder."""
    from suite.students import build_student
    from suite.students.text import MiniLMClassifier

    if name_or_path == "minilm-l6":
        return build_student("minilm-classifier", num_labels=num_labels)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from suite.hub import resolve_model_path

    path = resolve_model_path(name_or_path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels, local_files_only=True)
    return MiniLMClassifier(model, AutoTokenizer.from_pretrained(path, local_files_only=True))


def train_teacher(recipe: ScoringRecipe, splits: dict[str, list[dict]], teacher_dir: Path, resume: bool) -> None:
    """Fine-tune the teacher as a cross-encoder with the one training loop.

    Saved twice: as a Hugging Face folder (``teacher/``, what HFTeacher loads) and, for the offline MiniLM, as a saved
    student (``teacher_model/``, what ``distill export`` takes).
    """
    from suite.students.io import save_student

    torch.manual_seed(recipe.teacher_trainer.seed)  # the fresh classification head is drawn here
    teacher = load_teacher_model(recipe.teacher_model, num_labels=2)
    tokenizer = teacher.tokenizer
    if recipe.freeze_teacher_embeddings:
        teacher.model.get_input_embeddings().weight.requires_grad_(False)
    train, dev = (encode(tokenizer, splits[s], recipe.max_length) for s in ("train", "dev"))
    distiller = Distiller(teacher, {"task": TaskLoss()}, {"task": 1.0})
    config = _with_output_dir(recipe.teacher_trainer, Path(recipe.output_dir) / "teacher_run")

    def evaluate(d: Distiller) -> dict[str, float]:
        return {"accuracy": item_accuracy(predict(d.student, tokenizer, dev), dev)}

    Trainer(distiller, config, train, make_collate(tokenizer), evaluate=evaluate).fit(resume=resume)
    if recipe.teacher_model == "minilm-l6":
        save_student(
            teacher, Path(recipe.output_dir) / "teacher_model", "minilm-classifier", {"num_labels": 2}, tokenizer
        )
    teacher.model.save_pretrained(teacher_dir)
    tokenizer.save_pretrained(teacher_dir)


def teacher_logits(recipe: ScoringRecipe, teacher_dir: Path, records: list[dict]) -> torch.Tensor:
    """Teacher logits for ``records``, answered through the store (rerunning asks the teacher nothing)."""
    from suite.teachers import HFTeacher, TeacherOutputStore

    teacher = HFTeacher(teacher_dir, task="classification", max_length=recipe.max_length)
    store = TeacherOutputStore(Path(recipe.output_dir) / "teacher_outputs")
    inputs = [dict(zip(("text", "text_pair"), pair_text(r), strict=True)) for r in records]
    outputs = store.run(teacher, inputs, batch_size=64)
    return torch.stack([o.logits for o in outputs])


def train_student(
    recipe: ScoringRecipe, tokenizer: Any, train: list[dict], dev: list[dict], kd: bool, name: str, resume: bool
) -> torch.nn.Module:
    """Train the tiny student (with or without KD) and save it to ``output_dir/<name>/model`` (see students.io)."""
    from suite.students import build_student
    from suite.students.io import save_student

    torch.manual_seed(recipe.student_trainer.seed)
    kwargs = {
        "vocab_size": len(tokenizer),
        "num_labels": 2,
        "dim": recipe.student_dim,
        "layers": recipe.student_layers,
        "max_len": recipe.max_length,
        "pad_id": tokenizer.pad_token_id,
    }
    student = build_student("tiny-text-arch", **kwargs)
    terms: dict[str, Any] = {"task": TaskLoss()}
    weights = {"task": 1.0}
    if kd:  # survey Eq. 1: alpha * CE + (1 - alpha) * tau^2 * KL
        terms["kd"] = SoftLabelKD(SoftLabelKDConfig(recipe.temperature))
        weights = {"task": recipe.alpha, "kd": 1 - recipe.alpha}
    config = _with_output_dir(recipe.student_trainer, Path(recipe.output_dir) / name)

    def evaluate(d: Distiller) -> dict[str, float]:
        return {"accuracy": item_accuracy(predict(d.student, tokenizer, dev), dev)}

    Trainer(Distiller(student, terms, weights), config, train, make_collate(tokenizer), evaluate=evaluate).fit(
        resume=resume
    )
    save_student(student, Path(recipe.output_dir) / name / "model", "tiny-text-arch", kwargs, tokenizer)
    return student


def run(recipe: ScoringRecipe, resume: bool = False) -> dict[str, Any]:
    """Run the whole example; returns (and writes to ``results.json``) accuracies per model and split.

    A fine-tuned teacher already in ``output_dir/teacher`` is reused and stored teacher outputs are never recomputed;
    ``resume`` continues interrupted teacher or student training from its latest checkpoint.
    """
    from suite.students.text import build_vocab_tokenizer, count_parameters

    started = time.perf_counter()
    out = Path(recipe.output_dir)
    splits = load_splits(recipe)
    print(f"data: {recipe.dataset}/{recipe.corpus}: " + ", ".join(f"{k} {len(v)}" for k, v in splits.items()))

    teacher_dir = out / "teacher"
    if (teacher_dir / "config.json").is_file():
        print(f"teacher: reusing the fine-tuned teacher in {teacher_dir}")
    else:
        print(f"teacher: fine-tuning {recipe.teacher_model} ({recipe.teacher_trainer.epochs} epoch(s))")
        train_teacher(recipe, splits, teacher_dir, resume)

    write_jsonl_splits(splits, out / "data")
    print("teacher outputs: through the teacher-output store")
    logits = {name: teacher_logits(recipe, teacher_dir, records) for name, records in splits.items()}

    tokenizer = build_vocab_tokenizer([" ".join(pair_text(r)) for r in splits["train"]], recipe.vocab_size)
    items = {name: encode(tokenizer, records, recipe.max_length) for name, records in splits.items()}
    for item, row in zip(items["train"], logits["train"], strict=True):
        item["teacher_logits"] = row

    students = {"student_kd": True, **({"student_no_kd": False} if recipe.baseline else {})}
    results: dict[str, Any] = {"teacher": {"params": _teacher_params(teacher_dir)}}
    for name in recipe.eval_splits:
        predictions = logits[name].argmax(-1).tolist()
        results["teacher"][name] = item_accuracy(predictions, items[name])
    for name, kd in students.items():
        print(f"{name}: training ({'hard labels + soft teacher labels' if kd else 'hard labels only'})")
        student = train_student(recipe, tokenizer, items["train"], items["dev"], kd=kd, name=name, resume=resume)
        results[name] = {"params": count_parameters(student)}
        for split in recipe.eval_splits:
            results[name][split] = item_accuracy(predict(student, tokenizer, items[split]), items[split])

    results["seconds"] = round(time.perf_counter() - started, 1)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print_table(results, recipe.eval_splits)
    return results


def _teacher_params(teacher_dir: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(teacher_dir / "model.safetensors"), framework="pt") as weights:
        return sum(_numel(weights, key) for key in weights.keys())  # noqa: SIM118 (safe_open is not a dict)


def _numel(weights: Any, key: str) -> int:
    count = 1
    for size in weights.get_slice(key).get_shape():
        count *= size
    return count


def print_table(results: dict[str, Any], splits: list[str]) -> None:
    header = f"{'model':<16}{'params':>12}" + "".join(f"{s:>20}" for s in splits)
    print(header)
    for name in ("teacher", "student_kd", "student_no_kd"):
        if name in results:
            row = results[name]
            print(f"{name:<16}{row['params']:>12,}" + "".join(f"{row[s]:>20.4f}" for s in splits))


def _domain():
    from suite.domains import Domain

    return Domain(
        name="example",
        description="built-in: MiniLM scorer -> tiny student on SciEntsBank (survey Eq. 1)",
        recipe=ScoringRecipe,
        profiles=PROFILES,
        run=run,
    )


DOMAIN = _domain()
