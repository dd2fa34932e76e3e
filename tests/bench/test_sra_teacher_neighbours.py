"""benchmarks.sra_teacher_neighbours reads the run it is pointed at: its recorded data, its teacher folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.domains.education_fixtures import SEMEVAL_SPLITS, write_semeval, write_tiny_teacher


def test_neighbours_check_uses_the_runs_recorded_data(tmp_path: Path) -> None:
    from benchmarks.sra_teacher_neighbours import evaluate
    from domains.education.recipe import EducationRecipe
    from suite.config import save_run_recipe

    semeval = write_semeval(tmp_path / "semeval")
    texts = [line for path in semeval.glob("*.jsonl") for line in path.read_text().splitlines()]
    run = tmp_path / "run"
    write_tiny_teacher(run / "sra" / "teacher" / "hf", [*texts, "Reference :"])
    recipe = EducationRecipe(tasks=["sra"], sra_path=str(semeval), sra_max_length=64)
    save_run_recipe(recipe, run, "education", "distill run education")

    result = evaluate(run, ks=[1])

    # the fixture's question-grouped test splits, not the shared SemEval-2013 mirror (thousands of answers)
    unseen_answers = 2 * SEMEVAL_SPLITS["test-unseen-answers"] * 4  # two corpora, four questions each
    assert result["examples"]["unseen_answers"] == unseen_answers
    assert result["members"] == [str(run / "sra" / "teacher" / "hf")]
    for name in ["member0", "fine-tuned ensemble", "ensemble + neighbours k=1", "majority", "overlap"]:
        assert 0.0 <= result["accuracy"][name]["dev"] <= 1.0, name


def test_neighbours_check_without_teachers_says_so(tmp_path: Path) -> None:
    from benchmarks.sra_teacher_neighbours import evaluate
    from domains.education.recipe import EducationRecipe
    from suite.config import save_run_recipe

    semeval = write_semeval(tmp_path / "semeval")
    save_run_recipe(EducationRecipe(tasks=["sra"], sra_path=str(semeval)), tmp_path / "run", "education", "x")
    with pytest.raises(SystemExit, match="no fine-tuned teachers"):
        evaluate(tmp_path / "run", ks=[1])
