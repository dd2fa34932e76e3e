"""The whole radiology run on a slice of the real IU X-ray reports with a tiny local teacher folder: teacher, pruned
student vocabulary, a no-KD and a KD student, evaluation with faithfulness on normal and abnormal reports, ONNX
export, generation latency, report, model card and the released student; and no report text in the logs."""

from __future__ import annotations

import json

import pytest
import torch

from suite.config import build_config


@pytest.fixture(scope="module")
def radiology_run(tmp_path_factory):
    from domains.radiology.pipeline import run
    from domains.radiology.recipe import RadiologyRecipe
    from suite import hub
    from suite.students import build_student
    from suite.students.generative import SpecialTokens

    root = tmp_path_factory.mktemp("radiology")
    tokenizer = hub.load_tokenizer("minilm-l6")
    ids = SpecialTokens.of(tokenizer)
    torch.manual_seed(0)
    teacher = build_student("seq2seq", vocab_size=len(tokenizer), pad_id=ids.pad, start_id=ids.start, end_id=ids.end,
                            size="2m")  # fmt: skip
    teacher.save_pretrained(root / "teacher")
    tokenizer.save_pretrained(root / "teacher")
    overrides = [
        f"output_dir={root / 'run'}", f"report_dir={root / 'report'}", f"model_card_dir={root / 'card'}",
        f"teacher_model={root / 'teacher'}", "max_train_examples=48", "max_eval_examples=24", "max_source=48",
        "max_target=16", "max_new_tokens=12", "seeds=[0]", "bertscore=false", "bench_repeats=2",
        "variants={no_kd: {terms: {task: 1.0}}, fkl: {terms: {task: 0.5, kd: 0.5}, divergence: fkl}}",
        "student_trainer.epochs=1", "student_trainer.progress=false", "progress=false",
    ]  # fmt: skip
    recipe = build_config(RadiologyRecipe, {}, overrides)
    return recipe, run(recipe), root


def test_summary_has_every_model_with_rouge_l_and_faithfulness_on_every_split(radiology_run):
    from suite.results import validate_summary

    _, summary, root = radiology_run
    written = json.loads((root / "report" / "radiology.json").read_text())
    validate_summary(written)
    models = written["models"]
    names = {"impression_teacher", "impression_most_common", "impression_t5_2m_no_kd", "impression_t5_2m_fkl"}
    assert set(models) == names and written["teacher"] == "impression_teacher"
    assert {n: models[n]["kd"] for n in names} == {
        "impression_teacher": False, "impression_most_common": False, "impression_t5_2m_no_kd": False,
        "impression_t5_2m_fkl": True,
    }  # fmt: skip
    for name in names:
        assert set(models[name]["metrics"]) == {"test", "test_normal", "test_abnormal"}
        for metrics in models[name]["metrics"].values():
            assert 0.0 <= metrics["rougeL"] <= 1.0 and 0.0 <= metrics["hallucination_rate"] <= 1.0
            # perplexity of the references for models (teacher-forced), none for a copy baseline
            assert (metrics.get("perplexity", 0) > 1.0) == (name != "impression_most_common")
    assert models["impression_t5_2m_fkl"]["latency_ms_p50"] > 0


def test_report_model_card_and_released_student(radiology_run):
    recipe, _, root = radiology_run
    report = (root / "report" / "radiology.md").read_text()
    assert "Hallucination" in report and "impression_most_common (baseline)" in report
    assert "ms per token" in report
    # unsupported findings by finding, next to what the radiologists' own impressions score
    assert "| finding | references | impression_teacher | impression_t5_2m_no_kd |" in report
    assert "x lower CPU latency" in report and "| impression_teacher |" in report  # the teacher is timed too
    card = (root / "card" / "README.md").read_text()
    assert "radiology.md" in card and "CC BY-NC-ND" in card
    release = json.loads((root / "card" / "release.json").read_text())
    check = release["models"]["impression_t5_2m_fkl"]["check"]
    assert check["examples"] == 24 and 0.0 <= check["rougeL_onnx"] <= 1.0


def test_no_report_text_reaches_the_logs(radiology_run, capsys):
    from domains.radiology.data import load_reports

    recipe, _, _ = radiology_run
    printed = capsys.readouterr().out  # what the module fixture printed is gone; rerun quietly to capture it
    from domains.radiology.pipeline import run

    run(recipe)  # every stage is reused; evaluation and reports print again
    printed += capsys.readouterr().out
    reports = load_reports()[:200]
    assert not any(r.findings in printed or r.impression in printed for r in reports if len(r.impression) > 30)


def test_bertscore_of_a_split_that_repeats_another_is_scored_from_the_same_pairs():
    from domains.radiology.pipeline import metrics_fn
    from domains.radiology.recipe import RadiologyRecipe
    from suite.eval import bert_score

    metrics = metrics_fn(RadiologyRecipe(variants={"no_kd": {"terms": {"task": 1.0}}}))
    sources = ["heart size normal. no effusion.", "small left effusion.", "lungs are clear."]
    references = ["no acute disease.", "left pleural effusion.", "normal chest."]
    outputs = ["no acute cardiopulmonary disease.", "small effusion.", "no acute disease."]
    whole = metrics(sources, references, outputs, None)["bertscore_f1"]
    subset = metrics(sources[1:], references[1:], outputs[1:], None)["bertscore_f1"]  # pairs already scored
    direct = bert_score(outputs, references)["f1"]
    assert whole == pytest.approx(sum(direct) / 3, abs=1e-6)
    assert subset == pytest.approx(sum(direct[1:]) / 2, abs=1e-6)
