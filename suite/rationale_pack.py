"""Rationale distillation as shared stages, for classification packs whose students should also explain.

Stages: ``<task>/teacher`` (a fine-tuned MiniLM cross-encoder, as in :mod:`suite.pair_pack`) -> the teacher's
logits on the training set (teacher-output store) -> ``<task>/rationales`` (gold rationales from the data, or the
teacher's extractive evidence; each one states an answer and is kept only when that answer is the label) ->
students: data budgets x methods x seeds -> evaluation (label metrics next to the majority class and the teacher;
for students with a rationale decoder, their generated rationales: agreement with their own label, ROUGE-L against
gold) -> ONNX export of the label path -> latency.

A method names its weighted terms (:func:`suite.rationale.rationale_terms`): ``task`` (label CE), ``kd`` (the
teacher's logits, survey Eq. 1), ``rationale`` (step-by-step's lambda, Eq. 4) and ``kpod`` (KPOD's token weights and
easy-to-hard steps, Eq. 5, on the rationale term). Every method of one budget trains the same student on the same
examples, so the methods compare like for like.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from suite import pairs
from suite.errors import ConfigError
from suite.losses.rationale import RationaleConfig
from suite.pair_pack import Example, PairClassificationPack, PairData, PairTask, encode
from suite.rationale import Rationale, RationaleExample
from suite.runner import Trained, Variant
from suite.stages import StageLedger, fingerprint


@dataclass
class RationaleTask(PairTask):
    budgets: list[float] = field(default_factory=lambda: [1.0])  # shares of the training set
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {terms: {...}, kpod: bool}
    rationale_source: str = "gold"  # gold (in the examples) | teacher (its extractive evidence)
    differential: bool = False  # teacher rationales also name the teacher's runner-up label
    equal_steps: bool = False  # every budget trains for the optimizer steps the whole training set gets
    max_rationale: int = 64
    student_size: str = "2m"
    kpod: RationaleConfig = field(default_factory=RationaleConfig)
    student_trainer: Any = None  # TrainerConfig
    explain_examples: int = 100  # test examples whose rationales each explaining student writes and is scored on


EVALUATION_FORMAT = 1  # bump when what a student's evaluation measures changes, so stored evaluations are redone
RATIONALE_FORMAT = 2  # bump when the rationale text a source writes changes, so stored rationales are rebuilt
STATED = re.compile(r"(?:pointing to|so the answer is)\s+(.+?)\s*\.?\s*$", re.IGNORECASE)


def stated_answer(text: str, labels: list[str]) -> str | None:
    """The label a rationale ends on (``... pointing to X .`` or ``... so the answer is X .``), None if none."""
    match = STATED.search(text.strip())
    named = match.group(1).strip().lower() if match else ""
    return next((label for label in labels if named == label.lower()), None)


def with_stated_answer(text: str, label: str) -> str:
    """A gold rationale made to state its answer, so agreement with the label is measurable for every source."""
    return f"{text.strip()} so the answer is {label} ."


class RationalePack(PairClassificationPack):
    """One classification task whose students learn from labels, the teacher's logits and rationales."""

    def __init__(self, task: RationaleTask, data: PairData, metrics: Any, ledger: StageLedger, resume: bool):
        from suite.students.text import build_vocab_tokenizer

        task.students = {}  # the pair pack's own students are not trained here
        super().__init__(task, data, metrics, ledger, resume)
        self.task: RationaleTask = task
        self.ledger = ledger
        self.rationales = self.prepare_rationales()
        kept = sum(bool(r) for r in self.rationales)
        if not kept and any(m["terms"].get("rationale", 0) > 0 for m in task.methods.values()):
            raise ConfigError(
                f"{task.name}: every {task.rationale_source} rationale was dropped (none states the label), so no "
                "method can learn from rationales; use a stronger teacher, gold rationales, or no rationale method"
            )
        print(f"[{task.name}] rationales ({task.rationale_source}): {kept} of {len(data.train)} kept "
              f"({len(data.train) - kept} dropped: their stated answer is not the label)")  # fmt: skip
        texts = [f"{e.text} {e.text_pair}" for e in data.train] + [r for r in self.rationales if r]
        self.tokenizer = build_vocab_tokenizer(texts, task.tiny["vocab_size"])
        self.tokenizer.model_max_length = task.max_length
        self.rationale_outputs: dict[str, list[str]] = {}  # model -> rationales written on the test prefix

    # -- rationales --------------------------------------------------------------------------------------------
    def prepare_rationales(self) -> list[str]:
        """One rationale per training example ('' when dropped), each stating the label (stage
        ``<task>/rationales``)."""
        from suite.rationale import attribution_rationales, keep_consistent

        task, train = self.task, self.data.train

        def build(out: Path) -> list[str]:
            if task.rationale_source == "gold":
                found = [Rationale(with_stated_answer(e.rationale, task.labels[e.label]), task.labels[e.label])
                         if e.rationale else Rationale("", None) for e in train]  # fmt: skip
            else:
                model = getattr(self.teacher, "model", None)
                if model is None:
                    raise ValueError("teacher rationales need a local teacher (rationale_source: gold otherwise)")
                print(f"[{task.name}] rationales: the teacher's evidence on {len(train)} training cases")
                found = attribution_rationales(model, self.teacher.tokenizer, [_joined(e) for e in train],
                                               task.labels, max_length=task.max_length,
                                               differential=task.differential)  # fmt: skip
            examples = [RationaleExample(_joined(e), e.label) for e in train]
            kept, _ = keep_consistent(examples, found, task.labels)
            out.mkdir(parents=True, exist_ok=True)
            (out / "rationales.json").write_text(json.dumps([k.rationale for k in kept]))
            return [k.rationale for k in kept]

        def load(out: Path) -> list[str]:
            return json.loads((out / "rationales.json").read_text())

        inputs = {"source": task.rationale_source, "train": fingerprint([dataclasses.astuple(e) for e in train]),
                  "format": RATIONALE_FORMAT}  # fmt: skip
        if task.differential and task.rationale_source == "teacher":  # only then: earlier stores stay valid
            inputs["differential"] = True
        return self.ledger.run(f"{task.name}/rationales", inputs, build, load, after=[f"{task.name}/teacher"])

    # -- Pack hooks ------------------------------------------------------------------------------------------------
    def variants(self) -> list[Variant]:
        task = self.task
        out = []
        for share in task.budgets:
            for name, method in task.methods.items():
                terms = {k: float(v) for k, v in method["terms"].items()}
                from_teacher = terms.get("kd", 0) > 0 or (terms.get("rationale", 0) > 0
                                                          and task.rationale_source == "teacher")  # fmt: skip
                out.append(Variant(f"{task.name}_b{round(100 * share)}_{name}", f"b{round(100 * share)}", terms,
                                   task.seeds["student"], kd=from_teacher))  # fmt: skip
        return out

    def _method(self, variant: Variant) -> dict[str, Any]:
        return self.task.methods[variant.name.removeprefix(f"{self.task.name}_{variant.student}_")]

    def _share(self, variant: Variant) -> float:
        return next(s for s in self.task.budgets if f"b{round(100 * s)}" == variant.student)

    def student_kwargs(self) -> dict[str, Any]:
        ids = self.tokenizer
        return {"num_labels": len(self.task.labels), "vocab_size": len(ids), "pad_id": ids.pad_token_id,
                "start_id": ids.cls_token_id, "end_id": ids.sep_token_id, "size": self.task.student_size,
                "max_len": self.task.max_length}  # fmt: skip

    def student_settings(self, variant: Variant) -> Any:
        method = self._method(variant)
        return {"kwargs": self.student_kwargs(), "trainer": self.task.student_trainer, "share": self._share(variant),
                "kpod": self.task.kpod if method.get("kpod") else None, "max_rationale": self.task.max_rationale,
                "rationales": fingerprint(self.rationales), "kd": self.task.kd,
                **({"equal_steps": True} if self.task.equal_steps else {})}  # fmt: skip

    def train(self, variant: Variant, seed: int, directory: Path) -> torch.nn.Module:
        from suite.rationale import encode_items, train_rationale_student
        from suite.students import build_student
        from suite.students.io import save_student

        task, method = self.task, self._method(variant)
        terms = " + ".join(f"{w:g} x {t}" for t, w in variant.terms.items())
        print(f"[{task.name}] {variant.name} seed {seed}: {terms}")
        chosen = budget_indices(self.data.train, self._share(variant))
        train = self.data.train
        examples = [RationaleExample(train[i].text, train[i].label, self.rationales[i], train[i].text_pair)
                    for i in chosen]  # fmt: skip
        items = encode_items(self.tokenizer, examples, task.max_length, task.max_rationale)
        items = pairs.attach_teacher_logits(items, self.train_logits[chosen])
        torch.manual_seed(seed)
        student = build_student("rationale-seq2seq", **self.student_kwargs())
        config = self.student_schedule(dataclasses.replace(task.student_trainer, output_dir=str(directory / "run"),
                                                           seed=seed))  # fmt: skip
        kpod = task.kpod if method.get("kpod") else RationaleConfig()
        dev = encode(self.tokenizer, self.data.dev, task.max_length)
        train_rationale_student(student, items, config, pad_id=self.tokenizer.pad_token_id, weights=variant.terms,
                                rationale=kpod, kd=task.kd, evaluate=pairs.dev_accuracy(self.tokenizer, dev),
                                resume=self.resume)  # fmt: skip
        save_student(student, directory / "model", "rationale-seq2seq", self.student_kwargs(), self.tokenizer)
        return student.eval()

    def student_schedule(self, config: Any) -> Any:
        """With ``equal_steps``, a budget's student trains for the optimizer steps the whole training set gets in
        ``config.epochs`` epochs and is evaluated as often as a whole-set epoch, so a 10% student is not cut off
        after a tenth of the updates (and early stopping's patience means the same number of steps everywhere)."""
        if not self.task.equal_steps:
            return config
        full_epoch = math.ceil(len(self.data.train) / (config.batch_size * config.grad_accum_steps))
        return dataclasses.replace(config, max_steps=full_epoch * config.epochs, eval_every=full_epoch)

    def evaluate(self, trained: list[Trained]) -> list[dict]:
        """Each student's metrics, a stage of its own (``evaluations/<variant>-s<seed>``, after its training), so
        a resumed or publishing run reads them back instead of measuring every student again."""
        inputs = {"tests": _examples_key(self.data.tests), "noisy": _examples_key(self.data.noisy),
                  "explain_examples": self.task.explain_examples, "max_rationale": self.task.max_rationale,
                  "format": EVALUATION_FORMAT}  # fmt: skip
        out = []
        for run in trained:
            stage = f"{run.variant.name}-s{run.seed}"
            found = self.ledger.run(f"evaluations/{stage}", inputs, lambda d, r=run: self._evaluated(r, d),
                                    _load_evaluation, after=[f"students/{stage}"])  # fmt: skip
            self.probs.setdefault(run.variant.name, {k: np.asarray(v) for k, v in found["probs"].items()})
            if found["written"] is not None:
                self.rationale_outputs.setdefault(run.variant.name, found["written"])
            out.append(found["metrics"])
        return out

    def _evaluated(self, run: Trained, out: Path) -> dict[str, Any]:
        """Metrics, test-split probabilities and (for a student that explains) the rationales it wrote, saved to
        ``out/evaluation.json``."""
        probs = self._probs(run.model, self.tokenizer, self.data.tests)
        metrics, written = self.metrics(probs, self._probs(run.model, self.tokenizer, self.data.noisy)), None
        if run.variant.terms.get("rationale", 0) > 0:
            split = next(iter(self.data.tests))
            written = self.explain(run.model, self.data.tests[split][: self.task.explain_examples])
            metrics[split] |= self.rationale_metrics(run, probs[split], written)
        found = {"metrics": metrics, "probs": {k: v.tolist() for k, v in probs.items()}, "written": written}
        out.mkdir(parents=True, exist_ok=True)
        (out / "evaluation.json").write_text(json.dumps(found, default=float))
        return _load_evaluation(out)  # what a later run reads back, so both runs see the same values

    def rationale_metrics(self, run: Trained, probs: np.ndarray, written: list[str]) -> dict[str, float]:
        """On the first ``explain_examples`` of the first test split: how often the written rationale states the
        student's own label; against the gold rationale where the data has one, its ROUGE-L and BERTScore F1; and,
        where rationales are extractive evidence (teacher-sourced), ERASER comprehensiveness and sufficiency of the
        words it cites for the student's own label path, beside random words (:mod:`suite.eval.eraser`)."""
        from suite.eval import bert_score, rouge
        from suite.eval.eraser import eraser_scores

        examples = next(iter(self.data.tests.values()))[: len(written)]
        predicted = [self.task.labels[i] for i in probs[: len(examples)].argmax(-1)]
        labels = self.task.labels
        agree = [stated_answer(text, labels) == label for text, label in zip(written, predicted, strict=True)]
        out = {"rationale_agreement": float(np.mean(agree))}
        gold = [(w, e.rationale) for w, e in zip(written, examples, strict=True) if e.rationale]
        if gold:
            out["rationale_rougeL"] = rouge([w for w, _ in gold], [g for _, g in gold], rouge_types=("rougeL",))[
                "rougeL"
            ]
            out["rationale_bertscore_f1"] = float(
                np.mean(bert_score([w for w, _ in gold], [g for _, g in gold])["f1"])
            )
        if self.task.rationale_source == "teacher":
            out |= eraser_scores(self._label_probs(run.model), [e.text for e in examples],
                                 [e.text_pair for e in examples], written)  # fmt: skip
        return out

    def _label_probs(self, model: torch.nn.Module):
        """(texts, text pairs) -> the student's class probabilities (its label path)."""

        def predict(texts: list[str], text_pairs: list[str]) -> np.ndarray:
            items = pairs.encode_pairs(self.tokenizer, list(zip(texts, text_pairs, strict=True)), [0] * len(texts),
                                       self.task.max_length)  # fmt: skip
            return pairs.predict_proba(model, self.tokenizer, items)

        return predict

    @torch.no_grad()
    def explain(self, model: torch.nn.Module, examples: list[Example], batch_size: int = 16) -> list[str]:
        texts = []
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            second = [e.text_pair for e in chunk] if any(e.text_pair for e in chunk) else None
            batch = self.tokenizer([e.text for e in chunk], second, truncation=True, max_length=self.task.max_length,
                                   padding=True, return_tensors="pt")  # fmt: skip
            ids = model.eval().explain(batch["input_ids"], batch["attention_mask"],
                                       max_new_tokens=self.task.max_rationale)  # fmt: skip
            texts += self.tokenizer.batch_decode(ids, skip_special_tokens=True)
        return texts

    def shipped(self, model: torch.nn.Module) -> torch.nn.Module:
        """The label path: what the export runs (the rationale decoder stays behind)."""
        from suite.students.rationale import LabelPath

        return LabelPath(model)

    def export(self, trained: Trained, target: Path) -> Path | None:
        return self._export(trained.directory / "model", target, trained.variant.name)

    def export_explain(self, trained: Trained, target: Path) -> Path:
        """The explain path of a student trained with rationales: its encoder-decoder as ONNX (encoder + decoder
        with past, :class:`~suite.export.runtime.ExportedSeq2Seq`), parity-checked at three input widths."""
        from suite.export import export_student, seq2seq_spec

        model = trained.model.eval().seq2seq
        examples = self.data.dev[:6]

        def prompts(chunk: list[Example], length: int) -> dict[str, torch.Tensor]:
            second = [e.text_pair for e in chunk] if any(e.text_pair for e in chunk) else None
            batch = self.tokenizer([e.text for e in chunk], second, padding=True, truncation=True, max_length=length,
                                   return_tensors="pt")  # fmt: skip
            return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

        return export_student(
            model, seq2seq_spec(model, max_length=self.task.max_length), prompts(examples[:2], 24),
            [prompts(examples[2:5], 32), prompts(examples[5:6], 12)], target, tokenizer=self.tokenizer,
        )  # fmt: skip


def _examples_key(splits: dict[str, list[Example]]) -> str:
    return fingerprint({name: [dataclasses.astuple(e) for e in examples] for name, examples in splits.items()})


def _load_evaluation(out: Path) -> dict[str, Any]:
    return json.loads((out / "evaluation.json").read_text())


def _joined(example: Example) -> str:
    return f"{example.text} {example.text_pair}".strip()


def budget_indices(examples: list[Example], share: float) -> list[int]:
    """Positions of the first ``share`` of ``examples`` in a fixed hash order of their content, so budgets nest
    (10% inside 25% inside 50%) and do not depend on the examples' order."""
    keys = [fingerprint(dataclasses.astuple(e)) for e in examples]
    order = sorted(range(len(examples)), key=keys.__getitem__)
    return sorted(order[: max(1, round(share * len(order)))])
