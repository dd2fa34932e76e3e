"""The radiology app: drafts from the ONNX student (and the run's teacher), flagged findings, bounded input, the
released student alone on a fresh clone, served through gradio_client, and its screenshot."""

from __future__ import annotations

import pytest
import torch
from gradio_client import Client
from PIL import Image

from apps import radiology
from apps.common import InputError
from apps.radiology import EXAMPLE, MAX_CHARS, build_app, check_findings, flags, load_models, summarize
from apps.screenshot import WINDOW, screenshot, served

CORPUS = [EXAMPLE, "Heart size normal. Lungs are clear. No pleural effusion or pneumothorax.", "No acute disease."]


def export_student(root, name: str) -> None:
    from suite import hub
    from suite.export import export_student, seq2seq_spec
    from suite.students import build_student
    from suite.students.generative import prune_vocabulary

    tokenizer, _ = prune_vocabulary(hub.load_tokenizer("minilm-l6"), CORPUS)
    kwargs = {"vocab_size": len(tokenizer), "pad_id": tokenizer.pad_token_id, "start_id": tokenizer.cls_token_id,
              "end_id": tokenizer.sep_token_id, "size": "2m", "shape": "t5"}  # fmt: skip
    torch.manual_seed(0)
    model = build_student("seq2seq", **kwargs).eval()

    def prompts(texts, length):
        batch = tokenizer(texts, padding=True, truncation=True, max_length=length, return_tensors="pt")
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    heldout = [prompts(CORPUS, 14), prompts(CORPUS[:1], 7)]
    export_student(model, seq2seq_spec(model), prompts(CORPUS[:2], 10), heldout, root / "export" / name,
                   tokenizer=tokenizer, student_name="seq2seq", student_kwargs=kwargs)  # fmt: skip


@pytest.fixture(scope="module")
def radiology_run(tmp_path_factory):
    """A run folder with an exported student and the run's teacher folder (a tiny T5 on MiniLM's vocabulary)."""
    from suite import hub
    from suite.students import build_student
    from suite.students.generative import SpecialTokens

    run = tmp_path_factory.mktemp("radiology-run")
    export_student(run, "impression_t5_2m_fkl")
    tokenizer = hub.load_tokenizer("minilm-l6")
    ids = SpecialTokens.of(tokenizer)
    torch.manual_seed(1)
    teacher = build_student("seq2seq", vocab_size=len(tokenizer), pad_id=ids.pad, start_id=ids.start, end_id=ids.end,
                            size="2m")  # fmt: skip
    teacher.save_pretrained(run / "impression" / "teacher" / "hf")
    tokenizer.save_pretrained(run / "impression" / "teacher" / "hf")
    return run


@pytest.fixture(scope="module")
def radiology_url(radiology_run):
    with served(build_app(radiology_run)) as url:
        yield url


def test_summarize_drafts_with_both_models_and_the_student_matches_the_runtime(radiology_run):
    from suite.export.runtime import load_exported

    models = load_models(radiology_run)
    result = summarize(models, EXAMPLE, max_new_tokens=8)
    assert set(result) == {"student", "teacher"}
    expected = load_exported(radiology_run / "export" / "impression_t5_2m_fkl").generate_text([EXAMPLE], 8)[0]
    assert result["student"]["impression"] == expected
    for role in result.values():
        assert role["ms"] > 0 and set(role) == {"impression", "ms", "hallucinated", "missing"}


def test_flags_name_unsupported_and_left_out_findings():
    findings = "Small right pleural effusion. No pneumothorax. Mild cardiomegaly."
    assert flags(findings, "Right effusion and a small pneumothorax.") == {
        "hallucinated": ["pneumothorax"], "missing": ["cardiomegaly"],
    }  # fmt: skip
    assert flags(findings, "Cardiomegaly with a small right pleural effusion.") == {"hallucinated": [], "missing": []}


def test_input_is_bounded_and_never_quoted():
    with pytest.raises(InputError, match="empty"):
        check_findings("   ")
    secret = "Patient John Example " + "x" * MAX_CHARS
    with pytest.raises(InputError) as raised:
        check_findings(secret)
    assert "John" not in str(raised.value)


def test_served_through_gradio_client(radiology_url, radiology_run):
    client = Client(radiology_url, verbose=False)
    student, teacher = client.predict(EXAMPLE, api_name="/summarize")
    assert student.startswith("**Draft:**") and "hallucinated findings:" in student and " ms" in student
    assert teacher.startswith("**Draft:**")
    with pytest.raises(Exception, match="empty"):
        client.predict("", api_name="/summarize")


def test_with_no_run_the_released_student_is_served_alone(tmp_path, monkeypatch):
    released = tmp_path / "models" / "radiology"
    export_student(released, "impression_t5_2m_fkl")
    monkeypatch.setattr(radiology, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(radiology, "RELEASED", released)
    models = load_models(radiology.resolve_run_dir(None))
    assert models.teacher is None and models.student_name == "impression_t5_2m_fkl"
    assert set(summarize(models, EXAMPLE, max_new_tokens=4)) == {"student"}


def test_screenshot_shows_a_rendered_page(radiology_run, tmp_path):
    path = screenshot(build_app(radiology_run), tmp_path / "app.png")
    with Image.open(path) as image:
        assert image.size == WINDOW
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50, "the screenshot is blank or nearly uniform"
