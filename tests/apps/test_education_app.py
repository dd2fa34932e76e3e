"""The education app: served and driven through gradio_client, its validation helpers, and its screenshot."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from apps import education
from apps.education import (
    EXAMPLE,
    MAX_CHARS,
    MAX_ROWS,
    RESULT_COLUMNS,
    REVIEW,
    InputError,
    build_app,
    check_text,
    header_markdown,
    read_csv,
    resolve_run_dir,
    score_one,
)
from apps.screenshot import WINDOW, screenshot
from domains.education.data import sra_pair
from suite.errors import MalformedRowError, SuiteError
from suite.export.runtime import load_exported

HEADER = "id,question,reference_answer,student_answer\n"
QUESTION, REFERENCE = "Why does bulb A stay on?", "Bulb A is in a closed path with the battery."


def runtime_p_correct(run_dir, name: str, rows: list[tuple[str, str, str]]) -> np.ndarray:
    texts, pairs = zip(*(sra_pair(*row) for row in rows), strict=True)
    return load_exported(run_dir / "export" / name).predict_proba(list(texts), list(pairs))[:, 1]


def confidence(label_output: dict, label: str) -> float:
    return next(c["confidence"] for c in label_output["confidences"] if c["label"] == label)


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def client(app_url, tmp_path_factory):
    return Client(app_url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


def test_score_one_answer_matches_the_runtime(client, run_dir):
    answer = "There is still a closed loop through bulb A."
    student, teacher, latency = client.predict(QUESTION, REFERENCE, answer, api_name="/score")
    for output, name in ((student, "sra_tiny_kd"), (teacher, "sra_teacher")):
        expected = runtime_p_correct(run_dir, name, [(QUESTION, REFERENCE, answer)])[0]
        assert confidence(output, "correct") == pytest.approx(expected, abs=1e-5)
        assert output["label"] == ("correct" if expected > 0.5 else "incorrect")
    assert confidence(student, "correct") != pytest.approx(confidence(teacher, "correct"), abs=1e-6)
    assert "student" in latency and "teacher" in latency and "ms" in latency


def test_score_a_class_set(client, run_dir, tmp_path):
    answers = ["A closed loop.", 'It is "on", because\nthe path is closed.', "The battery is dead."]
    rows = [(QUESTION, REFERENCE, answer) for answer in answers]
    with open(tmp_path / "class.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "question", "reference_answer", "student_answer"])
        writer.writerows([f"s{i}", *row] for i, row in enumerate(rows))
    table, results = client.predict(handle_file(str(tmp_path / "class.csv")), api_name="/score_csv")
    with open(results, newline="", encoding="utf-8") as f:
        scored = list(csv.DictReader(f))
    assert list(scored[0]) == ["id", "question", "reference_answer", "student_answer", *RESULT_COLUMNS]
    assert [row["id"] for row in scored] == ["s0", "s1", "s2"]
    assert [row["student_answer"] for row in scored] == answers
    for role, name in (("student", "sra_tiny_kd"), ("teacher", "sra_teacher")):
        expected = runtime_p_correct(run_dir, name, rows)
        np.testing.assert_allclose([float(row[f"{role}_p_correct"]) for row in scored], expected, atol=1e-5)
        assert [row[f"{role}_label"] for row in scored] == ["correct" if p > 0.5 else "incorrect" for p in expected]
        assert [row[f"{role}_review"] for row in scored] == [REVIEW if max(p, 1 - p) < 0.75 else "" for p in expected]
    assert table["headers"] == ["id", "student_answer", *RESULT_COLUMNS] and len(table["data"]) == 3


def test_an_over_long_answer_is_refused(client):
    with pytest.raises(Exception, match=f"Student answer has {MAX_CHARS + 1:,} characters"):
        client.predict(QUESTION, REFERENCE, "a" * (MAX_CHARS + 1), api_name="/score")


def test_a_csv_without_the_answer_column_is_refused(client, tmp_path):
    path = write(tmp_path / "class.csv", "question,reference_answer\nq,r\n")
    with pytest.raises(Exception, match="the header lacks student_answer"):
        client.predict(handle_file(str(path)), api_name="/score_csv")


def test_check_text_bounds():
    assert check_text("Question", "  why?  ") == "why?"
    with pytest.raises(InputError, match="Question is empty"):
        check_text("Question", "   ")
    assert len(check_text("Question", "x" * MAX_CHARS)) == MAX_CHARS
    with pytest.raises(InputError, match="2,001 characters"):
        check_text("Question", "x" * (MAX_CHARS + 1))


def test_read_csv_carries_every_column(tmp_path):
    path = write(tmp_path / "a.csv", "\ufeff" + HEADER + 's1,q,r,"two\nlines"\n\ns2,q,r,b\n')
    header, rows = read_csv(path)
    assert header == ["id", "question", "reference_answer", "student_answer"]
    assert rows == [
        {"id": "s1", "question": "q", "reference_answer": "r", "student_answer": "two\nlines"},
        {"id": "s2", "question": "q", "reference_answer": "r", "student_answer": "b"},
    ]


def test_read_csv_row_limit(tmp_path):
    assert len(read_csv(write(tmp_path / "ok.csv", HEADER + "1,q,r,a\n" * MAX_ROWS))[1]) == MAX_ROWS
    with pytest.raises(InputError, match=f"more than {MAX_ROWS} rows"):
        read_csv(write(tmp_path / "big.csv", HEADER + "1,q,r,a\n" * (MAX_ROWS + 1)))


def test_read_csv_size_limit(tmp_path):
    path = write(tmp_path / "a.csv", HEADER + "1,q,r," + "a" * 1_000_000 + "\n")
    with pytest.raises(InputError, match="the limit is 1,000,000"):
        read_csv(path)


def test_read_csv_wants_a_csv(tmp_path):
    with pytest.raises(InputError, match="not a .csv file"):
        read_csv(write(tmp_path / "a.xlsx", HEADER + "1,q,r,a\n"))
    with pytest.raises(InputError, match="not UTF-8"):
        (tmp_path / "b.csv").write_bytes(HEADER.encode() + b"1,q,r,\xff\n")
        read_csv(tmp_path / "b.csv")
    with pytest.raises(InputError, match="no rows"):
        read_csv(write(tmp_path / "c.csv", HEADER))


def test_read_csv_missing_column(tmp_path):
    with pytest.raises(InputError, match="the header lacks reference_answer; expected columns"):
        read_csv(write(tmp_path / "a.csv", "question,student_answer\nq,a\n"))


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("s2,q,r\n", "fewer fields than the header's 4"),
        ("s2,q,r,a,extra\n", "more fields than the header's 4"),
        ("s2,q,,a\n", "Reference answer\\(s\\) is empty"),
        (f"s2,q,r,{'a' * (MAX_CHARS + 1)}\n", "Student answer has 2,001 characters"),
    ],
)
def test_read_csv_names_the_line_of_a_malformed_row(tmp_path, row, reason):
    # line 1 is the header, lines 2-3 one record with a quoted line break: the bad row is on line 4
    path = write(tmp_path / "a.csv", HEADER + 's1,q,r,"one\ntwo"\n' + row)
    with pytest.raises(MalformedRowError, match=f"a.csv:4: malformed row: {reason}") as caught:
        read_csv(path)
    assert caught.value.line == 4


def test_missing_runs_raise_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(education, "RELEASED", tmp_path / "models" / "education")
    message = (r"no exported education models in runs/education/full/export or runs/education/quick/export or "
               rf"{re.escape(str(tmp_path))}/models/education/export; run")  # fmt: skip
    with pytest.raises(SuiteError, match=message):
        build_app()
    with pytest.raises(SuiteError, match=re.escape(f"no exported education models in {tmp_path}/nowhere/export;")):
        build_app(tmp_path / "nowhere")


def test_the_full_run_is_preferred(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / education.RUNS / "quick" / "export").mkdir(parents=True)
    assert resolve_run_dir(None) == education.RUNS / "quick"
    (tmp_path / education.RUNS / "full" / "export").mkdir(parents=True)
    assert resolve_run_dir(None) == education.RUNS / "full"


def test_with_no_run_the_released_student_is_served_alone(run_dir, tmp_path, monkeypatch):
    import shutil

    monkeypatch.chdir(tmp_path)
    released = tmp_path / "models" / "education"
    shutil.copytree(run_dir / "export" / "sra_tiny_kd", released / "export" / "sra_tiny_kd")
    monkeypatch.setattr(education, "RELEASED", released)
    assert resolve_run_dir(None) == released
    student = load_exported(released / "export" / "sra_tiny_kd")
    results = score_one({"student": student}, *EXAMPLE.values())
    assert set(results) == {"student"}
    app = build_app()
    try:
        assert "This is the released student" in header_markdown(released, {"student": "sra_tiny_kd"})
        assert app.fns  # the page was laid out with the student alone
    finally:
        app.close()


def test_header_shows_what_the_files_record(run_dir):
    params = json.loads((run_dir / "export" / "sra_tiny_kd" / "metrics.json").read_text())["params"]
    text = header_markdown(run_dir, {"student": "sra_tiny_kd", "teacher": "sra_teacher"})
    assert f"**Student**: `sra_tiny_kd`, {params:,} parameters" in text
    assert "- **Teacher**: `sra_teacher`\n" in text and "onnxruntime (CPU)" in text


def test_screenshot_shows_a_rendered_page(run_dir, tmp_path):
    # Needs Debian's chromium (make installs it); a missing browser fails here with the install command.
    path = screenshot(build_app(run_dir), tmp_path / "shots" / "app.png")
    with Image.open(path) as image:
        assert image.size == WINDOW
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50, "the screenshot is blank or nearly uniform"


def test_an_unsure_score_asks_for_a_teachers_look():
    from apps.education import review_of

    assert review_of(0.6) == REVIEW and review_of(0.3) == REVIEW  # top probability 0.6 and 0.7
    assert review_of(0.9) == "" and review_of(0.1) == ""


def test_the_default_student_is_the_one_the_release_ships(tmp_path, monkeypatch):
    import json

    import apps.education as app

    monkeypatch.setattr(app, "RELEASED", tmp_path)
    assert app.released_student() == "sra_tiny_kd"  # nothing released yet
    (tmp_path / "release.json").write_text(json.dumps({"models": {"sra_tiny_combined": {}}}))
    assert app.released_student() == "sra_tiny_combined"
