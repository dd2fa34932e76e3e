"""Selection on a user's table (CSV / TSV / JSON Lines): ``distill data select METHOD FILE --column C --out DIR``
writes ``DIR/selected.jsonl`` (the kept rows, all their columns) and ``DIR/selection.json`` (what was removed and
why, the method, its parameters and the checksum of the column it read), which a recipe can apply to the same file
(the education pack's ``data.selection``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from suite.errors import ConfigError, MalformedRowError
from suite.selection.record import Selection

METHODS = ("minhash", "semdedup", "kcenter", "rules")


def column_texts(path: Path, column: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Every row of the table and its ``column`` as text; a row without the column names its line."""
    from suite.data.rows import table_rows

    rows, texts = [], []
    for line, record in table_rows(path):
        if column not in record:
            raise MalformedRowError(path, line, f"no column '{column}' (columns: {', '.join(record)})")
        rows.append(record)
        texts.append("" if record[column] is None else str(record[column]).strip())  # as the packs read it
    return rows, texts


def select_file(method: str, path: str | Path, column: str, out: str | Path, **params: Any) -> Selection:
    if method not in METHODS:
        raise ConfigError(f"method: '{method}' is not one of {', '.join(METHODS)}")
    path, out = Path(path), Path(out)
    rows, texts = column_texts(path, column)
    selection = _select(method, texts, params)
    selection.params |= {"file": path.name, "column": column}
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "selected.jsonl", "w") as handle:
        for i in selection.kept:
            handle.write(json.dumps(rows[i]) + "\n")
    selection.write(out / "selection.json")
    print(f"{method}: kept {len(selection.kept):,} of {selection.size:,} rows of {path.name} "
          f"({len(selection.removed):,} removed); {out / 'selected.jsonl'}, {out / 'selection.json'}")  # fmt: skip
    return selection


def _select(method: str, texts: list[str], params: dict[str, Any]) -> Selection:
    """``params``: ``threshold`` (minhash: Jaccard; semdedup: cosine) and ``budget`` (kcenter: share or count)."""
    from suite.selection import kcenter_greedy, minhash_dedup, rule_filter, semdedup, sentence_embeddings

    if method == "minhash":
        return minhash_dedup(texts, threshold=params.get("threshold", 0.8))
    if method == "rules":
        return rule_filter(texts)
    embeddings = sentence_embeddings(texts)
    if method == "semdedup":
        clusters = max(1, min(100, len(texts) // 50))  # ~50 texts per cluster, as SemDeDup's clusters are small
        return semdedup(embeddings, threshold=params.get("threshold", 0.95), clusters=clusters, texts=texts)
    return kcenter_greedy(embeddings, params.get("budget") or 0.25, texts=texts)


def apply_selection(selection_path: str | Path, texts: list[str]) -> list[int]:
    """The kept ids of a saved selection, after checking it was made on these very texts."""
    from suite.selection.record import texts_checksum

    selection = Selection.read(selection_path)
    if selection.source_sha256 != texts_checksum(texts):
        raise ConfigError(f"data.selection: {selection_path} was made on other data than this file's column "
                          f"'{selection.params.get('column', '?')}' (checksums differ); select again")  # fmt: skip
    return selection.kept
