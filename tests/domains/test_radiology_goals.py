"""The radiology goals are judged from the results and the stores' sizes: none while the teacher does not beat the
most-common-impression baseline; the top-20 goal needs both its ROUGE-L ratio and its store share."""

from __future__ import annotations

from domains.radiology.recipe import RadiologyRecipe
from domains.radiology.report import kd_goals
from suite.runner import ModelResult


def student(rouge_l: float, hallucination: float, kd: bool) -> ModelResult:
    metrics = {"test": {"rougeL": rouge_l, "hallucination_rate": hallucination}}
    spread = {"test": dict.fromkeys(metrics["test"], 0.0)}
    return ModelResult("student", 2_000_000, kd, [0], {0: metrics}, metrics, spread)


def results(teacher: float) -> dict[str, ModelResult]:
    return {
        "impression_teacher": ModelResult.single("teacher", {"test": {"rougeL": teacher, "hallucination_rate": 0.2}}),
        "impression_most_common": ModelResult.single("baseline", {"test": {"rougeL": 0.45}}),
        "impression_t5_2m_no_kd": student(0.50, 0.3, kd=False),
        "impression_t5_2m_fkl": student(0.52, 0.1, kd=True),
        "impression_t5_2m_fkl_top20": student(0.519, 0.1, kd=True),
    }


def recipe() -> RadiologyRecipe:
    return RadiologyRecipe(variants={"no_kd": {"terms": {"task": 1.0}}})


def test_no_goal_is_judged_against_a_teacher_that_does_not_beat_the_baseline():
    lines = kd_goals(recipe(), results(teacher=0.44), {"store-full": 100, "store-top20": 3})
    assert len(lines) == 1 and "no KD goal is judged" in lines[0]


def test_goals_met_and_not_met_follow_the_numbers():
    lines = kd_goals(recipe(), results(teacher=0.6), {"store-full": 100, "store-top20": 3})
    assert "+2.00 points" in lines[0] and lines[0].endswith("met.") and "not met" not in lines[0]
    assert "0.100 vs the teacher's 0.200: met" in lines[1]
    assert "99.8%" in lines[2] and "3.0%" in lines[2] and "not met" not in lines[2]
    too_big = kd_goals(recipe(), results(teacher=0.6), {"store-full": 100, "store-top20": 6})
    assert "**not met**" in too_big[2]  # 6% of the full store is over the 5% goal


def test_a_one_seed_screening_variant_is_not_the_best_kd_student():
    from domains.radiology.report import best_kd

    runs = results(teacher=0.6)
    for name in ("impression_t5_2m_no_kd", "impression_t5_2m_fkl"):
        runs[name] = runs[name].__class__(**{**runs[name].__dict__, "seeds": [0, 1, 2]})
    runs["impression_t5_2m_rkl"] = student(0.60, 0.1, kd=True)  # better, but one seed
    assert best_kd(runs, "t5_2m") == "impression_t5_2m_fkl"
    runs["impression_t5_2m_no_kd"] = student(0.50, 0.3, kd=False)  # one-seed no-KD: every KD run competes
    assert best_kd(runs, "t5_2m") == "impression_t5_2m_rkl"
