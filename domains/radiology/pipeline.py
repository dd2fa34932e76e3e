"""``distill run radiology``: IU X-ray findings -> impression through the shared generation stages
(:mod:`suite.generation_pack` on :mod:`suite.runner`): teacher -> pruned student vocabulary -> students x variants x
seeds -> evaluation (ROUGE, BLEU, BERTScore, distinct-2, agreement with the teacher, hallucinated and missing
findings), on all test reports and on normal and abnormal ones apart, next to the teacher and the most common
impression -> ONNX export -> latency per impression; then the report, the model card and the released student.
No report text is logged: progress lines carry counts only.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from domains.radiology.data import load_reports, split_reports
from domains.radiology.findings import chest_extractor
from domains.radiology.recipe import RadiologyRecipe
from suite.generation_pack import GenerationData, GenerationTask, TextPair, run_generation_task
from suite.stages import StageLedger

TASK = "impression"


def load_data(recipe: RadiologyRecipe) -> GenerationData:
    splits = split_reports(load_reports(recipe.data_path), recipe.dev_fraction, recipe.test_fraction)
    train = list(splits["train"])
    random.Random(0).shuffle(train)
    train = train[: recipe.max_train_examples or None]
    test = splits["test"][: recipe.max_eval_examples or None]

    def pairs(reports: list) -> list[TextPair]:
        return [TextPair(r.findings, r.impression) for r in reports]

    tests = {"test": pairs(test), "test_normal": pairs([r for r in test if r.normal]),
             "test_abnormal": pairs([r for r in test if not r.normal])}  # fmt: skip
    return GenerationData(pairs(train), pairs(splits["dev"]), tests)


def metrics_fn(recipe: RadiologyRecipe):
    """(sources, references, outputs, teacher outputs) -> the metrics of one split."""
    from suite.eval import bert_score, bleu, distinct_n, rouge
    from suite.eval.findings import faithfulness

    extractor = chest_extractor()
    bertscores: dict[tuple[str, str], float] = {}  # (output, reference) -> F1; the normal / abnormal splits repeat

    def bertscore_f1(outputs: list[str], references: list[str]) -> float:
        pairs = list(zip(outputs, references, strict=True))
        todo = list(dict.fromkeys(p for p in pairs if p not in bertscores))
        if todo:
            scores = bert_score([o for o, _ in todo], [r for _, r in todo])["f1"]
            bertscores.update(zip(todo, scores, strict=True))
        return sum(bertscores[p] for p in pairs) / len(pairs)

    def metrics(sources: list[str], references: list[str], outputs: list[str], teacher: list[str] | None) -> dict:
        if not outputs:
            return {}
        out = {**rouge(outputs, references), "bleu": bleu(outputs, references), "distinct_2": distinct_n(outputs, 2)}
        out |= faithfulness(extractor, sources, outputs)
        if recipe.bertscore:
            out["bertscore_f1"] = bertscore_f1(outputs, references)
        if teacher is not None:
            out["teacher_rougeL"] = rouge(outputs, teacher, rouge_types=("rougeL",))["rougeL"]
        return out

    return metrics


def generation_task(recipe: RadiologyRecipe) -> GenerationTask:
    return GenerationTask(
        name=TASK, max_source=recipe.max_source, max_target=recipe.max_target, max_new_tokens=recipe.max_new_tokens,
        teacher_model=recipe.teacher_model, teacher_trainer=recipe.teacher_trainer, students=recipe.students,
        student_trainer=recipe.student_trainer, seeds=recipe.seeds, kd=recipe.kd, teacher_lora=recipe.teacher_lora,
        variants={name: recipe.variant(name) for name in recipe.variants}, num_beams=recipe.num_beams,
        bench_repeats=recipe.bench_repeats, progress=recipe.progress,
    )  # fmt: skip


def run(recipe: RadiologyRecipe, resume: bool = False) -> dict[str, Any]:
    from domains.radiology.report import write_model_card, write_report

    started, ledger = time.perf_counter(), StageLedger(recipe.output_dir)
    result = run_generation_task(generation_task(recipe), load_data(recipe), metrics_fn(recipe), ledger, resume)
    doc = write_report(recipe, result, seconds=time.perf_counter() - started)
    write_model_card(recipe, doc)
    release(recipe, result, doc["command"])
    return doc


def release_check(released: Path, pairs: list[Any], max_new_tokens: int) -> dict[str, Any]:
    """ROUGE-L of the impressions the released ONNX files write for ``pairs`` (through their own tokenizer)."""
    from suite.eval import rouge
    from suite.export.runtime import load_exported

    outputs = load_exported(released).generate_text([p.source for p in pairs], max_new_tokens)
    score = rouge(outputs, [p.target for p in pairs], rouge_types=("rougeL",))["rougeL"]
    return {"split": "test", "examples": len(pairs), "rougeL_onnx": score}


def release(recipe: RadiologyRecipe, result: Any, command: str) -> None:
    """Copy the released students beside the model card, each checked by its ROUGE-L on the first 50 test pairs,
    generated by the released ONNX files themselves."""
    from suite.release import release_named

    pairs = result.pack.data.tests["test"][:50]
    names = [f"{TASK}_{name}" for name in recipe.release]
    release_named(names, result.exports, recipe.model_card_path, command,
                  lambda released: release_check(released, pairs, recipe.max_new_tokens))  # fmt: skip


def recheck_release(target: Path) -> dict[str, Any]:
    """Measure again the check of every student released in ``target`` (``models/radiology``) with the current
    runtime and write it into its ``release.json``; the released files are left as they are."""
    import json

    recipe = RadiologyRecipe()  # the full profile's split, which a release is checked on
    pairs = load_data(recipe).tests["test"][:50]
    path = target / "release.json"
    doc = json.loads(path.read_text())
    for name, entry in doc["models"].items():
        entry["check"] = release_check(target / "export" / name, pairs, recipe.max_new_tokens)
        print(f"{name}: {entry['check']}")
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return doc


if __name__ == "__main__":  # python -m domains.radiology.pipeline models/radiology
    import sys

    recheck_release(Path(sys.argv[1] if len(sys.argv) > 1 else "models/radiology"))
