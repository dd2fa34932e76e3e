"""Loaders on small fixtures in the real file formats; malformed rows raise with file:line, or are skipped+counted."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from suite.data import get_spec, list_datasets, load_dataset
from suite.data.loaders import load_bddx, load_semeval
from suite.errors import ConfigError, MalformedRowError

FIXTURES = Path(__file__).parent / "fixtures"


def _load(name: str, root: Path | None = None, **kwargs):
    return load_dataset(name, root if root is not None else FIXTURES / get_spec(name).folder, **kwargs)


def test_semeval_joins_questions_and_maps_labels():
    splits = _load("semeval2013-sra")
    assert splits.counts() == {"train": 3, "unseen_domains": 1}
    assert splits.skipped == {} and splits.n_skipped == 0
    assert splits["train"][0] == {
        "id": "PL.1a.1.1",
        "corpus": "sciEntsBank",
        "question_id": "PL_1a",
        "question": "Why does the toy boat float?",
        "reference_answers": ["It is less dense than water."],
        "student_answer": "it is lighter than the water it pushes away",
        "label": 1,
    }
    assert [r["label"] for r in splits["train"]] == [1, 0, 0]
    assert splits["unseen_domains"][0]["reference_answers"] == [
        "Gravity pulls it toward the earth.",
        "The earth attracts the ball.",
    ]
    beetle = load_semeval(FIXTURES / "semeval2013_task7_sra_2way", corpus="beetle")
    assert beetle.counts() == {"train": 1} and beetle["train"][0]["corpus"] == "beetle"
    with pytest.raises(ConfigError, match="corpus"):
        load_semeval(FIXTURES / "semeval2013_task7_sra_2way", corpus="physics")


def test_gsm8k_parses_final_answer_and_flattens_model_solutions():
    splits = _load("gsm8k")
    assert splits.counts() == {"train": 2, "test": 1, "model_solutions": 4}
    assert splits["train"][0] == {
        "id": "train-0",
        "question": "Ana has 3 apples and buys 4 more. How many apples does she have?",
        "rationale": "Ana has 3 + 4 = <<3+4=7>>7 apples.",
        "answer": "7",
    }
    assert splits["train"][1]["answer"] == "1200"  # commas removed, as GSM8K's own extract_answer does
    solutions = splits["model_solutions"]
    assert [s["model"] for s in solutions] == [
        "6b_finetuning",
        "6b_verification",
        "175b_finetuning",
        "175b_verification",
    ]
    assert [s["is_correct"] for s in solutions] == [True, False, True, False]
    assert [s["predicted_answer"] for s in solutions] == ["15", "8", "15", None]
    assert {s["reference_answer"] for s in solutions} == {"15"}
    assert {s["problem_id"] for s in solutions} == {"test-0"}


def test_pubmedqa_test_ids_versus_train_pool():
    splits = _load("pubmedqa-pqal")
    assert [r["id"] for r in splits["test"]] == ["1002", "1003"]
    assert [r["id"] for r in splits["train"]] == ["1001", "1004"]
    first = splits["train"][0]
    assert (first["label"], first["long_answer"], first["year"]) == ("no", "Conclusion: no.", "2001")
    assert first["contexts"] == ["Background for: Does tea help sleep?", "Results were mixed."]
    assert splits["test"][1]["year"] is None


def test_symptom2disease_mtsamples_and_iu_xray():
    symptoms = _load("symptom2disease")
    assert symptoms.counts() == {"all": 3}
    assert symptoms["all"][2] == {
        "id": 2,
        "label": "allergy",
        "text": "My eyes itch every spring, especially outdoors.",
    }
    notes = _load("mtsamples")["all"]
    assert [n["specialty"] for n in notes] == ["Orthopedic", "Neurology"]
    assert notes[0]["title"] == "Ankle Sprain - Follow-up" and notes[1]["keywords"] == ""
    assert notes[0]["text"].startswith("HISTORY:,") and "\n" in notes[0]["text"]
    reports = _load("iu-xray-reports")["all"]
    assert [r["uid"] for r in reports] == [1, 2]
    assert reports[0]["projections"] == [
        {"filename": "1_IM-0001-1.dcm.png", "projection": "Frontal"},
        {"filename": "1_IM-0001-2.dcm.png", "projection": "Lateral"},
    ]
    assert (reports[1]["findings"], reports[1]["impression"]) == ("", "Mild XXXX enlargement of the heart.")
    assert reports[1]["mesh"] == "Cardiomegaly/mild"


def test_radlabels_reads_reports_and_labels_from_the_wheel_without_installing_it(tmp_path: Path):
    reports = _load("radlabels-synthetic")["all"]
    assert [r["id"] for r in reports] == ["synth_0001", "synth_0002"]
    assert reports[0]["labels"] == {"pleural_effusion": "definitely present", "pneumothorax": "definitely absent"}
    assert reports[1]["text"].startswith("IMPRESSION: Possible mild cardiomegaly")
    import json
    import zipfile

    wheel = tmp_path / "radlabels-0.2.0-py3-none-any.whl"
    with zipfile.ZipFile(FIXTURES / "radlabels_synthetic" / wheel.name) as source, zipfile.ZipFile(wheel, "w") as out:
        for item in source.namelist():
            data = source.read(item)
            if item.endswith("synthetic_labels.json"):
                data = json.dumps({"synth_0001": {"cardiomegaly": "probably"}}).encode()
            out.writestr(item, data)
    with pytest.raises(MalformedRowError, match="unknown label status"):
        _load("radlabels-synthetic", tmp_path)


def test_bddx_flat_file_and_rebuild_from_original_agree(dataset_copy: Callable[[str], Path]):
    flat = _load("bdd-x")
    assert flat.counts() == {"train": 2, "val": 2, "test": 0, "unassigned": 1}
    assert flat["train"][1] == {
        "video_id": "aaaa0001-bbbb0001",
        "segment": 2,
        "start_s": 9.0,
        "end_s": None,
        "action": "The car slows down",
        "justification": "because a light turns red.",
        "csv_line": 2,
    }
    assert [r["segment"] for r in flat["val"]] == [1, 3]  # the blank segment 2 is not a record
    folder = dataset_copy("bdd_x_explanations")
    (folder / "bddx_segments_flat.csv").unlink()
    assert load_bddx(folder) == flat


def _append(text: str) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        with open(path, "a", encoding="utf-8", newline="") as handle:
            handle.write(text)

    return mutate


def _edit_json(key: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        document = json.loads(path.read_text())
        change(document[key] if key else document)
        path.write_text(json.dumps(document, indent=4))

    return mutate


def _answer(**change) -> str:
    row = {"corpus": "sciEntsBank", "split": "train", "question_id": "PL_1a", "student_answer_id": "X.1"}
    row |= {"student_answer": "it floats", "label_2way": "correct"} | change
    return json.dumps({k: v for k, v in row.items() if v is not None}) + "\n"


def _solutions(**change) -> str:
    attempt = {"is_correct": True, "solution": "A: 1"}
    models = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")
    return json.dumps({"question": "q", "ground_truth": "A: 1", **dict.fromkeys(models, attempt), **change}) + "\n"


SEMEVAL, SCI = "semeval2013_task7_sra_2way", "student_answers_sciEntsBank.jsonl"
BDD_ROW = "5,x-y,train,1,{start},3,The car stops,because a light is red.\r\n"


@dataclass(frozen=True)
class Case:
    """A fixture folder with one row broken: where the error must point and how many records skipping it costs."""

    folder: str
    file: str
    mutate: Callable[[Path], None]
    line: int | str  # 1-based line, or the text that starts the line of a JSON record's key
    reason: str
    lost: int = 0


MALFORMED = {
    "semeval-invalid-json": Case(SEMEVAL, SCI, _append("{oops\n"), 4, "invalid JSON"),
    "semeval-missing-field": Case(
        SEMEVAL, SCI, _append(_answer(student_answer=None)), 4, "missing field 'student_answer'"
    ),
    "semeval-wrong-type": Case(
        SEMEVAL, SCI, _append(_answer(student_answer=5)), 4, "'student_answer' must be str, got int"
    ),
    "semeval-unknown-label": Case(SEMEVAL, SCI, _append(_answer(label_2way="partial")), 4, "unknown label 'partial'"),
    "semeval-unknown-question": Case(SEMEVAL, SCI, _append(_answer(question_id="ZZ_9")), 4, "question 'ZZ_9'"),
    "gsm8k-no-final-answer": Case(
        "gsm8k", "train.jsonl", _append(json.dumps({"question": "q", "answer": "no"}) + "\n"), 3, "no final '#### '"
    ),
    "gsm8k-bool-type": Case(
        "gsm8k",
        "example_model_solutions.jsonl",
        _append(_solutions(**{"6b_finetuning": {"is_correct": "yes", "solution": "A: 1"}})),
        2,
        "'is_correct' must be bool",
    ),
    "pubmedqa-unknown-label": Case(
        "pubmedqa_pqal",
        "ori_pqal.json",
        _edit_json("1004", lambda r: r.update(final_decision="perhaps")),
        '"1004"',
        "unknown label 'perhaps'",
        lost=1,
    ),
    "pubmedqa-missing-field": Case(
        "pubmedqa_pqal",
        "ori_pqal.json",
        _edit_json("1001", lambda r: r.pop("QUESTION")),
        '"1001"',
        "'QUESTION'",
        lost=1,
    ),
    "pubmedqa-unknown-pmid": Case(
        "pubmedqa_pqal",
        "test_ground_truth.json",
        _edit_json("", lambda d: d.update({"9999": "yes"})),
        '"9999"',
        "9999",
    ),
    "symptom2disease-columns": Case("symptom2disease", "Symptom2Disease.csv", _append("3,Acne\n"), 5, "got 2"),
    "symptom2disease-index": Case(
        "symptom2disease", "Symptom2Disease.csv", _append("x,Acne,Spots.\n"), 5, "row index must be an integer"
    ),
    "mtsamples-multiline-record": Case(
        "mtsamples_subset500", "mtsamples_sample.csv", _append(' d, Urology,"t\r\nspans two"\r\n'), 5, "got 3"
    ),
    "iu-unknown-projection": Case(
        "iu_xray_openi_reports", "indiana_projections.csv", _append("2,2_b.png,Oblique\n"), 5, "projection 'Oblique'"
    ),
    "iu-orphan-projection": Case(
        "iu_xray_openi_reports", "indiana_projections.csv", _append("7,7_a.png,Frontal\n"), 5, "uid 7 has no report"
    ),
    "bddx-flat-split": Case(
        "bdd_x_explanations",
        "bddx_segments_flat.csv",
        _append(BDD_ROW.replace("train", "dev").format(start=1)),
        7,
        "unknown split 'dev'",
    ),
    "bddx-flat-seconds": Case(
        "bdd_x_explanations", "bddx_segments_flat.csv", _append(BDD_ROW.format(start="soon")), 7, "start must be a"
    ),
}


def _break(case: Case, dataset_copy: Callable[[str], Path]) -> tuple[Path, Path, int]:
    root = dataset_copy(case.folder)
    path = root / case.file
    case.mutate(path)
    line = case.line
    if isinstance(line, str):  # a JSON record is reported at the line of its key
        lines = path.read_text().split("\n")
        line = next(number for number, text in enumerate(lines, start=1) if text.strip().startswith(case.line))
    return root, path, line


def _dataset_name(folder: str) -> str:
    return {get_spec(name).folder: name for name in list_datasets()}[folder]


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_row_names_file_and_line(case: str, dataset_copy: Callable[[str], Path]):
    root, path, line = _break(MALFORMED[case], dataset_copy)
    with pytest.raises(MalformedRowError, match=MALFORMED[case].reason) as raised:
        _load(_dataset_name(MALFORMED[case].folder), root)
    assert (raised.value.path, raised.value.line) == (str(path), line)
    assert str(raised.value).startswith(f"{path}:{line}: malformed row: ")


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_skip_bad_rows_counts_and_warns(
    case: str, dataset_copy: Callable[[str], Path], caplog: pytest.LogCaptureFixture
):
    name = _dataset_name(MALFORMED[case].folder)
    good = sum(_load(name).counts().values())
    root, path, _ = _break(MALFORMED[case], dataset_copy)
    with caplog.at_level(logging.WARNING, logger="suite.data.rows"):
        splits = _load(name, root, skip_bad_rows=True)
    assert splits.skipped == {str(path): 1} and splits.n_skipped == 1
    assert sum(splits.counts().values()) == good - MALFORMED[case].lost
    assert f"skipped 1 malformed rows in {path}" in caplog.text


def test_bddx_original_csv_wrong_column_count(dataset_copy: Callable[[str], Path]):
    root = dataset_copy("bdd_x_explanations")
    (root / "bddx_segments_flat.csv").unlink()
    _append("https://example.invalid/videos/train/zzzz.mov,1,2,The car stops\r\n")(root / "BDD-X-Annotations_v1.csv")
    with pytest.raises(MalformedRowError, match=r"BDD-X-Annotations_v1.csv:6: malformed row: expected 61 columns"):
        load_bddx(root)
    assert load_bddx(root, skip_bad_rows=True).n_skipped == 1


def test_bad_header_is_not_skippable(dataset_copy: Callable[[str], Path]):
    root = dataset_copy("symptom2disease")
    path = root / "Symptom2Disease.csv"
    path.write_text(path.read_text().replace(",label,text", "label,text", 1))
    with pytest.raises(MalformedRowError, match="Symptom2Disease.csv:1: malformed row: header"):
        _load("symptom2disease", root, skip_bad_rows=True)
