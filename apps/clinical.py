"""Gradio app of the clinical pack: type a case (a question and its context, a symptom description or a note), get
the student's answer with its probability from the ONNX label path, the rationale its explain path writes, the
words of the case that rationale rests on highlighted, and the time each part took.

It serves ``runs/clinical/{full,quick}`` or, on a fresh clone with no run, the released students in
``models/clinical``. Nothing is kept or logged: inputs are bounded, errors never quote them. The work is plain
functions (tested without gradio); ``build_app`` lays out the page.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apps.common import InputError, find_run, shown_to_user
from suite.errors import SuiteError

if TYPE_CHECKING:
    import gradio as gr

RUNS = Path("runs/clinical")
RELEASED = Path(__file__).resolve().parents[1] / "models" / "clinical"
MAX_CHARS = 4_000
MAX_RATIONALE_TOKENS = 64
EXAMPLE = (  # written for this demo in the style of a Symptom2Disease description
    "I have had a high fever and chills for three days, my whole body aches and I keep coughing."
)


@dataclass
class Models:
    label: Any  # suite.export.runtime.ExportedTextClassifier
    name: str
    explain: Any = None  # suite.export.runtime.ExportedSeq2Seq, when the run exported the explain path


def resolve_run_dir(run_dir: str | Path | None) -> Path:
    return find_run(run_dir, RUNS, "clinical students", "`distill run clinical --profile quick`", released=RELEASED)


def load_models(run: Path) -> Models:
    """The run's released label path (``model_card/export``, as ``--publish`` ships it) or else its first label-path
    export (a step-by-step one when there is one), with its explain path."""
    from suite.export.runtime import load_exported

    def exported(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if (p / "spec.json").is_file()) if folder.is_dir() else []

    exports = exported(run / "model_card" / "export") or exported(run / "export")
    labels = [p for p in exports if not p.name.endswith("_explain") and not p.name.endswith("_teacher")]
    if not labels:
        raise SuiteError(f"{run / 'export'}: no exported student; run `distill run clinical` first")
    preferred = [p for p in labels if (p.parent / f"{p.name}_explain" / "spec.json").is_file()] or labels
    chosen = preferred[0]
    explain_dir = chosen.parent / f"{chosen.name}_explain"
    explain = load_exported(explain_dir, providers=["CPUExecutionProvider"]) if explain_dir.is_dir() else None
    return Models(load_exported(chosen, providers=["CPUExecutionProvider"]), chosen.name, explain)


def check_case(text: str | None, context: str | None) -> tuple[str, str]:
    text, context = (text or "").strip(), (context or "").strip()
    if not text:
        raise InputError("the case is empty: type a question, a symptom description or a note")
    if len(text) + len(context) > MAX_CHARS:
        raise InputError(f"the case is {len(text) + len(context):,} characters; at most {MAX_CHARS:,} are accepted")
    return text, context


def evidence(case: str, rationale: str) -> list[tuple[str, str | None]]:
    """``case`` cut into (piece, "evidence" | None) for gr.HighlightedText: the words the rationale names."""
    from suite.eval.eraser import WORD, cited_words

    named = cited_words(rationale, case)
    pieces, last = [], 0
    for match in WORD.finditer(case):
        if match.group(0).lower() in named:
            pieces += [(case[last : match.start()], None), (match.group(0), "evidence")]
            last = match.end()
    pieces.append((case[last:], None))
    return [(text, tag) for text, tag in pieces if text]


def answer(models: Models, text: str, context: str = "", top: int = 3) -> dict[str, Any]:
    """``{"labels": {label: probability} (top ones), "ms", "rationale", "explain_ms", "evidence"}``."""
    text, context = check_case(text, context)
    pairs = [context] if context else None
    started = time.perf_counter()
    probs = models.label.predict_proba([text], pairs)[0]
    out: dict[str, Any] = {"ms": 1000 * (time.perf_counter() - started), "rationale": None, "evidence": []}
    ranked = sorted(range(len(probs)), key=lambda i: -probs[i])[:top]
    out["labels"] = {models.label.labels[i]: float(probs[i]) for i in ranked}
    if models.explain is not None:
        started = time.perf_counter()
        out["rationale"] = models.explain.generate_text([text], MAX_RATIONALE_TOKENS, text_pairs=pairs)[0]
        out["explain_ms"] = 1000 * (time.perf_counter() - started)
        out["evidence"] = evidence(f"{text} {context}".strip(), out["rationale"])
    return out


def as_markdown(result: dict[str, Any]) -> str:
    lines = [f"- **{label}**: {p:.1%}" for label, p in result["labels"].items()]
    lines.append(f"- label path: {result['ms']:.1f} ms")
    if result["rationale"] is not None:
        lines += [f"\n**Why (the student's rationale):** {result['rationale'] or '(empty)'}",
                  f"- explain path: {result['explain_ms']:.0f} ms"]  # fmt: skip
    else:
        lines.append("\n(this run exported no explain path)")
    return "\n".join(lines)


def build_app(run_dir: str | Path | None = None) -> gr.Blocks:
    import gradio as gr

    run = resolve_run_dir(run_dir)
    models = load_models(run)

    def on_answer(text: str, context: str) -> tuple[str, list]:
        with shown_to_user():
            result = answer(models, text, context)
        return as_markdown(result), result["evidence"]

    # The example is answered at start-up (twice: the first call warms the sessions), so the page opens with a result.
    on_answer(EXAMPLE, "")
    initial_answer, initial_evidence = on_answer(EXAMPLE, "")

    with gr.Blocks(title="Clinical answers with reasons", analytics_enabled=False) as demo:
        gr.Markdown(f"# Clinical answers with reasons\nStudent `{models.name}` (ONNX, onnxruntime CPU) from `{run}`. "
                    "A suggestion for a clinician to check, never a diagnosis; nothing you type is kept.")  # fmt: skip
        with gr.Row():
            text = gr.Textbox(label="Case (question, symptoms or note)", value=EXAMPLE, lines=4, max_length=MAX_CHARS)
            context = gr.Textbox(label="Context (an abstract, for PubMedQA students; optional)", lines=4,
                                 max_length=MAX_CHARS)  # fmt: skip
        button = gr.Button("Answer", variant="primary")
        with gr.Row():
            result = gr.Markdown(initial_answer, label="Answer")
            highlighted = gr.HighlightedText(initial_evidence, label="Evidence the rationale names",
                                             color_map={"evidence": "orange"})  # fmt: skip
        button.click(on_answer, [text, context], [result, highlighted], api_name="answer")
    return demo
