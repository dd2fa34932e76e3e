"""A run directory with two tiny exported models (student and teacher), and the education app launched on it."""

from __future__ import annotations

import pytest
import torch

from domains.education.data import LABELS, sra_pair
from suite.export import export_student, text_classifier_spec
from suite.students.text import build_vocab_tokenizer, count_parameters, tiny_text_classifier

CORPUS = [
    "Explain why bulb A stays on when switch Y is open.",
    "Bulb A is still in a closed path with the battery.",
    "The circuit is open so no current flows through the bulb.",
    "A switch that is closed completes the electrical path.",
    "The battery terminals are connected by a wire, a short circuit.",
]
STUDENT_PARAMS = {"num_labels": 2, "dim": 8, "layers": 1, "heads": 2, "ffn": 16, "dropout": 0.0}
TEACHER_PARAMS = {"num_labels": 2, "dim": 16, "layers": 2, "heads": 2, "ffn": 32, "dropout": 0.0}


def _batch(tokenizer, pairs: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    texts, text_pairs = zip(*pairs, strict=True)
    return dict(tokenizer(list(texts), list(text_pairs), padding=True, return_tensors="pt"))


def _export(out, tokenizer, kwargs: dict, seed: int, metrics: dict | None = None) -> None:
    torch.manual_seed(seed)
    model = tiny_text_classifier(tokenizer=tokenizer, **kwargs).eval()
    pairs = [sra_pair(CORPUS[0], CORPUS[1], CORPUS[i]) for i in range(2, 5)]
    metrics = {"params": count_parameters(model)} if metrics is None else metrics
    heldout = [_batch(tokenizer, pairs), _batch(tokenizer, [(CORPUS[2], "open")])]
    spec = text_classifier_spec(LABELS, max_length=64)
    export_student(model, spec, _batch(tokenizer, pairs[:1]), heldout, out, tokenizer=tokenizer, metrics=metrics)


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """``<tmp>/export/{sra_tiny_kd,sra_teacher}``: two different tiny models; only the student records params."""
    run = tmp_path_factory.mktemp("run")
    tokenizer = build_vocab_tokenizer(CORPUS * 4, vocab_size=120)
    _export(run / "export" / "sra_tiny_kd", tokenizer, STUDENT_PARAMS, seed=0)
    _export(run / "export" / "sra_teacher", tokenizer, TEACHER_PARAMS, seed=1, metrics={})
    return run


@pytest.fixture(scope="module")
def app_url(run_dir):
    """The app served on a free loopback port for the tests of one module."""
    from apps.education import build_app
    from apps.screenshot import served

    with served(build_app(run_dir)) as url:
        yield url
