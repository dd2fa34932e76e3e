"""Radiology data: findings -> impression pairs from the IU X-ray mirror, split with no findings text in two splits."""

from __future__ import annotations

from domains.radiology.data import load_reports, most_common_impression, normalise, split_of, split_reports


def test_reports_with_both_sections_are_split_by_findings_text_with_no_leak():
    reports = load_reports()
    assert len(reports) == 3331  # of 3,851: the reports that have both a findings and an impression section
    splits = split_reports(reports, dev=0.1, test=0.2)
    assert sum(len(s) for s in splits.values()) == len(reports)
    texts = {name: {normalise(r.findings) for r in s} for name, s in splits.items()}
    assert (
        not texts["train"] & texts["test"] and not texts["train"] & texts["dev"] and not texts["dev"] & texts["test"]
    )
    assert 0.15 < len(splits["test"]) / len(reports) < 0.25 and 0.06 < len(splits["dev"]) / len(reports) < 0.14
    normal = sum(r.normal for r in reports) / len(reports)
    assert 0.3 < normal < 0.5  # the Open-i problem list says "normal" for about a third of them


def test_the_split_is_stable_and_ignores_case_and_spacing():
    assert split_of("The lungs are clear.", 0.1, 0.2) == split_of("  the LUNGS are   clear. ", 0.1, 0.2)
    assert split_of("x", 0.0, 1.0) == "test" and split_of("x", 0.0, 0.0) == "train"


def test_the_most_common_impression_baseline():
    reports = load_reports()
    assert most_common_impression(split_reports(reports)["train"]).startswith("No acute cardiopulmonary")
