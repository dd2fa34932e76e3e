"""The clinical app: an answer with probabilities from the ONNX label path, a rationale from the ONNX explain path
with the case's evidence highlighted, bounded input never quoted, the released students alone on a fresh clone,
served through gradio_client, and its screenshot."""

from __future__ import annotations

import pytest
import torch
from gradio_client import Client
from PIL import Image

from apps import clinical
from apps.clinical import EXAMPLE, MAX_CHARS, answer, build_app, check_case, evidence, load_models
from apps.common import InputError
from apps.screenshot import WINDOW, screenshot, served

LABELS = ["Common Cold", "Psoriasis", "Pneumonia"]
CORPUS = [EXAMPLE, "Red itchy patches on my elbows with silver scales.", "fever cough chills pointing to Pneumonia ."]


def export_students(root, name: str) -> None:
    """A label path and its explain path, exported like the clinical pack does (tiny, untrained)."""
    from suite.export import export_student, seq2seq_spec
    from suite.export.saved import export_saved_text_student
    from suite.students import build_student
    from suite.students.io import save_student
    from suite.students.text import build_vocab_tokenizer

    tokenizer = build_vocab_tokenizer(CORPUS, vocab_size=120)
    tokenizer.model_max_length = 32
    kwargs = {"num_labels": len(LABELS), "vocab_size": len(tokenizer), "pad_id": tokenizer.pad_token_id,
              "start_id": tokenizer.cls_token_id, "end_id": tokenizer.sep_token_id, "size": "2m",
              "max_len": 32}  # fmt: skip
    torch.manual_seed(0)
    student = build_student("rationale-seq2seq", **kwargs).eval()
    saved = save_student(student, root / "saved" / name, "rationale-seq2seq", kwargs, tokenizer)
    export_saved_text_student(saved, root / "export" / name, labels=LABELS)

    def prompts(texts, length):
        batch = tokenizer(texts, padding=True, truncation=True, max_length=length, return_tensors="pt")
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    export_student(student.seq2seq, seq2seq_spec(student.seq2seq), prompts(CORPUS[:2], 12),
                   [prompts(CORPUS, 16), prompts(CORPUS[:1], 8)], root / "export" / f"{name}_explain",
                   tokenizer=tokenizer)  # fmt: skip


@pytest.fixture(scope="module")
def clinical_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("clinical-run")
    export_students(run, "symptom2disease_b100_step_by_step")
    return run


def test_answer_ranks_labels_and_explains_with_the_exported_paths(clinical_run):
    from suite.export.runtime import load_exported

    models = load_models(clinical_run)
    assert models.name == "symptom2disease_b100_step_by_step" and models.explain is not None
    result = answer(models, EXAMPLE)
    label = load_exported(clinical_run / "export" / models.name)
    expected = label.predict_proba([EXAMPLE])[0]
    assert list(result["labels"]) == [LABELS[i] for i in expected.argsort()[::-1][:3]]
    assert abs(sum(result["labels"].values()) - float(expected.sum())) < 1e-5
    writer = load_exported(clinical_run / "export" / f"{models.name}_explain")
    assert result["rationale"] == writer.generate_text([EXAMPLE], clinical.MAX_RATIONALE_TOKENS)[0]
    assert result["ms"] > 0 and result["explain_ms"] > 0


def test_evidence_highlights_the_words_the_rationale_names():
    pieces = evidence("High fever and a dry cough.", "fever and cough pointing to flu .")
    assert [t for t, tag in pieces if tag == "evidence"] == ["fever", "cough"]  # not "and": a function word
    assert "".join(t for t, _ in pieces) == "High fever and a dry cough."


def test_input_is_bounded_and_never_quoted():
    with pytest.raises(InputError, match="empty"):
        check_case("  ", "context only")
    secret = "Patient Jane Example " + "x" * MAX_CHARS
    with pytest.raises(InputError) as raised:
        check_case(secret, "")
    assert "Jane" not in str(raised.value)


def test_served_through_gradio_client(clinical_run):
    with served(build_app(clinical_run)) as url:
        client = Client(url, verbose=False)
        markdown, highlighted = client.predict(EXAMPLE, "", api_name="/answer")
        assert "label path:" in markdown and "rationale" in markdown
        assert highlighted is not None
        with pytest.raises(Exception, match="empty"):
            client.predict("", "", api_name="/answer")


def test_with_no_run_the_released_students_are_served(tmp_path, monkeypatch):
    released = tmp_path / "models" / "clinical"
    export_students(released, "symptom2disease_b100_step_by_step")
    monkeypatch.setattr(clinical, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(clinical, "RELEASED", released)
    models = load_models(clinical.resolve_run_dir(None))
    assert models.name == "symptom2disease_b100_step_by_step" and models.explain is not None


def test_screenshot_shows_a_rendered_page(clinical_run, tmp_path):
    path = screenshot(build_app(clinical_run), tmp_path / "app.png")
    with Image.open(path) as image:
        assert image.size == WINDOW
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50, "the screenshot is blank or nearly uniform"


def test_a_run_serves_the_student_it_released_over_its_first_export(tmp_path):
    run = tmp_path / "run"
    export_students(run, "mtsamples_b100_kpod")  # first in name order among the run's exports
    export_students(run / "model_card", "symptom2disease_b100_step_by_step")  # what the run released
    assert load_models(run).name == "symptom2disease_b100_step_by_step"
    assert load_models(tmp_path / "run" / "model_card").name == "symptom2disease_b100_step_by_step"
