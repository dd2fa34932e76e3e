"""Bring your own short-answer data: a CSV, TSV or JSON Lines file of graded answers, mapped by column names.

Each row is one student answer to one question: the question, an optional reference answer, the answer, and its
grade, either a class label (any number of classes) or a numeric score turned into incorrect / correct by a
threshold. Splits hold out whole questions (``unseen_questions``, like SemEval-2013's) and, of the remaining
questions, a share of the answers (``unseen_answers``); the rest trains, with dev cut by question as for the
built-in data. A malformed row stops the run with ``FILE:LINE: malformed row: ...`` naming the column.

    distill run education --set data.path=my_answers.csv --set data.score=points --set data.threshold=3
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domains.education.data import Example, sra_pair
from suite.config import check
from suite.errors import DataError, MalformedRowError

SPLITS = ("unseen_answers", "unseen_questions")


@dataclass
class OwnData:
    """Where a user's graded answers are and which columns hold what (``data.*`` in the education recipe)."""

    path: str = field(default="", metadata={"help": "CSV / TSV / JSONL of graded answers (empty: the built-in data)"})
    name: str = field(default="", metadata={"help": "dataset name for the report (empty: the file's name)"})
    question: str = field(default="question", metadata={"help": "column with the question"})
    reference: str = field(default="reference", metadata={"help": "column with a reference answer ('' if none)"})
    answer: str = field(default="answer", metadata={"help": "column with the student's answer"})
    label: str = field(default="label", metadata={"help": "column with the grade as a class (unused with score)"})
    labels: list[str] = field(default_factory=list, metadata={"help": "class order (empty: sorted as found)"})
    score: str = field(default="", metadata={"help": "column with a numeric score, binarised by threshold"})
    threshold: float = field(default=0.0, metadata={"help": "score >= threshold is correct"})
    group: str = field(default="", metadata={"help": "column no split may straddle (empty: the question)"})
    selection: str = field(default="", metadata={"help": "selection.json of `distill data select` on this file"})
    test_fraction: float = field(default=0.2, metadata={"help": "share of questions held out (unseen questions)"})
    answers_fraction: float = field(default=0.1, metadata={"help": "share of answers held out (unseen answers)"})

    def __post_init__(self) -> None:
        check(0 < self.test_fraction < 0.6, "data.test_fraction", "must be in (0, 0.6)")
        check(0 <= self.answers_fraction < 0.5, "data.answers_fraction", "must be in [0, 0.5)")
        check(bool(self.label or self.score), "data.label", "grade with a label column or a score column")

    @property
    def title(self) -> str:
        return self.name or Path(self.path).stem

    @property
    def task(self) -> str:
        """The task name that prefixes every model: the dataset name as a lower-case identifier."""
        slug = re.sub(r"[^a-z0-9]+", "_", self.title.lower()).strip("_")
        return slug if slug and slug[0].isalpha() else f"data_{slug}"

    def class_names(self, found: set[str]) -> list[str]:
        if self.score:
            return ["incorrect", "correct"]
        return list(self.labels) or sorted(found, key=_natural)


def _natural(value: str) -> tuple:
    """Numbers in numeric order ('2' before '10'), then text."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def _text(record: dict[str, Any], column: str, path: Path, line: int, required: bool = True) -> str:
    if column not in record:
        raise MalformedRowError(path, line, f"no column '{column}' (columns: {', '.join(record)})")
    value = record[column]
    value = "" if value is None else str(value).strip()
    if required and not value:
        raise MalformedRowError(path, line, f"column '{column}' is empty")
    return value


def _grade(spec: OwnData, record: dict[str, Any], path: Path, line: int) -> str:
    if not spec.score:
        return _text(record, spec.label, path, line)
    raw = _text(record, spec.score, path, line)
    try:
        return "correct" if float(raw) >= spec.threshold else "incorrect"
    except ValueError:
        raise MalformedRowError(path, line, f"column '{spec.score}': '{raw[:40]}' is not a number") from None


def read_rows(spec: OwnData) -> list[tuple[int, dict[str, str]]]:
    """``(line, {question, reference, answer, grade, group})`` for every row, each field checked."""
    from suite.data.rows import table_rows

    path = Path(spec.path).expanduser()
    if not path.is_file():
        raise DataError(f"data.path: no such file: {path}")
    out = []
    for line, record in table_rows(path):
        question = _text(record, spec.question, path, line)
        out.append((line, {
            "question": question, "answer": _text(record, spec.answer, path, line),
            "reference": _text(record, spec.reference, path, line, required=False) if spec.reference else "",
            "grade": _grade(spec, record, path, line),
            "group": _text(record, spec.group, path, line) if spec.group else question,
        }))  # fmt: skip
    if not out:
        raise MalformedRowError(path, 1, "no rows")
    return out


def load_own(spec: OwnData) -> tuple[list[str], dict[str, list[Example]]]:
    """(class names, {train, unseen_answers, unseen_questions}) from the user's file."""
    rows = read_rows(spec)
    if spec.selection:  # rows a selector kept (e.g. near-duplicate answers removed), checked against this file
        from suite.selection.files import apply_selection

        kept = set(apply_selection(spec.selection, [r["answer"] for _, r in rows]))
        rows = [row for i, row in enumerate(rows) if i in kept]
    labels = spec.class_names({r["grade"] for _, r in rows})
    path = Path(spec.path)
    splits: dict[str, list[Example]] = {"train": [], **{name: [] for name in SPLITS}}
    for (line, row), split in zip(rows, split_rows(spec, rows), strict=True):
        if row["grade"] not in labels:
            raise MalformedRowError(path, line, f"grade '{row['grade']}' is not one of data.labels {labels}")
        context = (
            sra_pair(row["question"], row["reference"], row["answer"])[0] if row["reference"] else row["question"]
        )
        example = Example(context, row["answer"], labels.index(row["grade"]), row["group"])
        splits[split].append(example)
    empty = [name for name, examples in splits.items() if not examples]
    groups = len({r["group"] for _, r in rows})
    check(not empty, "data.test_fraction", f"{path.name}: split(s) {', '.join(empty)} came out empty; the file has "
          f"{len(rows)} rows in {groups} groups: add rows or change the fractions")  # fmt: skip
    return labels, splits


def _held_out(keys: list[str], fraction: float, salt: str) -> set[str]:
    """``fraction`` of the distinct ``keys`` (at least one when fraction > 0), the first in a hash order: the same
    keys whatever the file's row order."""
    from suite.data.splits import hash_unit

    distinct = sorted(set(keys), key=lambda k: hash_unit(k, salt))
    return set(distinct[: max(1, round(fraction * len(distinct)))]) if fraction > 0 else set()


def split_rows(spec: OwnData, rows: list[tuple[int, dict[str, str]]]) -> list[str]:
    """The split of every row: whole groups held out as unseen questions, then single answers as unseen answers."""
    questions = _held_out([r["group"] for _, r in rows], spec.test_fraction, "own-test")
    seen: dict[tuple[str, str], int] = {}  # the same answer twice to one question: two keys, in file order
    answer_key = {}
    for line, r in rows:
        nth = seen[(r["group"], r["answer"])] = seen.get((r["group"], r["answer"]), -1) + 1
        answer_key[line] = f"{r['group']}\x00{r['answer']}\x00{nth}"
    kept = [answer_key[line] for line, r in rows if r["group"] not in questions]
    answers = _held_out(kept, spec.answers_fraction, "own-answers")
    return ["unseen_questions" if r["group"] in questions else "unseen_answers" if answer_key[line] in answers
            else "train" for line, r in rows]  # fmt: skip
