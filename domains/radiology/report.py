"""The radiology report (``radiology.md`` + ``radiology.json``) and model card, from the shared writer
(:mod:`suite.report`); this module adds the goals, the store sizes and the per-impression latency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from domains.radiology.pipeline import TASK
from domains.radiology.recipe import RadiologyRecipe
from suite.report import (
    TEACHER_MARGIN,
    header,
    metrics_table,
    model_card,
    paired_seed_table,
    retention_goals,
    run_summary,
    teacher_flags,
    teacher_vs_baselines,
)
from suite.report import write_markdown as write
from suite.results import write_summary
from suite.runner import ModelResult, beats_baselines, latency

METRICS = ("rouge1", "rouge2", "rougeL", "bleu", "bertscore_f1", "distinct_2", "hallucination_rate", "missing_rate",
           "teacher_rougeL", "perplexity")  # fmt: skip


def store_sizes(run_dir: Path) -> dict[str, int]:
    """Bytes on disk of each teacher-output store: ``store-full`` and every ``store-top<k>``."""
    return {p.name: sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
            for p in sorted((run_dir / TASK).glob("store-*"))}  # fmt: skip


def best_kd(results: dict[str, ModelResult], student: str) -> str | None:
    """The KD variant of ``student`` with the best mean test ROUGE-L among those run on as many seeds as its no-KD
    twin (a one-seed screening run is not compared with a three-seed mean)."""
    base = results.get(f"{TASK}_{student}_no_kd")
    seeds = len(base.seeds) if base else 1
    kd = [n for n, r in results.items() if n.startswith(f"{TASK}_{student}_") and r.kd and len(r.seeds) >= seeds]
    return max(kd, key=lambda n: results[n].metrics["test"]["rougeL"], default=None)


def kd_goals(recipe: RadiologyRecipe, results: dict[str, ModelResult], sizes: dict[str, int]) -> list[str]:
    """Best KD student vs no-KD (ROUGE-L, test), hallucination vs teacher, top-20 vs full-distribution KD; none is
    judged when the teacher does not beat the most-common-impression baseline."""
    if not beats_baselines(results, f"{TASK}_teacher", "test", "rougeL", margin=TEACHER_MARGIN):
        return [f"- the teacher does not beat the most-common-impression baseline on test by {TEACHER_MARGIN:.0%}: no "
                "KD goal is judged."]  # fmt: skip
    lines: list[str] = []
    for student in recipe.students:
        base, best = results.get(f"{TASK}_{student}_no_kd"), best_kd(results, student)
        if base is None or best is None:
            continue
        gain = 100 * (results[best].metrics["test"]["rougeL"] - base.metrics["test"]["rougeL"])
        lines.append(f"- best KD `{best}` vs no-KD, ROUGE-L (test, mean over {len(base.seeds)} seeds): {gain:+.2f} "
                     f"points (goal >= +1): {'met' if gain >= 1 else '**not met**'}.")  # fmt: skip
        teacher = results[f"{TASK}_teacher"].metrics["test"]["hallucination_rate"]
        rate = results[best].metrics["test"]["hallucination_rate"]
        lines.append(f"- its hallucination rate {rate:.3f} vs the teacher's {teacher:.3f}: "
                     f"{'met' if rate <= teacher else '**not met**'}.")  # fmt: skip
        full, top20 = results.get(f"{TASK}_{student}_fkl"), results.get(f"{TASK}_{student}_fkl_top20")
        if full and top20 and {"store-top20", "store-full"} <= set(sizes):
            ratio = top20.metrics["test"]["rougeL"] / full.metrics["test"]["rougeL"]
            share = sizes["store-top20"] / sizes["store-full"]
            met = ratio >= 0.99 and share <= 0.05
            lines.append(f"- top-20 stored KD keeps {ratio:.1%} of full-distribution KD's ROUGE-L (goal >= 99%) with "
                         f"a store {share:.1%} the size of the full one (goal <= 5%): "
                         f"{'met' if met else '**not met**'}.")  # fmt: skip
    return lines


def faithfulness_lines(result: Any, models: list[str]) -> list[str]:
    """The radiologists' own impressions scored against their findings by the same extractor (what a faithful
    writer scores here: impressions interpret, e.g. "pneumonia" from "opacity"), then the findings each model
    asserts without support in the findings, counted by finding (test split, first seed)."""
    from collections import Counter

    from domains.radiology.findings import chest_extractor
    from suite.eval.findings import faithfulness

    extractor, pairs = chest_extractor(), result.pack.data.tests["test"]
    sources = [p.source for p in pairs]
    reference = faithfulness(extractor, sources, [p.target for p in pairs])
    written = {"references": [p.target for p in pairs]}
    written |= {name: result.pack.outputs[name]["test"] for name in models if name in result.pack.outputs}
    counts = {name: Counter(f for source, output in zip(sources, outputs, strict=True)
                            for f in extractor.positives(output) - extractor.positives(source))
              for name, outputs in written.items()}  # fmt: skip
    findings = sorted({f for c in counts.values() for f in c}, key=lambda f: -sum(c[f] for c in counts.values()))
    lines = [f"The reference impressions themselves, scored against their findings with the same extractor: "
             f"hallucination rate {reference['hallucination_rate']:.3f}, missing rate {reference['missing_rate']:.3f} "
             f"(impressions interpret and summarize). Unsupported findings asserted on the {len(pairs)} test reports, "
             "by finding:", ""]  # fmt: skip
    lines += ["| finding | " + " | ".join(written) + " |", "|---" * (len(written) + 1) + "|"]
    lines += [f"| {f} | " + " | ".join(str(counts[n][f]) for n in written) + " |" for f in findings]
    return lines + ["| total | " + " | ".join(str(sum(counts[n].values())) for n in written) + " |"]


def latency_lines(result: Any) -> list[str]:
    lines = ["| model | ORT ms per impression (p50 / p99) | ORT ms per token | PyTorch ms per impression | tokens |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name in result.exports:
        ort, eager = latency(result.bench, name), latency(result.bench, name, runtime="torch")
        if ort is None:
            continue
        lines.append(f"| {name} | {ort['p50_ms']:.1f} / {ort['p99_ms']:.1f} | {ort['ms_per_token']:.2f} | "
                     f"{eager['p50_ms'] if eager else float('nan'):.1f} | {ort['tokens_per_call']:.1f} |")  # fmt: skip
    return lines


def write_report(recipe: RadiologyRecipe, result: Any, seconds: float) -> dict[str, Any]:
    out, results = recipe.report_path, result.results
    sizes = store_sizes(Path(recipe.output_dir))
    settings = {"variants": recipe.variants, "seeds": recipe.seeds}
    checks = teacher_vs_baselines(results, f"{TASK}_teacher", "rougeL")
    doc = run_summary(results, result.bench, f"{TASK}_teacher", seconds, store_bytes=sizes,
                      examples=result.pack.data.sizes(), recipe=settings, teacher_vs_baselines=checks)  # fmt: skip
    write_summary(out / "radiology.json", doc)
    student = next(iter(recipe.students))
    best = best_kd(results, student) or f"{TASK}_{student}_fkl"
    lines = header("Radiology: findings -> impression students distilled from a BERT2BERT teacher", doc, seconds,
                   "radiology.json") + [
        "IU X-ray (Open-i) reports with both sections, split by findings text (no text in two splits). Teacher: "
        f"`{recipe.teacher_model}` fine-tuned on the training pairs. Students: {', '.join(recipe.students)} on the "
        "teacher's WordPiece pieces that the training text uses. Hallucination: a finding the output asserts that "
        "the findings do not (absent or negated); missing: a positive finding of the findings the output does not "
        "assert (extractor validated in `radiology_findings.md`). Baseline: the most common training impression. "
        "Mean ± std over seeds.", "", "## Goals", "", *teacher_flags(checks, f"{TASK}_teacher"),
        *retention_goals(results, result.bench, f"{TASK}_teacher", best, "rougeL", fewer=10, faster=5), "",
        *kd_goals(recipe, results, sizes), "",
    ]  # fmt: skip
    for split in result.pack.data.tests:
        shown = [m for m in METRICS if any(m in r.metrics.get(split, {}) for r in results.values())]
        lines += [f"## {split}", "", *metrics_table(results, split, shown, primary="rougeL"), ""]
    pairs = [(n.removeprefix(f"{TASK}_"), n, f"{TASK}_{student}_no_kd") for n, r in results.items() if r.kd]
    stores = ", ".join(f"{k} {v / 2**20:.2f} MiB" for k, v in sizes.items()) or "none"
    compared = [f"{TASK}_teacher", f"{TASK}_{student}_no_kd", best]
    lines += ["## KD vs no KD over seeds (ROUGE-L, test)", "", *paired_seed_table(results, pairs, "test", "rougeL"),
              "", "## Faithfulness", "", *faithfulness_lines(result, compared), "",
              "## Latency (batch 1, CPU; one call = one impression)", "", *latency_lines(result), "",
              f"Stored top-k sizes: {stores}.", ""]  # fmt: skip
    write(out / "radiology.md", lines)
    print(f"report: {out / 'radiology.md'}")
    return doc


def write_model_card(recipe: RadiologyRecipe, doc: dict[str, Any]) -> Path:
    report = recipe.report_path / "radiology.md"
    return model_card(recipe.model_card_path, "Radiology impression students", doc, report, "rougeL", {
        "Intended use": ["Drafting the impression of a chest X-ray report from its findings, for a radiologist to "
                         "edit. Never a diagnosis: check every draft, especially the findings it flags."],
        "Training data": ["IU X-ray (Open-i) reports, CC BY-NC-ND 4.0: non-commercial use."],
        "Limitations": ["English chest X-ray reports in the Open-i style only; templated normal impressions dominate "
                        "the data (see the normal / abnormal tables of the report)."],
    })  # fmt: skip
