"""The generation stages end to end on tiny models: a local teacher folder, the pruned student vocabulary, every kind
of variant (no KD, live word-level KD, stored top-k, sequence-level, on-policy), evaluation next to the teacher and
the most-common-output baseline, ONNX export and generation latency; a rerun reuses every stage."""

from __future__ import annotations

import random

import pytest
import torch

from suite.generation_pack import GenerationData, GenerationTask, GenerationVariant, TextPair, run_generation_task
from suite.stages import StageLedger
from suite.trainer import TrainerConfig

WORDS = ["lung", "heart", "clear", "effusion", "normal", "small", "right", "left", "acute", "pleural", "stable"]


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def rouge_l(sources, references, outputs, teacher_outputs):
    from suite.eval import rouge

    metrics = {"rougeL": rouge(outputs, references, rouge_types=("rougeL",))["rougeL"]}
    if teacher_outputs is not None:
        metrics["teacher_rougeL"] = rouge(outputs, teacher_outputs, rouge_types=("rougeL",))["rougeL"]
    return metrics


@pytest.fixture(scope="module")
def teacher_folder(tmp_path_factory):
    from suite import hub
    from suite.students import build_student
    from suite.students.generative import SpecialTokens

    tokenizer = hub.load_tokenizer("minilm-l6")
    ids = SpecialTokens.of(tokenizer)
    torch.manual_seed(0)
    model = build_student("seq2seq", vocab_size=len(tokenizer), pad_id=ids.pad, start_id=ids.start, end_id=ids.end,
                          size="2m")  # fmt: skip
    folder = tmp_path_factory.mktemp("teacher") / "hf"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def task_for(teacher_folder, tmp_path) -> tuple[GenerationTask, GenerationData]:
    rng = random.Random(0)
    pairs = [TextPair(sentence(rng, 6), sentence(rng, 3)) for _ in range(56)]
    data = GenerationData(pairs[:40], pairs[40:48], {"test": pairs[48:]})
    trainer = TrainerConfig(epochs=1, batch_size=8, lr=3e-3, warmup_ratio=0.0, progress=False, tensorboard=False,
                            log_every=1000, watch_metric="rougeL")  # fmt: skip
    variants = {
        "no_kd": GenerationVariant({"task": 1.0}),
        "kd": GenerationVariant({"task": 0.5, "kd": 0.5}, divergence="jsd"),
        "top5": GenerationVariant({"kd": 1.0}, top_k=5),
        "seq": GenerationVariant({"task": 1.0}, sequence_level=True),
        "gkd": GenerationVariant({"kd": 1.0}, divergence="rkl", on_policy=0.5),
    }
    task = GenerationTask(
        name="toy", max_source=16, max_target=8, max_new_tokens=6, teacher_model=str(teacher_folder),
        teacher_trainer=trainer, students={"s": {"size": "2m", "shape": "t5"}}, student_trainer=trainer, seeds=[0],
        variants=variants, bench_repeats=2, progress=False,
    )  # fmt: skip
    return task, data


def test_every_variant_trains_evaluates_exports_and_is_timed(teacher_folder, tmp_path):
    task, data = task_for(teacher_folder, tmp_path)
    ledger = StageLedger(tmp_path / "run", log=lambda _: None)
    result = run_generation_task(task, data, rouge_l, ledger, resume=False)
    names = ["toy_teacher", "toy_most_common", *[f"toy_s_{v}" for v in task.variants]]
    assert sorted(result.results) == sorted(names)
    roles = {name: r.role for name, r in result.results.items()}
    assert roles["toy_teacher"] == "teacher" and roles["toy_most_common"] == "baseline"
    kd = {name: r.kd for name, r in result.results.items() if r.role == "student"}
    assert kd == {"toy_s_no_kd": False, "toy_s_kd": True, "toy_s_top5": True, "toy_s_seq": True, "toy_s_gkd": True}
    for entry in result.results.values():
        assert 0.0 <= entry.metrics["test"]["rougeL"] <= 1.0
    assert "teacher_rougeL" in result.results["toy_s_kd"].metrics["test"]
    assert sorted(result.exports) == sorted(["toy_teacher", *(f"toy_s_{v}" for v in task.variants)])
    assert (tmp_path / "run" / "toy" / "store-top5").is_dir() and (tmp_path / "run" / "toy" / "store-full").is_dir()
    runtimes = {(row["model"], row["runtime"]) for row in result.bench["results"]}
    assert ("toy_s_kd", "onnxruntime") in runtimes and ("toy_s_kd", "torch") in runtimes
    # the teacher is exported and timed like the students, so latency ratios compare like with like
    assert ("toy_teacher", "onnxruntime") in runtimes and ("toy_teacher", "torch") in runtimes
    # a rerun trains nothing: every student and teacher stage is reused
    again = run_generation_task(task, data, rouge_l, StageLedger(tmp_path / "run", log=lambda _: None), False)
    for name in names:
        assert again.results[name].metrics == result.results[name].metrics
