"""Clinical data: splits that keep groups apart, nested budgets, deterministic abbreviations, stated answers."""

from __future__ import annotations

import random

import pytest

from domains.clinical.data import PUBMEDQA_LABELS, load_task
from domains.clinical.pipeline import clinical_abbreviations
from suite.rationale_pack import budget_indices, stated_answer, with_stated_answer


@pytest.mark.parametrize("task", ["pubmedqa", "symptom2disease", "mtsamples"])
def test_splits_are_disjoint_by_group_and_labels_are_in_range(task):
    data = load_task(task)
    groups = {name: {e.group for e in split} for name, split in data.splits.items()}
    assert not groups["train"] & groups["test"] and not groups["train"] & groups["dev"]
    assert not groups["dev"] & groups["test"]
    for split in data.splits.values():
        assert split and all(0 <= e.label < len(data.labels) for e in split)


def test_pubmedqa_keeps_the_official_test_set_and_gold_rationales():
    data = load_task("pubmedqa")
    assert len(data.splits["test"]) == 500 and data.labels == PUBMEDQA_LABELS
    assert all(e.rationale for split in data.splits.values() for e in split)


def test_budgets_nest_and_do_not_depend_on_order():
    train = load_task("symptom2disease").splits["train"]
    small, half = budget_indices(train, 0.1), budget_indices(train, 0.5)
    assert set(small) < set(half) and len(half) == round(0.5 * len(train))
    shuffled = train[:]
    random.Random(1).shuffle(shuffled)
    assert sorted(shuffled[i].id for i in budget_indices(shuffled, 0.1)) == sorted(train[i].id for i in small)


def test_clinical_abbreviations_rewrite_long_forms_only():
    text = "Patient with shortness of breath and chest pain; history of hypertension. Withdrawn."
    assert clinical_abbreviations(text, random.Random(0)) == "pt w/ SOB and CP; hx of HTN. Withdrawn."


def test_stated_answers_are_read_back_from_both_rationale_forms():
    labels = ["Psoriasis", "Common Cold"]
    assert stated_answer("the case mentions skin and peeling, pointing to Psoriasis .", labels) == "Psoriasis"
    assert stated_answer(with_stated_answer("Viral.", "Common Cold"), labels) == "Common Cold"
    assert stated_answer("the case mentions skin, pointing to Eczema .", labels) is None
    assert stated_answer("no answer here", labels) is None
