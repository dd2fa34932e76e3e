"""Tiny students for the export tests, built here (a few units wide) and exported once per session."""

from __future__ import annotations

import pytest
import torch

from suite.export import ModelCardInfo, export_student, text_classifier_spec, vision_spec
from suite.students.text import build_vocab_tokenizer, tiny_text_classifier
from suite.students.vision import TinyConvNet
from tests.export.tiny import CORPUS, IMAGE, LABELS, TEXT_KWARGS, text_batch


@pytest.fixture(scope="session")
def tokenizer():
    return build_vocab_tokenizer(CORPUS * 4, vocab_size=200)


@pytest.fixture(scope="session")
def text_model(tokenizer):
    torch.manual_seed(0)
    return tiny_text_classifier(tokenizer=tokenizer, **TEXT_KWARGS).eval()


@pytest.fixture(scope="session")
def text_inputs(tokenizer):
    """(example, held-out): the held-out batches differ from the example in batch size and length."""
    example = text_batch(tokenizer, ["heat flows"])
    heldout = [text_batch(tokenizer, CORPUS[:3]), text_batch(tokenizer, CORPUS[2:7] + ["water"])]
    return example, heldout


@pytest.fixture(scope="session")
def vision_model():
    torch.manual_seed(0)
    return TinyConvNet(num_classes=4, width=8).eval()


@pytest.fixture(scope="session")
def vision_inputs():
    generator = torch.Generator().manual_seed(0)
    example = {"pixel_values": torch.randn(2, 3, IMAGE, IMAGE, generator=generator)}
    heldout = [{"pixel_values": torch.randn(b, 3, IMAGE, IMAGE, generator=generator)} for b in (1, 5)]
    return example, heldout


@pytest.fixture(scope="session")
def exported_text(tmp_path_factory, text_model, tokenizer, text_inputs):
    """A text classifier exported with every optional part: int8, fp16, weights, metrics, a partial card."""
    example, heldout = text_inputs
    card = ModelCardInfo(
        name="tiny-scorer",
        license="apache-2.0",
        datasets=["scientsbank"],
        intended_use="Scoring short science answers in tests.",
        teacher="none (random weights)",
    )
    return export_student(
        text_model,
        text_classifier_spec(LABELS, max_length=32),
        example,
        heldout,
        tmp_path_factory.mktemp("export") / "text",
        tokenizer=tokenizer,
        metrics={"accuracy": 0.5},
        card=card,
        student_name="tiny-text",
        student_kwargs={**TEXT_KWARGS, "tokenizer": tokenizer},
        int8=True,
        fp16=True,
    )


@pytest.fixture(scope="session")
def exported_vision(tmp_path_factory, vision_model, vision_inputs):
    example, heldout = vision_inputs
    return export_student(
        vision_model,
        vision_spec(IMAGE, labels=4),
        example,
        heldout,
        tmp_path_factory.mktemp("export") / "vision",
        student_name="tiny-convnet",
        student_kwargs={"num_classes": 4, "width": 8},
    )
