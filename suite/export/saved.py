"""Export a student saved with :func:`suite.students.io.save_student` (what ``distill export`` calls)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from suite.errors import ConfigError


def token_batches(
    vocab_size: int, shapes: Sequence[tuple[int, int]], seed: int = 0, token_type_ids: bool = False
) -> list[dict[str, torch.Tensor]]:
    """Random token-id batches of the given (batch, length) shapes; the last row of each batch is half padding.

    Parity is a numerical check of the graph against PyTorch, so any in-vocabulary ids will do; the padded rows make
    sure masking is exported too.
    """
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for batch, length in shapes:
        ids = torch.randint(5, vocab_size, (batch, length), generator=generator)
        mask = torch.ones(batch, length, dtype=torch.long)
        if batch > 1:
            mask[-1, length // 2 :] = 0
            ids[-1, length // 2 :] = 0
        batch_inputs = {"input_ids": ids, "attention_mask": mask}
        if token_type_ids:  # second segment in the later half, as in a (text, text_pair) input
            segments = torch.zeros(batch, length, dtype=torch.long)
            segments[:, length // 2 :] = 1
            batch_inputs["token_type_ids"] = segments * mask
        batches.append(batch_inputs)
    return batches


def export_saved_text_student(
    model_dir: str | Path,
    out_dir: str | Path,
    *,
    int8: bool = False,
    fp16: bool = False,
    labels: Sequence[str] | None = None,
    metrics: Mapping[str, Any] | None = None,
    card: Any = None,
    eval_data: str | Path | None = None,
    max_metric_drop: float = 0.01,
    drop_failing_variants: bool = False,
) -> Path:
    """Export a saved text classifier with parity checks (and optional int8/fp16 variants) to ``out_dir``.

    With ``eval_data`` (JSONL with text, text_pair, label), the PyTorch model's accuracy on it goes to metrics.json
    and int8/fp16 variants are accepted only if their accuracy drops by at most ``max_metric_drop``; without it the
    variants are judged by agreement with fp32 on random inputs.
    """
    from suite.export.package import export_student
    from suite.export.spec import text_classifier_spec
    from suite.students.io import MANIFEST, load_student

    model, tokenizer = load_student(model_dir)
    if tokenizer is None:
        raise ConfigError(f"{model_dir}: a text student needs its tokenizer/ folder to be exported")
    manifest = json.loads((Path(model_dir) / MANIFEST).read_text())
    kwargs = manifest["kwargs"]
    if "num_labels" not in kwargs:
        raise ConfigError(f"{model_dir}: only text classifiers (with num_labels) export from a saved folder")
    # Tiny students carry their position limit; MiniLM-based ones take the tokenizer's.
    max_length = int(kwargs.get("max_len") or min(tokenizer.model_max_length, 512))
    segments = "token_type_ids" in tokenizer.model_input_names
    spec = text_classifier_spec(
        list(labels) if labels else int(kwargs["num_labels"]), max_length, token_type_ids=segments,
        fuse=encoder_fusion(model),
    )  # fmt: skip
    eval_fn = None
    if eval_data is not None:
        eval_fn, torch_accuracy, examples = _accuracy_fn(model, tokenizer, eval_data, max_length, spec.labels)
        metrics = {**(metrics or {}), "accuracy": torch_accuracy, "eval_data": str(eval_data), "examples": examples}
    shapes = [(2, 16), (3, 23), (1, 7), (5, min(40, max_length))]
    example, *heldout = token_batches(len(tokenizer), shapes, token_type_ids=segments)
    return export_student(
        model,
        spec,
        example,
        heldout,
        out_dir,
        tokenizer=tokenizer,
        labels=labels,
        metrics=metrics,
        card=card,
        student_name=manifest["student"],
        student_kwargs=kwargs,
        int8=int8,
        fp16=fp16,
        eval_fn=eval_fn,
        max_metric_drop=max_metric_drop,
        drop_failing_variants=drop_failing_variants,
    )


def encoder_fusion(model: Any) -> dict[str, Any] | None:
    """The ``fuse`` entry of a Hugging Face BERT-layout encoder (MiniLM teachers and layer-cut students); None for
    the suite's own tiny students and for layouts onnxruntime's optimizer does not fuse here."""
    from suite.export.spec import FUSED_MODEL_TYPES
    from suite.students.text import MiniLMClassifier

    if not isinstance(model, MiniLMClassifier) or model.model.config.model_type not in FUSED_MODEL_TYPES:
        return None
    config = model.model.config
    return {
        "model_type": config.model_type,
        "num_heads": config.num_attention_heads,
        "hidden_size": config.hidden_size,
    }


def _accuracy_fn(
    model: Any, tokenizer: Any, data: str | Path, max_length: int, label_names: list[str]
) -> tuple[Any, float, int]:
    """``(eval_fn(run) -> accuracy, PyTorch accuracy, examples)`` on a labelled JSONL file."""
    import numpy as np

    from suite.eval.exported import read_labelled_jsonl

    records, label_indices = read_labelled_jsonl(data, "text", "text_pair", "label", label_names)
    labels = np.array(label_indices)
    batches = []
    for start in range(0, len(records), 64):
        chunk = records[start : start + 64]
        batches.append(
            tokenizer(
                [r["text"] for r in chunk],
                [r["text_pair"] for r in chunk],
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="np",
            )
        )

    def eval_fn(run: Any) -> float:
        predictions = np.concatenate([run(dict(b)).argmax(-1) for b in batches])
        return float((predictions == labels).mean())

    def run_torch(inputs: dict[str, Any]) -> Any:
        with torch.no_grad():
            return model(**{k: torch.from_numpy(v) for k, v in inputs.items()})["logits"].numpy()

    return eval_fn, eval_fn(run_torch), len(records)
