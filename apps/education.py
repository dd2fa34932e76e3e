"""Gradio app of the education pack: grade short answers with the distilled student, its teacher beside it.

Both models are exported directories (``suite.export``) served by the torch-free runtime on onnxruntime CPU, from
``runs/education/{full,quick}/export/`` or, on a fresh clone with no run, the released student in
``models/education/export/`` (the teacher is not released: the page then shows the student alone). Inputs are
bounded (characters per field, file size, rows) and the answers' text is never logged or quoted in an error: student
answers can be personal data. Parsing, validation and scoring are plain functions, so they are tested without
gradio; ``build_app`` only lays out the page.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from apps.common import InputError, find_run, shown_to_user
from domains.education.data import LABELS, sra_pair
from suite.errors import MalformedRowError, SuiteError
from suite.export.runtime import ExportedTextClassifier, load_exported

if TYPE_CHECKING:
    import gradio as gr

RUNS = Path("runs/education")
RELEASED = Path(__file__).resolve().parents[1] / "models" / "education"
MAX_CHARS = 2_000
MAX_CSV_BYTES = 1_000_000
MAX_ROWS = 500
BATCH_SIZE = 64
PREVIEW_ROWS = 20
FIELDS = {"question": "Question", "reference_answer": "Reference answer(s)", "student_answer": "Student answer"}
HINTS = {"reference_answer": "one per line; the scorer reads them all, as it was trained (sra_pair)"}
ROLES = ("student", "teacher")
REVIEW_BELOW = 0.75  # a score whose top class has less probability than this goes to a teacher
REVIEW = "needs a teacher's look"


def result_columns(roles: tuple[str, ...] | list[str] = ROLES) -> list[str]:
    return [f"{role}_{column}" for role in roles for column in ("label", "p_correct", "review")]


def review_of(p_correct: float) -> str:
    """REVIEW when the model is unsure (its top probability is below REVIEW_BELOW), else ''."""
    return REVIEW if max(p_correct, 1 - p_correct) < REVIEW_BELOW else ""


RESULT_COLUMNS = result_columns()
CORRECT = LABELS.index("correct")
EXAMPLE = {  # a Beetle-style electric-circuits item (SemEval-2013 Task 7), written for this demo
    "question": "Explain why bulb A stays on when switch Y is open and switch Z is closed.",
    "reference_answer": "Bulb A is still contained in a closed path with the battery.",
    "student_answer": "Because there is still a closed loop from the battery through bulb A and back.",
}

Models = dict[str, ExportedTextClassifier]  # role ("student", "teacher") -> model


def resolve_run_dir(run_dir: str | Path | None) -> Path:
    """The run whose ``export/`` the app serves: ``run_dir``, else the full profile's run, else the quick one's."""
    return find_run(run_dir, RUNS, "education models", "`make demo` or `distill run education`", released=RELEASED)


def load_model(export_dir: Path) -> ExportedTextClassifier:
    """An exported incorrect/correct classifier on onnxruntime CPU (sha256-verified by the runtime)."""
    if not (export_dir / "spec.json").is_file():
        raise SuiteError(f"{export_dir}: no exported model there; run `distill run education` to export it")
    model = load_exported(export_dir, providers=["CPUExecutionProvider"])
    if not isinstance(model, ExportedTextClassifier) or model.labels != LABELS:
        raise SuiteError(f"{export_dir}: not a text classifier with labels {LABELS}")
    return model


def parameter_count(export_dir: Path) -> int | None:
    """``params`` from the export's metrics.json when the pipeline recorded it; the app does not guess."""
    path = export_dir / "metrics.json"
    return json.loads(path.read_text()).get("params") if path.is_file() else None


def check_text(name: str, value: str | None) -> str:
    """``value`` without surrounding whitespace; an InputError when it is empty or over MAX_CHARS characters."""
    value = (value or "").strip()
    if not value:
        raise InputError(f"{name} is empty")
    if len(value) > MAX_CHARS:
        raise InputError(f"{name} has {len(value):,} characters; the limit is {MAX_CHARS:,}")
    return value


def check_row(row: dict[str | None, str | None], source: str, line: int) -> dict[str, str]:
    """One CSV row with its three fields checked; a MalformedRowError naming ``source:line`` otherwise."""
    if None in row:  # DictReader files fields beyond the header under the key None
        raise MalformedRowError(source, line, f"more fields than the header's {len(row) - 1}")
    if None in row.values():  # ... and fills the missing ones with None
        raise MalformedRowError(source, line, f"fewer fields than the header's {len(row)}")
    try:
        return {**row, **{column: check_text(name, row[column]) for column, name in FIELDS.items()}}
    except InputError as error:
        raise MalformedRowError(source, line, str(error)) from None


def read_csv(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of a class set: a UTF-8 ``.csv`` of at most 1 MB and MAX_ROWS rows whose header has
    question, reference_answer and student_answer (other columns, such as ``id``, are carried through)."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise InputError(f"{path.name} is not a .csv file; export the sheet as CSV")
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise InputError(f"{path.name} has {size:,} bytes; the limit is {MAX_CSV_BYTES:,} (1 MB)")
    try:
        text = path.read_bytes().decode("utf-8-sig")  # -sig: spreadsheets often write a byte-order mark
    except UnicodeDecodeError as error:
        raise InputError(f"{path.name} is not UTF-8 text (byte {error.start:,}); save it as CSV UTF-8") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip() for name in reader.fieldnames or []]
    reader.fieldnames = header
    missing = [column for column in FIELDS if column not in header]
    if missing:
        raise InputError(f"{path.name}: the header lacks {', '.join(missing)}; expected columns {','.join(FIELDS)}")
    rows = []
    try:
        for row in reader:
            if len(rows) == MAX_ROWS:
                raise InputError(f"{path.name} has more than {MAX_ROWS} rows; split the class set into smaller files")
            rows.append(check_row(row, path.name, reader.line_num))
    except csv.Error as error:
        raise MalformedRowError(path.name, reader.line_num, str(error)) from None
    if not rows:
        raise InputError(f"{path.name} has a header but no rows")
    return header, rows


def label_of(p_correct: float) -> str:
    """The argmax label of (1 - p, p); a tie goes to index 0 as ``argmax`` does."""
    return "correct" if p_correct > 0.5 else "incorrect"


def p_correct(model: ExportedTextClassifier, pairs: list[tuple[str, str]]) -> list[float]:
    """P(correct) of each (text, text_pair), BATCH_SIZE pairs per onnxruntime call."""
    probabilities = []
    for start in range(0, len(pairs), BATCH_SIZE):
        texts, text_pairs = zip(*pairs[start : start + BATCH_SIZE], strict=True)
        probabilities += model.predict_proba(list(texts), list(text_pairs))[:, CORRECT].tolist()
    return probabilities


def score_one(models: Models, question: str, reference: str, answer: str) -> dict[str, tuple[float, float]]:
    """{role: (P(correct), milliseconds)}; the time is one predict call, tokenisation included."""
    pair = sra_pair(
        check_text(FIELDS["question"], question),
        check_text(FIELDS["reference_answer"], reference),
        check_text(FIELDS["student_answer"], answer),
    )
    results = {}
    for role, model in models.items():
        start = time.perf_counter()
        probability = p_correct(model, [pair])[0]
        results[role] = (probability, 1000 * (time.perf_counter() - start))
    return results


def score_rows(models: Models, rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """``rows`` with ``<role>_label``, ``<role>_p_correct`` (6 decimals) and ``<role>_review`` (:func:`review_of`)
    added for every model."""
    pairs = [sra_pair(row["question"], row["reference_answer"], row["student_answer"]) for row in rows]
    scored = [dict(row) for row in rows]
    for role, model in models.items():
        for row, probability in zip(scored, p_correct(model, pairs), strict=True):
            row[f"{role}_label"], row[f"{role}_p_correct"] = label_of(probability), f"{probability:.6f}"
            row[f"{role}_review"] = review_of(probability)
    return scored


def write_csv(path: Path, header: list[str], rows: list[dict[str, str]]) -> Path:
    """The input columns, then the scored ones (an input column of the same name is replaced)."""
    scored = [c for c in RESULT_COLUMNS if c in rows[0]] if rows else RESULT_COLUMNS
    columns = [column for column in header if column not in RESULT_COLUMNS] + scored
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def preview(header: list[str], rows: list[dict[str, str]]) -> dict[str, list]:
    """The first PREVIEW_ROWS rows as a gr.Dataframe value: id (if any), the answer and the scores."""
    scored = [c for c in RESULT_COLUMNS if c in rows[0]] if rows else RESULT_COLUMNS
    columns = [c for c in ("id", "student_answer") if c in header] + scored
    return {"headers": columns, "data": [[row[c] for c in columns] for row in rows[:PREVIEW_ROWS]]}


def header_markdown(run: Path, names: dict[str, str]) -> str:
    """What the page serves: each model's name and, when metrics.json records it, its parameter count."""
    intro = "Is the student's answer correct, given the question and a reference answer?"
    lines = ["# Short-answer scoring", intro, ""]
    for role, name in names.items():
        params = parameter_count(run / "export" / name)
        lines.append(f"- **{role.title()}**: `{name}`" + (f", {params:,} parameters" if params else ""))
    served = "Both run" if len(names) > 1 else "It runs"
    lines += ["", f"{served} on onnxruntime (CPU), loaded from `{run / 'export'}`. Answers are not logged."]
    if len(names) == 1:
        lines.append("This is the released student (no local run yet): `distill run education` adds its teacher.")
    return "\n".join(lines)


def released_student() -> str:
    """The scorer ``models/education/release.json`` ships (the full run chooses it), the app's default student."""
    path = RELEASED / "release.json"
    return next(iter(json.loads(path.read_text(encoding="utf-8"))["models"])) if path.is_file() else "sra_tiny_kd"


def build_app(
    run_dir: str | Path | None = None, student: str | None = None, teacher: str = "sra_teacher"
) -> gr.Blocks:
    """The app over ``<run_dir>/export/{student,teacher}`` (default student: the released one);
    ``distill app education`` calls it with no arguments."""
    student = student or released_student()
    import gradio as gr

    run = resolve_run_dir(run_dir)
    names = dict(zip(ROLES, (student, teacher), strict=True))
    # A release ships the student only; a run also has its teacher to compare with.
    names = {role: name for role, name in names.items() if role == "student" or (run / "export" / name).is_dir()}
    models = {role: load_model(run / "export" / name) for role, name in names.items()}

    def on_score(question: str, reference: str, answer: str) -> tuple[dict, dict, str]:
        with shown_to_user():
            results = score_one(models, question, reference, answer)
        labels = [{"correct": p, "incorrect": 1 - p} for p, _ in results.values()]
        timing = " · ".join(f"{role} {ms:.1f} ms" for role, (_, ms) in results.items())
        unsure = [role for role, (p, _) in results.items() if review_of(p)]
        flag = f"**{', '.join(unsure)}: {REVIEW}** (top probability below {REVIEW_BELOW:.0%}). " if unsure else ""
        return *labels, f"{flag}Latency (one answer, tokenisation included): {timing}"

    def on_csv(upload: str | None) -> tuple[dict, str]:
        with shown_to_user():
            if upload is None:
                raise InputError("upload a CSV file first")
            header, rows = read_csv(upload)
            scored = score_rows(models, rows)
        # In the app's cache, so delete_cache removes it with the uploads.
        out = Path(tempfile.mkdtemp(dir=demo.GRADIO_CACHE)) / f"{Path(upload).stem}_scored.csv"
        return preview(header, scored), str(write_csv(out, header, scored))

    # The example is scored at start-up (twice: the first call warms the sessions), so the page opens with a result.
    on_score(*EXAMPLE.values())
    *initial_labels, initial_latency = on_score(*EXAMPLE.values())

    with gr.Blocks(title="Short-answer scoring", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(header_markdown(run, names))
        with gr.Tab("Score one answer"):
            fields = [gr.Textbox(label=n, value=EXAMPLE[c], max_length=MAX_CHARS, lines=2, info=HINTS.get(c))
                      for c, n in FIELDS.items()]  # fmt: skip
            score = gr.Button("Score", variant="primary")
            with gr.Row():
                outputs = [
                    gr.Label(value=value, label=f"{role.title()} · {names[role]}", num_top_classes=2)
                    for role, value in zip(names, initial_labels, strict=True)
                ]
            latency = gr.Markdown(initial_latency)
        with gr.Tab("Score a class set (CSV)"):
            upload = gr.File(label=f"CSV with columns {','.join(FIELDS)} (optional id)", file_types=[".csv"])
            score_csv = gr.Button("Score CSV", variant="primary")
            table = gr.Dataframe(label=f"Preview (first {PREVIEW_ROWS} rows)", interactive=False)
            results = gr.File(label="Results CSV")
        score.click(on_score, fields, [*outputs, latency], api_name="score")
        score_csv.click(on_csv, upload, [table, results], api_name="score_csv")
    return demo
