"""MinHash-LSH near-duplicate removal (suite.selection): the first of each group is kept, the decision follows the
exact Jaccard, every removal says why and of what, the selection round-trips, and planted near-duplicates of real
questions are found (the benchmark's corpus, smaller)."""

from __future__ import annotations

import pytest

from suite.selection import Selection, minhash_dedup, word_shingles
from suite.selection.record import texts_checksum

BASE = "a farmer has twelve cows and buys seven more cows at the market on monday how many cows does he have now"


def test_word_shingles_are_lower_cased_word_trigrams():
    assert word_shingles("The cat sat. On the mat", 3) == {b"the cat sat", b"cat sat on", b"sat on the", b"on the mat"}
    assert word_shingles("two words", 3) == {b"two words"}


def test_the_first_of_a_group_is_kept_and_the_rest_say_of_what():
    texts = [BASE, "a baker sells forty loaves of bread every day and half of them before noon", BASE + " please",
             BASE.replace(" now", " today")]  # fmt: skip
    selection = minhash_dedup(texts, threshold=0.8)
    assert selection.kept == [0, 1] and selection.duplicate_of == {2: 0, 3: 0}
    assert selection.removed[2].startswith("near-duplicate of 0 (Jaccard 0.9")


def test_the_threshold_decides_on_the_exact_jaccard():
    words = BASE.split()
    copy = " ".join(w if i % 4 else "x" for i, w in enumerate(words))  # about 60% of trigrams changed
    exact = len(word_shingles(BASE) & word_shingles(copy)) / len(word_shingles(BASE) | word_shingles(copy))
    assert exact < 0.5
    assert minhash_dedup([BASE, copy], threshold=0.8).removed == {}
    assert minhash_dedup([BASE, copy], threshold=exact - 0.01, candidate_margin=0.0).kept == [0]
    with pytest.raises(ValueError, match="threshold"):
        minhash_dedup([BASE], threshold=0.0)


def test_a_selection_round_trips_and_names_its_input(tmp_path):
    selection = minhash_dedup([BASE, BASE, "something else entirely here"], threshold=0.9)
    again = Selection.read(selection.write(tmp_path / "sel.json"))
    assert again == selection and again.size == 3
    assert selection.source_sha256 == texts_checksum([BASE, BASE, "something else entirely here"])
    assert texts_checksum(["ab", "c"]) != texts_checksum(["a", "bc"])
    with pytest.raises(ValueError, match="both kept and removed"):
        Selection("x", {}, "", [0, 1], {1: "why"})


def test_planted_near_duplicates_of_real_questions_are_found():
    from benchmarks.dedup import planted_corpus
    from suite.data import load_dataset

    questions = [r["question"] for r in load_dataset("gsm8k")["train"]]
    texts, planted = planted_corpus(questions, 300, seed=1)
    selection = minhash_dedup(texts, threshold=0.8)
    found = {frozenset(pair) for pair in selection.duplicate_of.items()}
    above = [p for p in planted if p[2] >= 0.8]
    assert len(above) >= 20 and sum(frozenset(p[:2]) in found for p in above) / len(above) >= 0.95
    below = [p for p in planted if p[2] < 0.75]
    assert not any(frozenset(p[:2]) in found for p in below)


def test_the_cli_selects_rows_of_a_table_and_the_education_pack_applies_the_selection(tmp_path):
    import json
    from pathlib import Path

    from domains.education.own_data import OwnData, load_own
    from suite.cli import main
    from suite.errors import ConfigError

    fixture = Path(__file__).parents[1] / "fixtures" / "own_answers.csv"
    table = tmp_path / "answers.csv"
    text = fixture.read_text()
    table.write_text(text + "\n".join(text.splitlines()[1:4]) + "\n")  # three rows repeated at the end
    assert main(["data", "select", "minhash", str(table), "--column", "answer", "--out", str(tmp_path / "sel")]) == 0
    selection = json.loads((tmp_path / "sel" / "selection.json").read_text())
    assert {96, 97, 98} <= {int(i) for i in selection["removed"]}  # the repeats, at least
    kept = [json.loads(line) for line in (tmp_path / "sel" / "selected.jsonl").read_text().splitlines()]
    assert len(kept) == len(selection["kept"]) and set(kept[0]) == {"item", "question", "reference", "answer",
                                                                    "grade", "points"}  # fmt: skip
    spec = OwnData(path=str(table), label="grade", group="item", selection=str(tmp_path / "sel" / "selection.json"))
    _, splits = load_own(spec)
    assert sum(len(v) for v in splits.values()) == len(selection["kept"])
    assert main(["data", "select", "minhash", str(table), "--column", "question", "--out", str(tmp_path / "q")]) == 0
    with pytest.raises(ConfigError, match="made on other data"):
        load_own(OwnData(path=str(table), label="grade", selection=str(tmp_path / "q" / "selection.json")))


@pytest.mark.parametrize("method", ["semdedup", "kcenter", "rules"])
def test_every_table_selector_of_the_cli_writes_its_verdict_and_the_kept_rows(tmp_path, method):
    import json
    from pathlib import Path

    from suite.cli import main

    fixture = Path(__file__).parents[1] / "fixtures" / "own_answers.csv"
    table = tmp_path / "answers.csv"
    text = fixture.read_text()
    table.write_text(text + "\n".join(text.splitlines()[1:4]) + "\n")  # three rows repeated at the end
    assert main(["data", "select", method, str(table), "--column", "answer", "--out", str(tmp_path / "s")]) == 0
    selection = json.loads((tmp_path / "s" / "selection.json").read_text())
    kept = (tmp_path / "s" / "selected.jsonl").read_text().splitlines()
    assert selection["method"] == method and len(kept) == len(selection["kept"])
    assert len(selection["kept"]) + len(selection["removed"]) == 99
    removed = {int(i) for i in selection["removed"]}
    if method == "semdedup":  # exact repeats are semantic duplicates too: one of each pair goes
        assert all((i in removed) != (i + 96 in removed) for i in range(3))
    if method == "kcenter":
        assert len(selection["kept"]) == round(0.25 * 99)
