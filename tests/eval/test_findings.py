"""The negation-aware finding extractor (suite.eval.findings) on hand-written sentences, the faithfulness rates built
on it, and the radiology vocabulary's validation against radlabels' labelled synthetic reports."""

from __future__ import annotations

import pytest

from domains.radiology.findings import chest_extractor, report_body
from suite.eval.findings import NEGATIVE, POSITIVE, UNCERTAIN, FindingExtractor, faithfulness, per_finding_scores

EXTRACT = chest_extractor()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Small left pleural effusion.", {"pleural_effusion": POSITIVE}),
        ("No pneumothorax, pleural effusion, or focal consolidation.",
         {"pneumothorax": NEGATIVE, "pleural_effusion": NEGATIVE, "consolidation": NEGATIVE}),
        ("There is no pneumothorax but there is a small effusion.",
         {"pneumothorax": NEGATIVE, "pleural_effusion": POSITIVE}),
        ("Pneumothorax is not seen.", {"pneumothorax": NEGATIVE}),
        ("The previously seen effusion has resolved.", {"pleural_effusion": NEGATIVE}),
        ("Bibasilar opacities may reflect atelectasis.", {"lung_opacity": POSITIVE, "atelectasis": UNCERTAIN}),
        ("Pneumonia cannot be excluded.", {"pneumonia": UNCERTAIN}),
        ("Evaluate for pneumothorax.", {"pneumothorax": UNCERTAIN}),
        ("The heart is mildly enlarged.", {"cardiomegaly": POSITIVE}),
        ("Heart size is normal. Lungs are clear.", {}),
        ("No effusion on the left. Small effusion on the right.", {"pleural_effusion": POSITIVE}),  # most assertive
        ("Right-sided pleural-effusion.", {"pleural_effusion": POSITIVE}),  # hyphens match spaces
        ("Noneffusion words and cardiomegalyx do not match.", {}),  # whole words only
    ],
)  # fmt: skip
def test_sentences_get_the_labels_a_radiologist_reads(text: str, expected: dict) -> None:
    assert EXTRACT(text) == expected


def test_history_paragraphs_are_dropped_from_a_report_body() -> None:
    report = "INDICATION: eval for pneumonia\nrule out effusion\n\nFINDINGS: Heart size normal.\nNo pneumothorax.\n"
    body = report_body(report)
    assert "pneumonia" not in body and "effusion" not in body and "No pneumothorax." in body


def test_faithfulness_counts_hallucinated_and_missing_findings() -> None:
    sources = ["Small right pleural effusion. No pneumothorax.", "Cardiomegaly. Mild pulmonary edema."]
    outputs = ["Right effusion and a small pneumothorax.", "Cardiomegaly."]
    rates = faithfulness(EXTRACT, sources, outputs)
    # asserted: {effusion, pneumothorax} + {cardiomegaly}; unsupported: pneumothorax (negated in its source)
    assert rates["hallucination_rate"] == pytest.approx(1 / 3)
    # source positives: {effusion} + {cardiomegaly, edema}; missing: edema
    assert rates["missing_rate"] == pytest.approx(1 / 3)
    assert rates["outputs_with_hallucination"] == 0.5
    assert faithfulness(EXTRACT, sources, sources) == {
        "hallucination_rate": 0.0, "missing_rate": 0.0, "outputs_with_hallucination": 0.0,
    }  # fmt: skip
    with pytest.raises(ValueError, match="2 sources but 1 outputs"):
        faithfulness(EXTRACT, sources, outputs[:1])


def test_per_finding_scores_and_an_empty_vocabulary_entry() -> None:
    scores = per_finding_scores([{"a"}, {"a", "b"}, set()], [{"a"}, set(), {"a"}], ["a", "b"])
    assert scores["a"] == {"precision": 0.5, "recall": 0.5, "support": 2}
    assert scores["b"]["precision"] == 0.0 and scores["b"]["support"] == 0
    with pytest.raises(ValueError, match="at least one phrase"):
        FindingExtractor({"a": []})


def test_the_chest_vocabulary_agrees_with_radlabels_on_its_synthetic_reports() -> None:
    """The validation the radiology report cites (python -m domains.radiology.validate_findings): a floor a
    regression in the cues or the vocabulary would break (measured 0.90 precision / 0.87 recall, lenient)."""
    from domains.radiology.validate_findings import validate
    from suite.data import load_dataset

    result = validate(load_dataset("radlabels-synthetic")["all"])
    assert result["reports"] == 1000
    assert result["lenient"]["micro_precision"] > 0.85 and result["lenient"]["micro_recall"] > 0.8
    assert result["absent_not_called_positive"] > 0.95
