"""The education report: ``education.md`` + ``education.json`` (the run summary) + plots, and the model card. The
tables come from the shared writer (:mod:`suite.report`); this module adds the goals, the KD study and the plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from domains.education.recipe import EducationRecipe
from suite.pair_pack import PairTask, from_teacher, labels_of
from suite.report import (
    header,
    latency_table,
    metric_latency_plot,
    metrics_table,
    model_card,
    paired_seed_table,
    retention_goals,
    run_summary,
    split_bars,
    teacher_flags,
    teacher_vs_baselines,
    write_markdown,
)
from suite.results import write_summary
from suite.runner import TaskResult, rejected_variants

METRICS = ("accuracy", "macro_f1", "qwk", "ece", "pdr_typos", "selective_accuracy_80")
TASK_TITLES = {
    "sra": "Short-answer scoring: SemEval-2013 Task 7, SciEntsBank + Beetle (2-way)",
    "verifier": "Math-solution verifier: GSM8K GPT-3 solutions, split by problem",
}
# The goals of this pack's round-2 issue (survey 3.2-3.4): a teacher worth distilling, then a tiny student that keeps
# 95% of it on the first two test splits at >= 50x fewer parameters and >= 20x lower latency, beats its no-KD twin by
# 2 points (mean - std > 0 over seeds), and an uncertainty-aware student with half the plain KD student's ECE.
TEACHER_GOALS = {"sra": ("unseen_answers", "accuracy", 0.80), "verifier": ("test", "macro_f1", 0.60)}
RETAIN, FEWER, FASTER, KD_GAIN_POINTS, ECE_RATIO, EQUAL_ACCURACY = 0.95, 50, 20, 2.0, 0.5, 0.01
LATENCY_COLUMNS = [("ORT fp32 b1 p50 / p99", "onnxruntime", "fp32", 1),
                   ("ORT fp32 b1, 1 thread", "onnxruntime", "fp32", 1, 1), ("ORT int8 b1", "onnxruntime", "int8", 1),
                   ("ORT fp32 b32", "onnxruntime", "fp32", 32), ("PyTorch b1", "torch", "", 1),
                   ("PyTorch b32", "torch", "", 32)]  # fmt: skip


def summary(recipe: EducationRecipe, results: Sequence[TaskResult], seconds: float) -> dict[str, Any]:
    models = {name: entry for r in results for name, entry in r.results.items()}
    bench = {"results": [row for r in results for row in r.bench.get("results", [])]}
    return run_summary(models, bench, f"{results[0].task}_teacher", seconds, tasks={
        r.task: {"teacher": f"{r.task}_teacher", "max_length": r.pack.task.max_length, "examples": r.pack.data.sizes(),
                 "teacher_vs_baselines": teacher_vs_baselines(r.results, f"{r.task}_teacher", "accuracy"),
                 "teacher_calibration": teacher_calibration(r)}
        for r in results
    }, recipe={"teacher": recipe.teacher, "teacher_model": recipe.teacher_model, "variants": recipe.variants,
               "teacher_ensemble": recipe.teacher_ensemble, "teacher_neighbours": recipe.teacher_neighbours,
               "kd": {"temperature": recipe.kd.temperature}, "seeds": recipe.seeds,
               "calibrated_variants": recipe.calibrated_variants})  # fmt: skip


def teacher_calibration(result: TaskResult) -> dict[str, dict[str, float]]:
    """Member -> its temperature on dev and dev's ECE before and after, for each teacher a calibrated variant
    learns from (empty when none is calibrated)."""
    pack = result.pack
    calibrated = [v for v in pack.variants() if pack.recipe_name(v) in pack.task.calibrated_variants]
    return {str(k): pack.teacher_calibration(k) for k in sorted({k for v in calibrated for k in pack.members(v)})}


def calibration_lines(result: TaskResult) -> list[str]:
    fitted = teacher_calibration(result)
    if not fitted:
        return []
    each = "; ".join(f"teacher {int(k) + 1}: {c['temperature']:.2f} (dev ECE {c['dev_ece_before']:.3f} -> "
                     f"{c['dev_ece_after']:.3f})" for k, c in fitted.items())  # fmt: skip
    return [f"Calibrated teachers (the variants marked so learn from the logits over these temperatures, fitted by "
            f"NLL on dev; the others from the raw logits): {each}.", ""]  # fmt: skip


def plots(result: TaskResult, out_dir: Path) -> list[str]:
    """Accuracy vs latency (first split, ORT batch 1) and reliability diagrams of the teacher and tiny students."""
    from suite.eval import reliability_diagram

    split, task, lines = next(iter(result.pack.data.tests)), result.task, []
    path = metric_latency_plot(
        result.results, result.bench, split, "accuracy", out_dir / f"{task}_accuracy_vs_latency.png"
    )
    if path is not None:
        lines.append(f"![accuracy vs latency]({out_dir.name}/{path.name})")
    shown = {n: r for n, r in result.results.items() if (r.role != "student" and "_member" not in n)
             or (n.startswith(f"{task}_tiny_") and "_without_t" not in n)}  # fmt: skip
    splits = list(result.pack.data.tests)[:2]
    bars = split_bars(
        shown,
        splits,
        "accuracy",
        out_dir / f"{task}_tiny_variants.png",
        f"{task}: every tiny variant beside the teacher and the baselines (mean ± std over seeds)",
    )
    lines.append(f"![tiny variants]({out_dir.name}/{bars.name})")
    labels = labels_of(result.pack.data.tests[split])
    for name in (f"{task}_teacher", f"{task}_tiny_kd", f"{task}_tiny_no_kd"):
        if name in result.pack.probs:
            path = reliability_diagram(
                result.pack.probs[name][split], labels, path=out_dir / f"reliability_{name}.png"
            )
            lines.append(f"![reliability {name}]({out_dir.name}/{path.name})")
    return lines


def task_title(recipe: EducationRecipe, result: TaskResult) -> str:
    if result.task in TASK_TITLES and not recipe.data.path:
        return TASK_TITLES[result.task]
    labels = result.pack.task.labels
    return f"{recipe.data.title}: answer scoring ({len(labels)}-way: {', '.join(labels)}), split by question"


def teacher_text(recipe: EducationRecipe) -> str:
    """The teacher as the report and card describe it: the backend, and an ensemble's members."""
    text = f"`{recipe.teacher}` ({recipe.teacher_model})"
    if recipe.teacher_ensemble > 1:
        text += f", {recipe.teacher_ensemble} of them fine-tuned with successive seeds"
    if recipe.teacher_neighbours:
        text += (
            f", with the graded-neighbours teacher as one more member (the {recipe.teacher_neighbours} most "
            "similar graded training answers to the same question vote; it abstains on a new question)"
        )
    tasks = recipe.ensemble_tasks or recipe.tasks
    if recipe.teacher_ensemble > 1 or recipe.teacher_neighbours:
        text += f"; ensemble on {', '.join(tasks)}, members averaged (survey Eq. 7)"
    return text


def students_text(recipe: EducationRecipe) -> str:
    """The students this run trained, as the report and card describe them."""
    layers = f"{recipe.tiny_layers} layer" + "s" * (recipe.tiny_layers != 1)
    reads = ", marking the pieces the two texts share" if recipe.tiny_exact_match else ""
    described = {"tiny": f"a tiny Transformer ({layers} of width {recipe.tiny_dim}, its own {recipe.vocab_size}-piece "
                         f"vocabulary{reads})", "minilm2": "all-MiniLM-L6-v2 cut to its first 2 layers"}  # fmt: skip
    return "; ".join(described[s] for s in recipe.students)


def flag_lines(result: TaskResult) -> list[str]:
    teacher = f"{result.task}_teacher"
    flags = teacher_flags(teacher_vs_baselines(result.results, teacher, "accuracy"), teacher)
    return [*flags, ""] if flags else []


def timed_teacher_note(result: TaskResult) -> list[str]:
    """With a teacher ensemble, which model the latency rows time: the exported one, the first member (its
    parameter row counts every member)."""
    import json

    members, export = result.pack.task.ensemble, result.exports.get(f"{result.task}_teacher")
    if members == 1 or export is None:
        return []
    params = json.loads((export / "metrics.json").read_text()).get("params")
    size = f" ({params:,} parameters)" if params else ""
    return [f"The latency rows of `{result.task}_teacher` time its exported model, the ensemble's first "
            f"member{size}; the ensemble runs all {members} members, so it is slower and the latency ratio above "
            "is a lower bound.", ""]  # fmt: skip


def teacher_goal(result: TaskResult) -> list[str]:
    """The task's teacher goal as a table row (none for a task without one, e.g. the user's own data)."""
    goal, teacher = TEACHER_GOALS.get(result.task), result.results.get(f"{result.task}_teacher")
    if goal is None or teacher is None or goal[0] not in teacher.metrics:
        return []
    split, metric, target = goal
    value = teacher.metrics[split][metric]
    return [f"| teacher {metric} >= {target:.2f} ({split}) | {value:.3f} | {'yes' if value >= target else '**no**'} |"]


def paired_gain(results: dict, with_name: str, without_name: str, split: str, metric: str) -> tuple[float, float]:
    """Mean and sample std (points) of ``with - without`` over the seeds both trained (std 0 for one seed)."""
    import statistics

    a, b = results[with_name], results[without_name]
    diffs = [100 * (a.per_seed[s][split][metric] - b.per_seed[s][split][metric]) for s in a.seeds if s in b.seeds]
    return statistics.fmean(diffs), statistics.stdev(diffs) if len(diffs) > 1 else 0.0


def variant_goals(result: TaskResult, student: str = "tiny") -> list[str]:
    """Every variant of ``student`` against the goals: retention of the teacher on the first two test splits (not
    applicable where the teacher does not beat the baselines), the gain over the no-KD twin on the first split,
    and ECE against the plain KD student's at equal accuracy. Every variant is listed: none is picked afterwards."""
    task, results = result.task, result.results
    splits = list(result.pack.data.tests)[:2]
    teacher, twin, plain = f"{task}_teacher", f"{task}_{student}_no_kd", f"{task}_{student}_kd"
    if teacher not in results or twin not in results:
        return []
    checks = teacher_vs_baselines(results, teacher, "accuracy")
    names = [n for n in results if n.startswith(f"{task}_{student}_") and n != twin and "_without_t" not in n]
    lines = [
        f"| {student} variant | "
        + " | ".join(f">= {RETAIN:.0%} of teacher ({s})" for s in splits)
        + f" | vs no-KD on {splits[0]} (pt, >= {KD_GAIN_POINTS:g} and mean - std > 0) | ECE vs `kd` "
        f"(<= {ECE_RATIO:g}x at accuracy within {100 * EQUAL_ACCURACY:g} pt) |",
        "|---" * (3 + len(splits)) + "|",
    ]
    for name in names:
        cells = []
        for split in splits:
            if not checks.get(split, {}).get("beats", False):
                cells.append("not applicable (teacher at the baselines)")
                continue
            ratio = results[name].metrics[split]["accuracy"] / results[teacher].metrics[split]["accuracy"]
            cells.append(f"{ratio:.1%} {'yes' if ratio >= RETAIN else '**no**'}")
        mean, std = paired_gain(results, name, twin, splits[0], "accuracy")
        met = mean >= KD_GAIN_POINTS and mean - std > 0
        cells.append(f"{mean:+.2f} ± {std:.2f} {'yes' if met else '**no**'}")
        cells.append(ece_cell(results, name, plain, splits[0]) + control_note(result, student, name, splits[0]))
        lines.append(f"| {name.removeprefix(f'{task}_{student}_')} | " + " | ".join(cells) + " |")
    return lines


def ece_cell(results: dict, name: str, plain: str, split: str) -> str:
    """The variant's ECE against the plain KD student's at equal accuracy; a Bayesian variant's SGLD posterior (its
    predictive mean) is judged the same way after its MAP weights."""
    if name == plain or plain not in results:
        return "–"
    m, p = results[name].metrics[split], results[plain].metrics[split]
    cell = ece_verdict(m["ece"], m["accuracy"], p)
    if "posterior_ece" in m:
        cell += "; posterior " + ece_verdict(m["posterior_ece"], m["posterior_accuracy"], p)
    return cell


def calibration_control(task: PairTask) -> str | None:
    """The calibrated variant that is plain KD otherwise (the `kd` terms, the first teacher, no transfer set), if the
    recipe has one: a calibrated variant's ECE is also set against it, so that a drop in ECE is credited to the
    teacher's calibration or to the method, whichever earned it."""
    plain = task.variants.get("kd")
    for name in task.calibrated_variants:
        terms = task.variants.get(name)
        if terms == plain and not task.uses_ensemble(name, terms) and not task.uses_transfer(name, terms):
            return name
    return None


def control_note(result: TaskResult, student: str, name: str, split: str) -> str:
    """After a calibrated variant's ECE cell: the ECE of plain KD from the same calibrated teacher, and the variant's
    ECE (its posterior's, if it has one) as a multiple of it. Empty for other variants and for the control itself."""
    pack_task, prefix = result.pack.task, f"{result.task}_{student}_"
    control, short = calibration_control(pack_task), name.removeprefix(prefix)
    if control is None or short == control or short not in pack_task.calibrated_variants:
        return ""
    if prefix + control not in result.results:
        return ""
    m, c = result.results[name].metrics[split], result.results[prefix + control].metrics[split]
    which, ece = ("the posterior", m["posterior_ece"]) if "posterior_ece" in m else ("this variant", m["ece"])
    ratio = f"; {which} {ece / c['ece']:.2f}x of it" if c["ece"] > 0 else ""
    return f" (`{control}`, plain KD from the same calibrated teacher: {c['ece']:.3f}{ratio})"


def ece_verdict(ece: float, accuracy: float, plain: dict[str, float]) -> str:
    ratio = ece / plain["ece"] if plain["ece"] > 0 else float("inf")
    met = ratio <= ECE_RATIO and accuracy >= plain["accuracy"] - EQUAL_ACCURACY
    return f"{ece:.3f} vs {plain['ece']:.3f} ({ratio:.2f}x) {'yes' if met else '**no**'}"


def posterior_table(result: TaskResult, split: str) -> list[str]:
    """Bayesian KD: the shipped (MAP) weights beside the SGLD posterior's predictive mean; selective accuracy keeps
    the 80% of answers with the highest top probability (MAP) or the lowest posterior variance."""
    rows = {n: r.metrics[split] for n, r in result.results.items() if "posterior_ece" in r.metrics.get(split, {})}
    if not rows:
        return []
    lines = [f"### Bayesian KD: MAP weights vs the SGLD posterior ({split})", "",
             "| model | accuracy (MAP / posterior) | ECE (MAP / posterior) | selective acc. 80% (MAP / posterior) |",
             "|---|---|---|---|"]  # fmt: skip
    for name, m in rows.items():
        lines.append(f"| {name} | {m['accuracy']:.3f} / {m['posterior_accuracy']:.3f} | {m['ece']:.3f} / "
                     f"{m['posterior_ece']:.3f} | {m['selective_accuracy_80']:.3f} / "
                     f"{m['posterior_selective_accuracy_80']:.3f} |")  # fmt: skip
    return lines + [""]


def attribution_table(recipe: EducationRecipe, result: TaskResult, split: str) -> list[str]:
    """Leave-one-teacher-out: each KD student retrained without one ensemble member, and what that costs it."""
    if result.pack.task.ensemble == 1 or not recipe.leave_one_teacher_out:
        return []
    task, results = result.task, result.results
    lines = [f"### Leave-one-teacher-out attribution (accuracy on {split}, mean over seeds)", "",
             "| student | teacher left out | that teacher alone | student without it | change vs all teachers |",
             "|---|---|---|---|---|"]  # fmt: skip
    for base in [n for n, r in results.items() if r.kd and "_without_t" not in n]:
        full = results[base].metrics[split]["accuracy"]
        for k in range(result.pack.task.ensemble):
            without, member = results.get(f"{base}_without_t{k}"), results.get(f"{task}_teacher_member{k}")
            if without is None or member is None:
                continue
            acc = without.metrics[split]["accuracy"]
            lines.append(f"| {base} | {k} | {member.metrics[split]['accuracy']:.3f} | {acc:.3f} | "
                         f"{100 * (acc - full):+.2f} points |")  # fmt: skip
    return lines + [""]


def task_section(recipe: EducationRecipe, result: TaskResult, out_dir: Path) -> list[str]:
    task, first = result.task, next(iter(result.pack.data.tests))
    lines = [f"## {task_title(recipe, result)}", "",
             "Examples: " + ", ".join(f"{k} {v:,}" for k, v in result.pack.data.sizes().items()) + ".", "",
             "Loss variants: " + "; ".join(variant_text(result.pack.task, n) for n in result.pack.task.variants)
             + ".", "", *calibration_lines(result),
             *flag_lines(result), "### Goals (the teacher, and the tiny KD student vs the teacher)", "",
             *retention_goals(result.results, result.bench, f"{task}_teacher", f"{task}_tiny_kd", "accuracy",
                              retain=RETAIN, fewer=FEWER, faster=FASTER), *teacher_goal(result), "",
             *timed_teacher_note(result)]  # fmt: skip
    goals = variant_goals(result)
    if goals:
        lines += ["### Every tiny variant against the goals", "", *goals, ""]
    for split in result.pack.data.tests:
        lines += [f"### {split}", "", *metrics_table(result.results, split, METRICS, primary="accuracy"), ""]
    # the ablation: every variant (each method alone, and combined) against the no-KD twin on shared seeds
    pairs = [(f"{arch} {name}", f"{task}_{arch}_{name}", f"{task}_{arch}_no_kd") for arch in recipe.students
             for name in result.pack.task.variants if name != "no_kd"]  # fmt: skip
    lines += [f"### Every variant vs its no-KD twin over seeds (accuracy on {first})", "",
              *paired_seed_table(result.results, pairs, first, "accuracy"), ""]  # fmt: skip
    lines += attribution_table(recipe, result, first)
    lines += posterior_table(result, first)
    if result.exports:
        rejected = {name: rejected_variants(path) for name, path in result.exports.items()}
        lines += [f"### Latency (ms, p50 / p99; inputs of {result.pack.task.max_length} tokens)", "",
                  *latency_table(list(result.exports), result.bench, LATENCY_COLUMNS, rejected), ""]  # fmt: skip
    return lines + [*plots(result, out_dir), ""]


def variant_text(task: PairTask, name: str) -> str:
    """A variant's weighted terms and what it learns from: the whole ensemble or its first teacher, and whether
    the transfer set is added."""
    terms = task.variants[name]
    text = f"`{name}` = " + " + ".join(f"{w:g} x {t}" for t, w in terms.items())
    sources = []
    if task.uses_ensemble(name, terms):
        sources.append(f"from all {task.ensemble} teachers")
    elif task.ensemble > 1 and from_teacher(terms):
        sources.append("from teacher 1 alone")
    if task.uses_transfer(name, terms):
        sources.append("with the transfer set")
    if name in task.calibrated_variants:
        sources.append("calibrated on dev")
    return text + (f" ({', '.join(sources)})" if sources else "")


def write_report(recipe: EducationRecipe, results: Sequence[TaskResult], seconds: float) -> dict[str, Any]:
    report_dir = recipe.report_path
    figures = report_dir / "education"
    figures.mkdir(parents=True, exist_ok=True)
    doc = summary(recipe, results, seconds)
    write_summary(report_dir / "education.json", doc)
    title = f"{recipe.data.title}: " if recipe.data.path else "Education pack: "
    lines = header(title + "scoring students distilled from a cross-encoder teacher", doc, seconds,
                   "education.json") + [
        f"Teacher: {teacher_text(recipe)}. Students: {students_text(recipe)}; each trained with "
        f"the loss variants listed under each task (KD temperature {recipe.kd.temperature:g}; `task` is hard-label "
        "CE, `kd` "
        "soft-label KD, survey Eq. 1). The majority class of the training labels is the baseline every model must "
        "beat. Metrics: accuracy, macro-F1, quadratic weighted kappa, ECE (15 bins), PDR = accuracy drop rate under "
        f"typos in the answer (first {recipe.robustness_examples} examples of each split), selective accuracy = "
        "accuracy on the 80% of answers the model is surest of. Mean ± std over training seeds.", "",
    ]  # fmt: skip
    for result in results:
        lines += task_section(recipe, result, figures)
    write_markdown(report_dir / "education.md", lines)
    print(f"report: {report_dir / 'education.md'} and {report_dir / 'education.json'}")
    return doc


def own_data_card(recipe: EducationRecipe, doc: dict[str, Any]) -> dict[str, list[str]]:
    """The model card's sections for a run on the user's own data: their file, their students, no SemEval claims."""
    spec, task = recipe.data, recipe.tasks[0]
    sizes = doc.get("tasks", {}).get(task, {}).get("examples", {})
    grade = f"score `{spec.score}` >= {spec.threshold:g} is correct" if spec.score else f"label `{spec.label}`"
    return {
        "Intended use": [f"Scoring answers like those of {spec.title} for a teacher to review; a score is advice, not "
                         "a grade. Check accuracy on a sample of new questions before relying on it."],
        "Training data": [f"`{Path(spec.path).name}` ({spec.title}), supplied by the user: question `{spec.question}`"
                          + (f", reference `{spec.reference}`" if spec.reference else "")
                          + f", answer `{spec.answer}`, {grade}; split by `{spec.group or spec.question}`. Examples: "
                          + ", ".join(f"{k} {v:,}" for k, v in sizes.items()) + ". Its license and consent are the "
                          "user's to check."],
        "Students": [students_text(recipe) + "."],
        "Limitations": ["- Students inherit the teacher's errors; unseen questions score lower than unseen answers "
                        "(see the report).", "- Inputs longer than the model's max length are truncated."],
    }  # fmt: skip


def write_model_card(recipe: EducationRecipe, doc: dict[str, Any]) -> Path:
    """``<model_card_dir>/README.md``: what the released students are, how well they do, and where they fail."""
    if recipe.data.path:
        return model_card(recipe.model_card_path, f"{recipe.data.title} answer-scoring students", doc,
                          recipe.report_path / "education.md", "accuracy", own_data_card(recipe, doc))  # fmt: skip
    return model_card(recipe.model_card_path, "Education students (answer scoring and solution verification)", doc,
                      recipe.report_path / "education.md", "accuracy", {
        "Intended use": [
            f"Scoring short science answers (correct/incorrect) against up to {recipe.sra_references} teacher-written "
            "reference answers (one per line in the app), and "
            "flagging worked math solutions whose final answer is likely wrong, on school laptops (CPU, onnxruntime). "
            "A score is advice for a teacher, not a grade: review low-confidence items and every answer a student "
            "contests."],
        "Training data": [
            "- SemEval-2013 Task 7 SciEntsBank + Beetle, 2-way labels, official splits "
            f"(license: {_license('semeval2013-sra')}).",
            "- GSM8K `example_model_solutions.jsonl`: real GPT-3 solutions labelled correct/incorrect, split by "
            f"problem; GSM8K train rationales augment the teacher only (license: {_license('gsm8k')})."],
        "Limitations": [
            "- English only; science questions of the SciEntsBank/Beetle kind. Unseen domains score lower than unseen "
            "answers (see the report), so check accuracy on a sample of your own questions before relying on it.",
            "- The verifier reads the solution text and (with `verifier_agreement`, the default) a first line saying "
            "how many of the other solutions to the problem reach the same answer, so score all sampled solutions "
            "of a problem together; it does not do the arithmetic. The untrained rule 'correct when another "
            "solution agrees' is its baseline row in the report.",
            "- Inputs longer than the model's max length are truncated.",
            "- Students inherit the teacher's errors and biases; the teacher is a 22M-parameter cross-encoder"
            + (f" ({recipe.teacher_ensemble} of them averaged on answer scoring, whose `sra_teacher` row counts "
               "all their parameters but times the exported one, the first: the ensemble is slower)."
               if recipe.teacher_ensemble > 1 else "."),
            "- Latency here is on one thread per physical core; the report also times a single thread, where a tiny "
            "student can be faster (it was on the 2-core machine of the report)."],
        "Files": [
            "`distill run education` writes the exported models (ONNX, int8 where it passes its accuracy gate, "
            "tokenizer, spec.json with parity results and sha256 of every file) to "
            f"`{recipe.output_dir}/export/<model>/`; load one with `suite.export.runtime.load_exported`."],
    })  # fmt: skip


def _license(dataset: str) -> str:
    from suite.data import get_spec

    return get_spec(dataset).license
