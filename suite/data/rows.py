"""Row readers with 1-based line numbers, and the one policy for malformed rows.

A loader reads ``(line, raw)`` pairs from :func:`jsonl_rows` / :func:`csv_rows` / :func:`json_document` and parses
each one inside ``policy.guard(path, line)``. A parse step that finds a bad row raises :class:`BadRow`; the guard
turns it into :class:`~suite.errors.MalformedRowError` (``FILE:LINE: malformed row: REASON``) or, with
``skip_bad_rows=True``, counts it and moves on. :meth:`RowPolicy.finish` returns the records as :class:`Splits`
whose ``skipped`` attribute maps each file to its number of skipped rows, and logs one warning per such file, so
nothing is dropped silently. Whole-file problems (bad header, invalid JSON document, invalid CSV quoting) always
raise: there is no row to skip.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from suite.errors import MalformedRowError

logger = logging.getLogger(__name__)
_KEY = re.compile(r'\s*"((?:[^"\\]|\\.)*)"\s*:')  # a JSON object key at the start of a line


class BadRow(ValueError):
    """Raised by a parse step; the reason becomes the MalformedRowError message."""


class Splits(dict):
    """``split name -> list of record dicts``, plus ``skipped``: file path -> malformed rows skipped in it."""

    def __init__(self, splits: dict[str, list[dict]] | None = None, skipped: dict[str, int] | None = None):
        super().__init__(splits or {})
        self.skipped: dict[str, int] = dict(skipped or {})

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def counts(self) -> dict[str, int]:
        return {name: len(records) for name, records in self.items()}


class RowPolicy:
    """Raise on the first malformed row, or (``skip_bad_rows=True``) skip and count each one."""

    def __init__(self, skip_bad_rows: bool = False):
        self.skip_bad_rows = skip_bad_rows
        self.skipped: dict[str, int] = {}

    @contextlib.contextmanager
    def guard(self, path: Path, line: int) -> Iterator[None]:
        try:
            yield
        except BadRow as error:
            if not self.skip_bad_rows:
                raise MalformedRowError(path, line, str(error)) from None
            self.skipped[str(path)] = self.skipped.get(str(path), 0) + 1

    def finish(self, splits: dict[str, list[dict]]) -> Splits:
        for path, count in self.skipped.items():
            logger.warning("skipped %d malformed rows in %s", count, path)
        return Splits(splits, self.skipped)


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedRowError(path, data[: error.start].count(b"\n") + 1, "not valid UTF-8") from None


def jsonl_rows(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(line number, raw bytes)`` for each non-blank line; parse with :func:`json_object` inside a guard."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                yield number, raw


def json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRow("not valid UTF-8") from None
    except json.JSONDecodeError as error:
        raise BadRow(f"invalid JSON ({error.msg})") from None
    if not isinstance(value, dict):
        raise BadRow(f"expected a JSON object, got {type(value).__name__}")
    return value


def csv_rows(path: Path, header: Sequence[str]) -> Iterator[tuple[int, list[str]]]:
    """``(physical line where the record starts, fields)`` after checking the header; blank lines are skipped."""
    reader = csv.reader(io.StringIO(_decode(path, path.read_bytes()), newline=""))
    try:
        found = next(reader, None)
        if found != list(header):
            raise MalformedRowError(path, 1, f"header {found} != expected {list(header)}")
        start = reader.line_num + 1
        for row in reader:
            if row:
                yield start, row
            start = reader.line_num + 1
    except csv.Error as error:
        raise MalformedRowError(path, reader.line_num, f"invalid CSV ({error})") from None


def table_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line, record)`` from a user's table: CSV or TSV with a header row of its own choosing (every value a
    string), or JSON Lines (one object per line). Parse errors name the file and line."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        for number, raw in jsonl_rows(path):
            try:
                yield number, json_object(raw)
            except BadRow as error:
                raise MalformedRowError(path, number, str(error)) from None
        return
    if suffix not in (".csv", ".tsv"):
        raise MalformedRowError(path, 1, f"unknown table format '{suffix}': use .csv, .tsv or .jsonl")
    reader = csv.reader(io.StringIO(_decode(path, path.read_bytes()), newline=""),
                        delimiter="\t" if suffix == ".tsv" else ",")  # fmt: skip
    try:
        header = next(reader, None)
        if not header:
            raise MalformedRowError(path, 1, "empty file: expected a header row")
        start = reader.line_num + 1
        for row in reader:
            if row:
                if len(row) != len(header):
                    raise MalformedRowError(path, start, f"expected {len(header)} columns ({', '.join(header)}), "
                                                         f"got {len(row)}")  # fmt: skip
                yield start, dict(zip(header, row, strict=True))
            start = reader.line_num + 1
    except csv.Error as error:
        raise MalformedRowError(path, reader.line_num, f"invalid CSV ({error})") from None


def columns(row: list[str], names: Sequence[str]) -> dict[str, str]:
    """Name the fields of a CSV row; a wrong column count is a bad row."""
    if len(row) != len(names):
        raise BadRow(f"expected {len(names)} columns, got {len(row)}")
    return dict(zip(names, row, strict=True))


def json_document(path: Path) -> tuple[Any, dict[str, int]]:
    """A whole JSON file plus the line of each object key, so a bad record can be reported at its key's line."""
    text = _decode(path, path.read_bytes())
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise MalformedRowError(path, error.lineno, f"invalid JSON ({error.msg})") from None
    lines: dict[str, int] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if match := _KEY.match(line):
            lines.setdefault(match.group(1), number)
    return value, lines


def field(record: Any, key: str, kind: type | tuple[type, ...] = str) -> Any:
    """``record[key]`` checked against ``kind``; missing keys and wrong types are bad rows."""
    if not isinstance(record, dict):
        raise BadRow(f"expected an object, got {type(record).__name__}")
    if key not in record:
        raise BadRow(f"missing field '{key}'")
    value = record[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise BadRow(f"field '{key}' must be {expected}, got {type(value).__name__}")
    return value


def str_list(record: Any, key: str) -> list[str]:
    values = field(record, key, list)
    if not all(isinstance(v, str) for v in values):
        raise BadRow(f"field '{key}' must be a list of strings")
    return values


def choice(value: str, allowed: Sequence[str] | dict[str, Any], what: str) -> str:
    if value not in allowed:
        raise BadRow(f"unknown {what} '{value}' (expected one of {', '.join(allowed)})")
    return value
