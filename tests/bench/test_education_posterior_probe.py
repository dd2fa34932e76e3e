"""benchmarks.education_posterior_probe on a small education run: every step size gets its row, and one at which
the SGLD chain diverges is reported as diverged, not as NaN numbers."""

from __future__ import annotations

import json
from pathlib import Path


def test_probe_scores_each_step_size_and_names_the_diverged_one(tmp_path: Path) -> None:
    from benchmarks.education_posterior_probe import main
    from domains.education.pipeline import run
    from domains.education.recipe import EducationRecipe
    from suite.config import build_config, save_run_recipe
    from tests.domains.education_fixtures import write_semeval, write_tiny_teacher

    semeval = write_semeval(tmp_path / "semeval")
    texts = [line for path in semeval.glob("*.jsonl") for line in path.read_text().splitlines()]
    teacher = write_tiny_teacher(tmp_path / "teacher", [*texts, "Reference :"])
    recipe = build_config(EducationRecipe, {}, [
        f"output_dir={tmp_path / 'run'}", f"sra_path={semeval}", f"teacher_model={teacher}", "tasks=[sra]",
        "students=[tiny]", "seeds=[0]", "vocab_size=200", "tiny_dim=16", "tiny_layers=1", "sra_max_length=48",
        "dev_fraction=0.25", "sra_teacher_trainer.epochs=1", "tiny_trainer.epochs=1", "students_only=true",
        "variants={kd: {task: 0.5, kd: 0.5}, bayes: {task: 1.0, prior: 3.0}}",
        "sra_teacher_trainer.progress=false", "tiny_trainer.progress=false",
    ])  # fmt: skip
    save_run_recipe(recipe, recipe.output_dir, "education", "distill run education")
    run(recipe)

    out = tmp_path / "probe"
    argv = ["--run-dir", recipe.output_dir, "--seeds", "0", "--lrs", "1e-6", "1e6", "--samples", "2", "--burn-in",
            "2", "--thin", "1", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0

    doc = json.loads((out / "posterior_probe.json").read_text())
    summary = doc["summary"]
    assert set(summary) == {"kd MAP", "bayes MAP", "posterior lr 1e-06", "posterior lr 1e+06"}
    for model in ("kd MAP", "bayes MAP", "posterior lr 1e-06"):
        for split in ("dev", "unseen_answers", "unseen_questions"):
            assert 0 <= summary[model][split]["accuracy"] <= 1 and 0 <= summary[model][split]["ece"] <= 1
    assert summary["kd MAP"]["dev"]["ece_vs_kd"] == 1.0 or summary["kd MAP"]["dev"]["ece"] == 0
    assert summary["posterior lr 1e+06"] == {"diverged_seeds": 1}
    assert "SGLD diverged" in doc["per_seed"]["0"]["posterior lr 1e+06"]["diverged"]
    assert "| posterior lr 1e+06 | diverged (1 of 1 seeds) |" in (out / "posterior_probe.md").read_text()


def test_probe_names_the_variants_a_run_lacks(tmp_path: Path, monkeypatch) -> None:
    import pytest

    from benchmarks import education_posterior_probe as probe

    variant = type("V", (), {"student": "tiny", "name": "t_tiny_kd"})()
    pack = type("P", (), {"variants": lambda self: [variant], "recipe_name": lambda self, v: "kd"})()
    with pytest.raises(SystemExit, match=r"reads tiny `kd` and `bayes` students; the run has \['kd'\]"):
        probe.probe_seed(pack, tmp_path, 0, [1e-6], None)
