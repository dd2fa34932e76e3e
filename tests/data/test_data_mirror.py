"""The real data mirror (../shared/data beside the repo): record counts from each PROVENANCE.md, and checksums.

These read local files only (a few MB each) and run by default: CI has the mirror, so a missing mirror is a failure,
not a skip.
"""

from __future__ import annotations

import pytest

from suite.data import get_spec, list_datasets, load_dataset, resolve_dataset, verify_dataset
from suite.data.loaders import load_bddx, load_semeval
from suite.data.registry import REPO_ROOT

MIRROR = REPO_ROOT.parent / "shared" / "data"


def test_mirror_exists():
    assert MIRROR.is_dir(), f"no data mirror at {MIRROR}"


@pytest.mark.parametrize("name", [n for n in list_datasets() if get_spec(n).in_mirror])
def test_mirror_files_match_their_sha256(name: str):
    report = verify_dataset(name, MIRROR)
    assert report and all(check.ok for check in report), [c for c in report if not c.ok]
    assert all(check.status == "ok" for check in report), "the mirror holds every listed file"


def test_semeval_counts_per_corpus_and_split():
    root = resolve_dataset("semeval2013-sra", MIRROR)
    assert load_semeval(root, corpus="sciEntsBank").counts() == {
        "train": 4969,
        "unseen_answers": 540,
        "unseen_questions": 733,
        "unseen_domains": 4562,
    }
    beetle = load_semeval(root, corpus="beetle")
    assert beetle.counts() == {"train": 3941, "unseen_answers": 439, "unseen_questions": 819}
    both = load_semeval(root)
    labels = [r["label"] for split in both.values() for r in split]
    assert (labels.count(1), labels.count(0)) == (6644, 9359)
    assert len(verify_dataset("semeval2013-sra", MIRROR)) == 4 + 434  # listed files + XML manifest entries


def test_gsm8k_counts_and_model_solutions():
    splits = load_dataset("gsm8k", MIRROR)
    assert splits.counts() == {"train": 7473, "test": 1319, "model_solutions": 5276}
    test_answers = {r["id"]: r["answer"] for r in splits["test"]}
    # example_model_solutions follows test.jsonl line by line; its ground truth agrees with the '#### ' answer.
    assert all(s["reference_answer"] == test_answers[s["problem_id"]] for s in splits["model_solutions"])


def test_pubmedqa_counts_and_labels():
    splits = load_dataset("pubmedqa-pqal", MIRROR)
    assert splits.counts() == {"train": 500, "test": 500}
    labels = [r["label"] for split in splits.values() for r in split]
    assert [labels.count(k) for k in ("yes", "no", "maybe")] == [552, 338, 110]


def test_clinical_tables_counts():
    symptoms = load_dataset("symptom2disease", MIRROR)["all"]
    assert len(symptoms) == 1200 and len({r["label"] for r in symptoms}) == 24
    assert len(symptoms) - len({r["text"] for r in symptoms}) == 47
    notes = load_dataset("mtsamples", MIRROR)["all"]
    assert len(notes) == 500 and len({n["specialty"] for n in notes}) == 35
    assert sum(n["specialty"] == "Surgery" for n in notes) == 130  # leading spaces stripped
    reports = load_dataset("iu-xray-reports", MIRROR)["all"]
    assert len(reports) == 3851 and sum(bool(r["impression"]) for r in reports) == 3820
    assert sum(bool(r["findings"]) for r in reports) == 3337
    views = [p["projection"] for r in reports for p in r["projections"]]
    assert (views.count("Frontal"), views.count("Lateral")) == (3818, 3648)


def test_bddx_counts_and_rebuild_from_original_matches_flat_file(tmp_path):
    flat = load_dataset("bdd-x", MIRROR)
    assert flat.counts() == {"train": 21153, "val": 2514, "test": 2856, "unassigned": 16}
    folder = MIRROR / get_spec("bdd-x").folder
    for name in ("BDD-X-Annotations_v1.csv", "train.txt", "val.txt", "test.txt"):  # link, never copy
        (tmp_path / name).symlink_to(folder / name)
    assert load_bddx(tmp_path) == flat
