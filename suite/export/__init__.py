"""ONNX export of students in three steps (CONVENTIONS item 9): a per-model spec (:mod:`suite.export.spec`), a
generic export (:mod:`suite.export.onnx_export`) and a mandatory parity check against PyTorch; then the exported
directory (:mod:`suite.export.package`) and its torch-free runtime (:mod:`suite.export.runtime`).

Importing this package imports no torch: names resolve lazily, so ``from suite.export.runtime import
load_exported`` works where torch is not installed.
"""

from __future__ import annotations

import importlib
from typing import Any

from suite.export.errors import ExportIntegrityError, ExportParityError

_LAZY = {
    "ExportSpec": "suite.export.spec",
    "GenerationSpec": "suite.export.spec",
    "text_classifier_spec": "suite.export.spec",
    "vision_spec": "suite.export.spec",
    "seq2seq_spec": "suite.export.spec",
    "causal_lm_spec": "suite.export.spec",
    "export_onnx": "suite.export.onnx_export",
    "check_parity": "suite.export.onnx_export",
    "check_variant": "suite.export.onnx_export",
    "quantize_int8": "suite.export.onnx_export",
    "convert_fp16": "suite.export.onnx_export",
    "metric_drop": "suite.export.onnx_export",
    "ParityReport": "suite.export.onnx_export",
    "export_student": "suite.export.package",
    "load_torch_student": "suite.export.package",
    "ModelCardInfo": "suite.export.package",
    "load_exported": "suite.export.runtime",
}

__all__ = ["ExportIntegrityError", "ExportParityError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'suite.export' has no attribute '{name}'")
    return getattr(importlib.import_module(_LAZY[name]), name)
