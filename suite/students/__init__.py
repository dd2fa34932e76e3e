"""Student factories, by the names users type (``--student tiny-text``).

Filled in this one place with lazy ``"module:attr"`` targets, so listing names imports neither transformers nor
timm. Text students follow the contract in :mod:`suite.students.text`, vision students the one in
:mod:`suite.students.vision`.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from suite.errors import ConfigError
from suite.registry import Registry

if TYPE_CHECKING:
    from torch import nn

STUDENTS = Registry("student")
STUDENTS.register(
    "tiny-text",
    "suite.students.text:tiny_text_classifier",
    "tiny Transformer text classifier (64 dim, 2 layers); < 1M params with an 8k-vocab tokenizer",
)
STUDENTS.register(
    "tiny-text-arch",
    "suite.students.text:TinyTextClassifier",
    "TinyTextClassifier from explicit sizes (vocab_size, num_labels, dim, ...); how saved tiny students are rebuilt",
)
STUDENTS.register(
    "minilm-truncated",
    "suite.students.text:truncated_minilm_classifier",
    "all-MiniLM-L6-v2 cut to its first num_layers (default 2) layers, fresh classification head",
)
STUDENTS.register(
    "minilm-classifier",
    "suite.students.text:minilm_classifier",
    "full 6-layer all-MiniLM-L6-v2 with a fresh head (the teacher to fine-tune)",
)
STUDENTS.register(
    "hf-classifier",
    "suite.students.text:hf_classifier",
    "a local Hugging Face sequence-classifier folder (path=...); how fine-tuned teachers are saved and exported",
)
STUDENTS.register(
    "seq2seq",
    "suite.students.generative:seq2seq_student",
    "encoder-decoder generator, t5 or bart shape, sizes 2m / 8m / 30m, on a domain vocabulary",
)
STUDENTS.register(
    "causal-lm",
    "suite.students.generative:causal_student",
    "decoder-only generator, gpt2 or llama shape, sizes 2m / 8m / 30m, on a domain vocabulary",
)
STUDENTS.register(
    "minilm-bert2bert",
    "suite.students.generative:minilm_bert2bert",
    "all-MiniLM-L6-v2 warm-starting encoder and decoder (49M params): the offline pretrained generative teacher",
)
STUDENTS.register(
    "hf-generator",
    "suite.students.generative:hf_generator",
    "a local Hugging Face seq2seq or causal-LM folder (path=...)",
)
STUDENTS.register(
    "rationale-seq2seq",
    "suite.students.rationale:RationaleStudent",
    "label head on a t5/bart encoder + a decoder that writes the rationale (distilling step-by-step, KPOD)",
)
STUDENTS.register("tiny-convnet", "suite.students.vision:TinyConvNet", "4-stage CNN, ~60k params at width 16")
STUDENTS.register(
    "efficientnet-lite0",
    "suite.students.vision:efficientnet_lite0_student",
    "EfficientNet-Lite0 (timm) with packaged ImageNet weights, 4.7M params",
)
STUDENTS.register(
    "pixel-planner",
    "suite.students.planner:PixelPlanner",
    "frames + ego speed -> perception -> prediction -> planning (action, waypoints, reasoning)",
)


def list_students() -> dict[str, str]:
    """Registered student names with a one-line description."""
    return {name: STUDENTS.describe(name) for name in STUDENTS}


def build_student(name: str, **kwargs: Any) -> nn.Module:
    """Build the student registered as ``name``; unknown or missing arguments are a one-line ConfigError."""
    factory = STUDENTS.get(name)
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"student '{name}': {exc}") from None
    return factory(**kwargs)
