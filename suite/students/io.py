"""Save and load trained students as a folder that needs no pickle and no training code.

``<dir>/student.json`` names the registered student and the JSON keyword arguments that rebuild it,
``<dir>/student.safetensors`` holds the weights and ``<dir>/tokenizer/`` the tokenizer, when there is one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from suite.errors import ModelNotFoundError

MANIFEST = "student.json"
WEIGHTS = "student.safetensors"


def save_student(
    model: nn.Module, out_dir: str | Path, name: str, kwargs: dict[str, Any], tokenizer: Any = None
) -> Path:
    """Write ``model`` (built by ``build_student(name, **kwargs)``) and its tokenizer to ``out_dir``."""
    from safetensors.torch import save_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_model(model, str(out / WEIGHTS))
    (out / MANIFEST).write_text(json.dumps({"student": name, "kwargs": kwargs}, indent=2))
    if tokenizer is not None:
        tokenizer.save_pretrained(out / "tokenizer")
    return out


def load_student(model_dir: str | Path) -> tuple[nn.Module, Any]:
    """Rebuild a student saved by :func:`save_student`; returns ``(model in eval mode, tokenizer or None)``."""
    from safetensors.torch import load_model

    from suite.students import build_student

    root = Path(model_dir)
    if not (root / MANIFEST).is_file() or not (root / WEIGHTS).is_file():
        raise ModelNotFoundError(f"{root}: not a saved student (needs {MANIFEST} and {WEIGHTS})")
    manifest = json.loads((root / MANIFEST).read_text())
    model = build_student(manifest["student"], **manifest["kwargs"])
    load_model(model, str(root / WEIGHTS))
    tokenizer = None
    if (root / "tokenizer").is_dir():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer", local_files_only=True)
    return model.eval(), tokenizer
