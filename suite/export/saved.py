"""Export a student saved with :func:`suite.students.io.save_student` (what ``distill export`` calls)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from suite.errors import ConfigError


def token_batches(vocab_size: int, shapes: Sequence[tuple[int, int]], seed: int = 0) -> list[dict[str, torch.Tensor]]:
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
        batches.append({"input_ids": ids, "attention_mask": mask})
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
    eval_fn: Any = None,
) -> Path:
    """Export a saved text classifier with parity checks (and optional int8/fp16 variants) to ``out_dir``."""
    from suite.export.package import export_student
    from suite.export.spec import text_classifier_spec
    from suite.students.io import MANIFEST, load_student

    model, tokenizer = load_student(model_dir)
    if tokenizer is None:
        raise ConfigError(f"{model_dir}: a text student needs its tokenizer/ folder to be exported")
    manifest = json.loads((Path(model_dir) / MANIFEST).read_text())
    kwargs = manifest["kwargs"]
    if "num_labels" not in kwargs or "max_len" not in kwargs:
        raise ConfigError(f"{model_dir}: only text classifiers with num_labels and max_len export from a saved folder")
    max_length = int(kwargs["max_len"])
    spec = text_classifier_spec(list(labels) if labels else int(kwargs["num_labels"]), max_length)
    vocab = len(tokenizer)
    example, *heldout = token_batches(vocab, [(2, 16), (3, 23), (1, 7), (5, min(40, max_length))])
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
    )
