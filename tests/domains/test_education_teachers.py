"""The education run with the other teacher backends: an OpenAI-compatible LLM prompted with the scoring rubric
(label probabilities from logprobs become the soft labels) and an already fine-tuned local HF classifier."""

from __future__ import annotations

import math

import pytest

from suite.config import build_config
from tests.domains.education_fixtures import RIGHT, corpus_texts, write_gsm8k, write_semeval, write_tiny_teacher
from tests.fake_llm import FirstTokenServer


def believes_right_answers(prompt: str) -> list[tuple[str, float]]:
    """An "LLM" that says correct (p = 0.9) when the answer is one of the fixture's right answers."""
    answer = prompt.split("Student answer: ")[1].split("\n")[0]
    p = 0.9 if any(answer.startswith(right) for right in RIGHT) else 0.1
    return [(" correct", math.log(p)), (" incorrect", math.log(1 - p)), (" maybe", math.log(1e-4))]


def recipe_for(root, teacher_overrides):
    from domains.education.recipe import EducationRecipe

    semeval = write_semeval(root / "semeval")
    overrides = [
        f"output_dir={root / 'run'}", f"report_dir={root / 'report'}", f"model_card_dir={root / 'card'}",
        f"sra_path={semeval}", "tasks=[sra]", "students=[tiny]", "seeds=[0]", "sra_max_length=48",
        "robustness_examples=8", "vocab_size=300", "tiny_dim=16", "tiny_layers=1", "bench_repeats=5",
        "dev_fraction=0.25", "tiny_trainer.epochs=2", "tiny_trainer.progress=false", "int8=false",
        *teacher_overrides,
    ]  # fmt: skip
    return build_config(EducationRecipe, {}, overrides)


def test_openai_rubric_teacher_gives_the_soft_labels(tmp_path):
    from domains.education.pipeline import run

    with FirstTokenServer(believes_right_answers) as server:
        recipe = recipe_for(tmp_path, ["teacher=openai", f"teacher_url={server.url}", "teacher_served_model=judge"])
        summary = run(recipe)
        asked = len(server.bodies)
    assert asked > 0 and "Is the student answer correct or incorrect?" in server.prompts[0]
    teacher = summary["models"]["sra_teacher"]
    assert teacher["latency_ms_p50"] is None  # a remote teacher is not exported or benchmarked
    # The fixture's gold labels are exactly "answer is a right answer", so the rubric teacher is always right.
    assert all(values["accuracy"] == 1.0 for values in teacher["metrics"].values())
    assert summary["models"]["sra_tiny_kd"]["kd"] and summary["models"]["sra_tiny_kd"]["latency_ms_p50"] > 0
    with FirstTokenServer(believes_right_answers) as server:  # rerun: every answer comes from the store
        run(recipe)
        assert server.bodies == []


def test_local_hf_classifier_teacher_is_used_as_is_and_exported(tmp_path):
    from domains.education.pipeline import run

    teacher_dir = write_tiny_teacher(
        tmp_path / "teacher", corpus_texts(write_semeval(tmp_path / "s"), write_gsm8k(tmp_path / "g"))
    )
    summary = run(recipe_for(tmp_path, ["teacher=hf", f"teacher_model={teacher_dir}"]))
    assert not (tmp_path / "run" / "sra" / "teacher" / "hf").exists()  # not fine-tuned again
    assert summary["models"]["sra_teacher"]["latency_ms_p50"] > 0
    assert (tmp_path / "run" / "export" / "sra_teacher" / "model.onnx").is_file()


@pytest.mark.parametrize("missing", ["teacher_url", "teacher_served_model"])
def test_openai_teacher_needs_its_endpoint(tmp_path, missing):
    from suite.errors import ConfigError

    values = {"teacher_url": "http://127.0.0.1:9", "teacher_served_model": "judge"}
    values.pop(missing)
    with pytest.raises(ConfigError, match="teacher_url"):
        recipe_for(tmp_path, ["teacher=openai", *(f"{k}={v}" for k, v in values.items())])
