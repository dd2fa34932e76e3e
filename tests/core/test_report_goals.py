"""The shared report refuses to judge a distillation goal against a teacher that does not beat the baselines by the
stated margin, flags that teacher, and records the comparison in the run summary; the overlap baseline learns what
word matching can."""

from __future__ import annotations

import numpy as np
import pytest

from suite.report import TEACHER_MARGIN, retention_goals, teacher_flags, teacher_vs_baselines
from suite.runner import ModelResult


def student(accuracy: float) -> ModelResult:
    metrics = {"test": {"accuracy": accuracy}}
    return ModelResult("student", 10_000, True, [0], {0: metrics}, metrics, {"test": {"accuracy": 0.0}})


def results(teacher: float, majority: float = 0.70) -> dict[str, ModelResult]:
    return {
        "t_teacher": ModelResult.single("teacher", {"test": {"accuracy": teacher}}, params=1_000_000),
        "t_majority": ModelResult.single("baseline", {"test": {"accuracy": majority}}),
        "t_student": student(0.70),
    }


@pytest.mark.parametrize("teacher", [0.70, 0.71])  # equal to the majority class, and within the margin
def test_no_retention_goal_is_met_against_a_teacher_that_does_not_beat_the_majority_class(teacher):
    lines = retention_goals(results(teacher), {}, "t_teacher", "t_student", "accuracy")
    judged = [line for line in lines if "(test)" in line]
    assert len(judged) == 1 and "not applicable" in judged[0] and "| yes |" not in judged[0]
    checks = teacher_vs_baselines(results(teacher), "t_teacher", "accuracy")
    assert checks["test"] == {"metric": "accuracy", "teacher": teacher, "best_baseline": "t_majority",
                              "baseline": 0.70, "margin": TEACHER_MARGIN, "beats": False}  # fmt: skip
    (flag,) = teacher_flags(checks, "t_teacher")
    assert "does not beat the baselines on test" in flag and "not applicable" in flag


def test_a_teacher_clear_of_the_baselines_is_judged():
    lines = retention_goals(results(0.80), {}, "t_teacher", "t_student", "accuracy")
    assert any("student accuracy >= 95% of teacher (test) | 87.5% | **no** |" in line for line in lines)
    assert teacher_flags(teacher_vs_baselines(results(0.80), "t_teacher", "accuracy"), "t_teacher") == []


def row(model: str, p50: float, threads: int, variant: str = "fp32") -> dict:
    return {"model": model, "runtime": "onnxruntime", "variant": variant, "batch_size": 1, "p50_ms": p50,
            "p99_ms": 2 * p50, "intra_op_threads": threads}  # fmt: skip


def latency_goal_line(rows: list[dict]) -> str:
    lines = retention_goals(results(0.80), {"results": rows}, "t_teacher", "t_student", "accuracy", faster=20)
    (line,) = [line for line in lines if "lower CPU latency" in line]
    return line


def test_the_latency_goal_at_one_thread_count_is_the_plain_ratio():
    line = latency_goal_line([row("t_teacher", 20.0, 2), row("t_student", 1.25, 2)])
    assert line == "| >= 20x lower CPU latency (ORT fp32, batch 1, p50) | 16.0x | **no** |"


def test_the_latency_goal_takes_each_model_at_its_faster_thread_count_and_shows_the_same_threads_ratio():
    int8 = row("t_student", 0.10, 1, variant="int8")  # not the goal's variant
    rows = [
        row("t_teacher", 20.0, 2),
        row("t_student", 1.25, 2),
        row("t_teacher", 40.0, 1),
        row("t_student", 0.80, 1),
        int8,
    ]
    line = latency_goal_line(rows)
    assert "each model at its faster thread count" in line
    assert "| 25.0x (20.00 vs 0.80 ms, 2 vs 1 threads; 16.0x at 2 threads each) | yes |" in line
    # a student slower on one thread: its first row stands, and the goal reads as the plain ratio
    assert latency_goal_line(rows[:3] + [row("t_student", 1.50, 1)]).endswith("| 16.0x | **no** |")


def test_the_overlap_baseline_learns_what_word_matching_can():
    from suite.pairs import overlap_baseline

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    pairs, labels = [], []
    for _ in range(200):
        reference = list(rng.choice(words, 6, replace=False))
        correct = int(rng.integers(2))
        answer = reference[:4] if correct else list(rng.choice(words[20:], 4))  # correct answers reuse the words
        pairs.append((" ".join(reference), " ".join(answer)))
        labels.append(correct)
    predict = overlap_baseline(pairs[:150], labels[:150], num_labels=2)
    probs = predict(pairs[150:])
    assert probs.shape == (50, 2) and np.allclose(probs.sum(1), 1)
    assert (probs.argmax(1) == np.array(labels[150:])).mean() > 0.8
    one_class = overlap_baseline(pairs[:5], [1] * 5, num_labels=3)(pairs[:2])
    assert one_class.tolist() == [[0, 1, 0], [0, 1, 0]]
