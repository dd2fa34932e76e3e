"""The whole education run on small fixtures in the real formats with a tiny BERT teacher: every stage of
``distill run education`` runs (fine-tune, store, students with/without KD, metrics, ONNX export, bench, report)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from suite.config import build_config
from tests.domains.education_fixtures import corpus_texts, write_gsm8k, write_semeval, write_tiny_teacher


@pytest.fixture(scope="module")
def education_run(tmp_path_factory):
    from domains.education.pipeline import run
    from domains.education.recipe import EducationRecipe

    root = tmp_path_factory.mktemp("education")
    semeval, gsm8k = write_semeval(root / "semeval"), write_gsm8k(root / "gsm8k")
    teacher = write_tiny_teacher(root / "teacher", corpus_texts(semeval, gsm8k))
    overrides = [
        f"output_dir={root / 'run'}", f"report_dir={root / 'report'}", f"model_card_dir={root / 'card'}",
        f"sra_path={semeval}", f"gsm8k_path={gsm8k}", f"teacher_model={teacher}", "verifier_rationales=6",
        "sra_max_length=48", "verifier_max_length=48", "seeds=[0,1]", "minilm2_seeds=1", "robustness_examples=8",
        "vocab_size=300", "tiny_dim=16", "tiny_layers=1", "bench_repeats=5", "dev_fraction=0.25",
        "sra_teacher_trainer.lr=1e-3", "verifier_teacher_trainer.lr=1e-3", "tiny_trainer.epochs=2",
        "sra_teacher_trainer.progress=false", "verifier_teacher_trainer.progress=false", "tiny_trainer.progress=false",
        "minilm2_trainer.progress=false",
    ]  # fmt: skip
    recipe = build_config(EducationRecipe, {}, overrides)
    return recipe, run(recipe), root


def test_summary_follows_the_schema_for_every_model(education_run):
    recipe, summary, root = education_run
    written = json.loads((root / "report" / "education.json").read_text())
    assert written == json.loads(json.dumps(summary))
    assert {"command", "machine", "teacher", "models"} <= set(written)
    assert written["teacher"] == "sra_teacher"
    kinds = ("teacher", "majority", "overlap", "tiny_kd", "tiny_no_kd", "minilm2_kd", "minilm2_no_kd")
    expected = {f"{task}_{m}" for task in ("sra", "verifier") for m in kinds} | {"verifier_agreement"}
    assert set(written["models"]) == expected  # the verifier's untrained self-consistency rule is a baseline row
    for name, entry in written["models"].items():
        assert set(entry) == {
            "params",
            "kd",
            "latency_ms_p50",
            "latency_ms_p99",
            "metrics",
            "seeds",
            "metrics_std",
            "metrics_first_seed",
        }
        assert entry["kd"] == (name.endswith("_kd") and not name.endswith("no_kd"))
        baseline = name.endswith(("majority", "overlap", "agreement"))
        assert isinstance(entry["params"], int) and (entry["params"] > 0) == (not baseline)
        if not baseline:
            assert 0 < entry["latency_ms_p50"] <= entry["latency_ms_p99"]
        splits = {"unseen_answers", "unseen_questions", "unseen_domains"} if name.startswith("sra") else {"test"}
        assert set(entry["metrics"]) == splits
        for values in entry["metrics"].values():
            assert set(values) == {"accuracy", "macro_f1", "qwk", "ece", "pdr_typos", "selective_accuracy_80"}
            assert 0 <= values["accuracy"] <= 1 and 0 <= values["ece"] <= 1
    tiny, teacher = written["models"]["sra_tiny_kd"], written["models"]["sra_teacher"]
    assert tiny["params"] < 1_000_000 and teacher["params"] > 0
    assert written["models"]["sra_tiny_kd"]["seeds"] == [0, 1] and written["models"]["sra_minilm2_kd"]["seeds"] == [0]


def test_majority_baseline_predicts_the_most_common_training_label(education_run):
    from domains.education.pipeline import load_task

    recipe, summary, _ = education_run
    data = load_task(recipe, "sra")
    majority = int(np.bincount([e.label for e in data.train]).argmax())
    for split, examples in data.tests.items():
        expected = float(np.mean([e.label == majority for e in examples]))
        assert summary["models"]["sra_majority"]["metrics"][split]["accuracy"] == pytest.approx(expected)


def test_seed_study_pairs_kd_and_no_kd_on_the_same_seeds(education_run):
    _, summary, root = education_run
    report = (root / "report" / "education.md").read_text()
    kd, no_kd = (summary["models"][f"sra_tiny_{v}"] for v in ("kd", "no_kd"))
    assert kd["seeds"] == no_kd["seeds"] == [0, 1]
    assert "| tiny kd |" in report and "difference (mean ± std, pt)" in report  # every variant vs its twin


def test_no_problem_is_in_two_verifier_splits(education_run):
    recipe, _, root = education_run
    from domains.education.pipeline import load_task

    data = load_task(recipe, "verifier")
    train = {e.group for e in data.train} | {e.group for e in data.dev}
    assert train and not train & {e.group for e in data.tests["test"]}
    assert data.teacher_extra and {e.label for e in data.teacher_extra} == {0, 1}


def test_exported_students_match_their_reported_accuracy(education_run):
    """The ONNX student (torch-free runtime) scores the exported test split as the PyTorch model did."""
    from suite.export.runtime import load_exported

    recipe, summary, root = education_run
    data = [json.loads(line) for line in (root / "run" / "sra" / "data" / "unseen_answers.jsonl").open()]
    for name in ("sra_teacher", "sra_tiny_kd", "sra_minilm2_no_kd"):
        model = load_exported(root / "run" / "export" / name)
        probs = model.predict_proba([r["text"] for r in data], [r["text_pair"] for r in data])
        accuracy = float((probs.argmax(-1) == [r["label"] for r in data]).mean())
        exported = summary["models"][name]["metrics_first_seed"]["unseen_answers"]["accuracy"]
        assert accuracy == pytest.approx(exported, abs=1e-9)
        spec = json.loads((root / "run" / "export" / name / "spec.json").read_text())
        assert spec["max_length"] == recipe.sra_max_length
        assert spec["parity"]["fp32"]["max_abs_diff"] <= spec["parity"]["fp32"]["tolerance"]


def test_report_and_model_card_state_the_command_and_the_numbers(education_run):
    _, summary, root = education_run
    report = (root / "report" / "education.md").read_text()
    assert summary["command"] in report and "physical cores" in report
    for figure in (
        "sra_accuracy_vs_latency.png",
        "reliability_sra_teacher.png",
        "reliability_verifier_tiny_kd.png",
        "sra_tiny_variants.png",
    ):
        assert (root / "report" / "education" / figure).stat().st_size > 1000
        assert figure in report
    mean = summary["models"]["sra_tiny_kd"]["metrics"]["unseen_answers"]["accuracy"]
    assert f"{mean:.3f} ± " in report  # two seeds: mean ± std
    exported = summary["models"]["sra_tiny_kd"]["metrics_first_seed"]["unseen_answers"]["accuracy"]
    card = (root / "card" / "README.md").read_text()
    assert "sra_tiny_kd" in card and f"unseen_answers {exported:.3f}" in card


def test_students_are_also_timed_on_one_thread_where_the_machine_has_more(education_run):
    """A sub-millisecond student can be faster on one thread than on all: the bench times batch-1 fp32 both ways and
    the report shows the column (this machine and CI have 2 physical cores)."""
    from suite.bench.latency import physical_cores

    _, _, root = education_run
    rows = json.loads((root / "run" / "bench" / "sra" / "batch1_1thread" / "bench.json").read_text())["results"]
    timed = {r["model"] for r in rows if r["intra_op_threads"] == 1 and r["variant"] == "fp32" and r["p50_ms"] > 0}
    assert physical_cores() > 1 and {"sra_teacher", "sra_tiny_kd"} <= timed
    lines = (root / "report" / "education.md").read_text().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| model | ORT fp32 b1 p50 / p99"))
    assert lines[header].split(" | ")[2] == "ORT fp32 b1, 1 thread"
    kd_row = next(line for line in lines[header:] if line.startswith("| sra_tiny_kd | "))
    assert float(kd_row.split(" | ")[2].split(" / ")[0]) > 0  # a measured p50, not a dash


def test_rerun_reuses_the_teacher_students_and_stored_outputs(education_run, capsys, monkeypatch):
    from domains.education import pipeline
    from suite.pair_pack import PairClassificationPack
    from suite.teachers import HFTeacher

    recipe, first, _ = education_run
    asked = []
    original = HFTeacher.answer
    monkeypatch.setattr(HFTeacher, "answer", lambda self, inputs: asked.append(len(inputs)) or original(self, inputs))
    trained = []
    monkeypatch.setattr(PairClassificationPack, "train", lambda *args: trained.append(args) or None)
    again = pipeline.run(recipe)
    out = capsys.readouterr().out
    assert "[sra/teacher] up to date" in out and "[students/sra_tiny_kd-s1] up to date" in out
    assert asked == [] and trained == []
    assert again["models"]["sra_tiny_kd"]["metrics"] == first["models"]["sra_tiny_kd"]["metrics"]


def test_a_changed_student_recipe_retrains_only_that_student(education_run, capsys, monkeypatch):
    from domains.education import pipeline
    from suite.pair_pack import PairClassificationPack

    recipe, _, _ = education_run
    changed = build_config(type(recipe), {}, [f"{k}={v}" for k, v in _overrides(recipe).items()]
                           + ["variants.kd.kd=0.7", "tasks=[sra]", "students=[tiny]", "seeds=[0]"])  # fmt: skip
    trained = []
    original = PairClassificationPack.train
    monkeypatch.setattr(
        PairClassificationPack, "train", lambda self, v, s, d: trained.append(v.name) or original(self, v, s, d)
    )
    pipeline.run(changed)
    assert trained == ["sra_tiny_kd"]  # no_kd's terms did not change, nor did the teacher
    assert "[students/sra_tiny_kd-s0] rebuilding: its recipe or inputs changed" in capsys.readouterr().out


def _overrides(recipe) -> dict:
    import dataclasses

    keep = ["output_dir", "report_dir", "model_card_dir", "sra_path", "gsm8k_path", "teacher_model"]
    keep += ["verifier_rationales", "sra_max_length", "verifier_max_length", "robustness_examples", "vocab_size"]
    keep += ["tiny_dim", "tiny_layers", "bench_repeats", "dev_fraction", "minilm2_seeds"]
    values = dataclasses.asdict(recipe)
    out = {k: values[k] for k in keep}
    for section in ("sra_teacher_trainer", "verifier_teacher_trainer", "tiny_trainer", "minilm2_trainer"):
        out |= {f"{section}.lr": values[section]["lr"], f"{section}.epochs": values[section]["epochs"],
                f"{section}.progress": False}  # fmt: skip
    return out
