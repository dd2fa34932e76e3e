"""Gradio app of the radiology pack: paste a report's findings, get a draft impression from the distilled student
(ONNX, onnxruntime CPU) and, when the run's teacher is on disk, from the teacher too; findings the draft asserts
that the findings do not (hallucinated) or leaves out (missing) are flagged, with the time each model took.

It serves ``runs/radiology/{full,quick}`` or, on a fresh clone with no run, the released student in
``models/radiology`` (student alone: the teacher is not released). Inputs are bounded and no report text is logged
or quoted in an error. The work is plain functions (tested without gradio); ``build_app`` lays out the page.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apps.common import InputError, find_run, shown_to_user
from domains.radiology.findings import chest_extractor
from suite.errors import SuiteError

if TYPE_CHECKING:
    import gradio as gr

RUNS = Path("runs/radiology")
RELEASED = Path(__file__).resolve().parents[1] / "models" / "radiology"
MAX_CHARS = 3_000
MAX_NEW_TOKENS = 64
EXAMPLE = (  # written for this demo in the style of an IU X-ray report
    "The heart is mildly enlarged. There is a small right pleural effusion. No pneumothorax. The left lung is clear."
)


@dataclass
class Models:
    student: Any  # suite.export.runtime.ExportedSeq2Seq
    student_name: str
    teacher: Any = None  # (transformers model, tokenizer) when the run's teacher folder exists


def resolve_run_dir(run_dir: str | Path | None) -> Path:
    return find_run(run_dir, RUNS, "radiology students", "`distill run radiology --profile quick`", released=RELEASED)


def load_models(run: Path) -> Models:
    """The first exported student of ``run`` (the released one on a fresh clone) and the run's teacher if present."""
    from suite.export.runtime import ExportedSeq2Seq, load_exported

    exports = sorted(p for p in (run / "export").iterdir() if (p / "spec.json").is_file())
    exports = [p for p in exports if not p.name.endswith("_teacher")]  # exported for its latency, not served
    if not exports:
        raise SuiteError(f"{run / 'export'}: no exported student; run `distill run radiology` first")
    preferred = [p for p in exports if p.name.endswith("_fkl")] or exports
    student = load_exported(preferred[0], providers=["CPUExecutionProvider"])
    if not isinstance(student, ExportedSeq2Seq):
        raise SuiteError(f"{preferred[0]}: not a seq2seq student")
    teacher_dir = run / "impression" / "teacher" / "hf"
    teacher = None
    if (teacher_dir / "config.json").is_file():
        from transformers import AutoTokenizer

        from suite.students.generative import hf_generator

        teacher = (hf_generator(str(teacher_dir)).eval(), AutoTokenizer.from_pretrained(teacher_dir))
    return Models(student, preferred[0].name, teacher)


def check_findings(text: str | None) -> str:
    text = (text or "").strip()
    if not text:
        raise InputError("the findings are empty: paste a report's findings section")
    if len(text) > MAX_CHARS:
        raise InputError(f"the findings are {len(text):,} characters; at most {MAX_CHARS:,} are accepted")
    return text


def flags(findings: str, impression: str) -> dict[str, list[str]]:
    """Findings the impression asserts without support in the findings, and positive findings it leaves out."""
    extractor = chest_extractor()
    given, said = extractor.positives(findings), extractor.positives(impression)
    return {"hallucinated": sorted(said - given), "missing": sorted(given - said)}


def summarize(models: Models, findings: str, max_new_tokens: int = MAX_NEW_TOKENS) -> dict[str, dict[str, Any]]:
    """``{role: {"impression", "ms", "hallucinated", "missing"}}`` for the student and, if loaded, the teacher."""
    findings = check_findings(findings)
    started = time.perf_counter()
    impression = models.student.generate_text([findings], max_new_tokens)[0]
    out = {"student": {"impression": impression, "ms": 1000 * (time.perf_counter() - started),
                       **flags(findings, impression)}}  # fmt: skip
    if models.teacher is not None:
        from suite.generative import generate

        model, tokenizer = models.teacher
        started = time.perf_counter()
        impression = generate(model, tokenizer, [findings], 512, max_new_tokens)[0]
        out["teacher"] = {"impression": impression, "ms": 1000 * (time.perf_counter() - started),
                          **flags(findings, impression)}  # fmt: skip
    return out


def as_markdown(result: dict[str, Any]) -> str:
    def names(items: list[str]) -> str:
        return ", ".join(i.replace("_", " ") for i in items) or "none"

    return (f"**Draft:** {result['impression'] or '(empty)'}\n\n"
            f"- hallucinated findings: {names(result['hallucinated'])}\n"
            f"- missing findings: {names(result['missing'])}\n- {result['ms']:.0f} ms")  # fmt: skip


def build_app(run_dir: str | Path | None = None) -> gr.Blocks:
    import gradio as gr

    run = resolve_run_dir(run_dir)
    models = load_models(run)

    def on_summarize(findings: str) -> tuple[str, str]:
        with shown_to_user():
            results = summarize(models, findings)
        teacher = results.get("teacher")
        return as_markdown(results["student"]), as_markdown(teacher) if teacher else "(the teacher is not on disk)"

    with gr.Blocks(title="Impression drafts", analytics_enabled=False) as demo:
        gr.Markdown(f"# Impression drafts\nStudent `{models.student_name}` (ONNX, onnxruntime CPU) from `{run}`. "
                    "A draft for a radiologist to edit, never a diagnosis.")  # fmt: skip
        findings = gr.Textbox(label="Findings", value=EXAMPLE, lines=5, max_length=MAX_CHARS)
        button = gr.Button("Draft the impression", variant="primary")
        first_student, first_teacher = on_summarize(EXAMPLE)  # the page opens with the example already drafted
        with gr.Row():
            with gr.Column():
                gr.Markdown("### Student (ONNX)")
                student = gr.Markdown(first_student)
            with gr.Column():
                gr.Markdown("### Teacher (PyTorch)")
                teacher = gr.Markdown(first_teacher)
        button.click(on_summarize, findings, [student, teacher], api_name="summarize")
    return demo
