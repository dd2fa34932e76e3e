"""The built-in example end to end on a small slice of the real data, and the CLI's one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from suite.cli import main


# Needs the SemEval mirror (../shared/data or SUITE_DATA_MIRRORS), as CI has; without it this fails, never skips.
def test_example_runs_end_to_end_and_reruns_without_teacher_calls(tmp_path: Path, capsys) -> None:
    overrides = [
        "max_train_examples=160",
        "max_eval_examples=64",
        "teacher_trainer.epochs=1",
        "student_trainer.epochs=2",
        "max_length=64",
        "vocab_size=500",
        "teacher_trainer.progress=false",
        "student_trainer.progress=false",
    ]
    args = ["run", "--output-dir", str(tmp_path)] + [item for o in overrides for item in ("--set", o)]
    assert main(args) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) >= {"teacher", "student_kd", "student_no_kd"}
    assert results["student_kd"]["params"] < 1_000_000 < results["teacher"]["params"]
    for name in ("teacher", "student_kd", "student_no_kd"):
        assert 0.0 <= results[name]["unseen_answers"] <= 1.0
    out = capsys.readouterr().out
    assert "teacher: fine-tuning" in out and "unseen_answers" in out

    # Second run: the teacher is reused and every teacher output comes from the store.
    from suite.teachers import TeacherOutputStore

    store_size = len(TeacherOutputStore(tmp_path / "teacher_outputs"))
    assert store_size == 144 + 16 + 64  # train + dev + unseen_answers
    assert main(args) == 0
    assert "reusing the fine-tuned teacher" in capsys.readouterr().out
    assert len(TeacherOutputStore(tmp_path / "teacher_outputs")) == store_size
    assert json.loads((tmp_path / "results.json").read_text())["teacher"] == results["teacher"]
    assert (tmp_path / "student_kd" / "model" / "student.safetensors").is_file()


def test_unknown_domain_is_one_line_error(capsys) -> None:
    assert main(["run", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown domain 'nope'") and err.count("\n") == 1


def test_bad_override_names_the_key(capsys) -> None:
    assert main(["run", "--set", "student_trainer.lr=-1"]) == 2
    assert capsys.readouterr().err.startswith("error: student_trainer.lr: must be > 0")
    assert main(["run", "--set", "temprature=3"]) == 2
    assert capsys.readouterr().err.startswith("error: temprature: unknown key")
    assert main(["run", "--profile", "huge"]) == 2
    assert "unknown profile 'huge'" in capsys.readouterr().err


def test_train_needs_a_domain_key(tmp_path: Path, capsys) -> None:
    config = tmp_path / "recipe.yaml"
    config.write_text("alpha: 0.3\n")
    assert main(["train", str(config)]) == 2
    assert "add a top-level 'domain:' key" in capsys.readouterr().err


def test_listing_commands(capsys) -> None:
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in (
        "semeval2013-sra",
        "gsm8k",
        "pubmedqa-pqal",
        "symptom2disease",
        "mtsamples",
        "iu-xray-reports",
        "bdd-x",
    ):
        assert name in out
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "minilm-l6" in out and "efficientnet-lite0" in out and "example" in out


def test_debug_flag_shows_the_traceback() -> None:
    from suite.errors import RegistryError

    with pytest.raises(RegistryError):
        main(["--debug", "run", "nope"])


def test_shipped_configs_parse_into_recipes() -> None:
    from suite.cli import _recipe_for
    from suite.config import read_yaml
    from suite.domains import get_domain

    for path in sorted(Path(__file__).resolve().parents[2].glob("configs/*.yaml")):
        data = read_yaml(path)
        domain = get_domain(data.pop("domain"))
        recipe = _recipe_for(domain, str(data.pop("profile", "full")), data, [], None)
        assert isinstance(recipe, domain.recipe), path
