"""One loader per registered dataset: ``loader(root, skip_bad_rows=False, **options) -> Splits``.

Records are plain dicts grouped by split. Datasets without an official split return everything under ``"all"``
and leave splitting to the caller (Symptom2Disease holds 47 exact duplicate texts: split it by text group).
Malformed rows raise :class:`~suite.errors.MalformedRowError` naming the file and 1-based line (for CSV, the line
where the record starts) or, with ``skip_bad_rows=True``, are skipped and counted in ``Splits.skipped``
(see :mod:`suite.data.rows`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from suite.config import check
from suite.data.rows import (
    BadRow,
    RowPolicy,
    Splits,
    choice,
    columns,
    csv_rows,
    field,
    json_document,
    json_object,
    jsonl_rows,
    str_list,
)
from suite.errors import MalformedRowError

# --- SemEval-2013 Task 7 (SciEntsBank + Beetle), 2-way ---------------------------------------------------------

SEMEVAL_CORPORA = ("sciEntsBank", "beetle")
SEMEVAL_SPLITS = {
    "train": "train",
    "test-unseen-answers": "unseen_answers",
    "test-unseen-questions": "unseen_questions",
    "test-unseen-domains": "unseen_domains",
}
SEMEVAL_LABELS = {"incorrect": 0, "correct": 1}


def load_semeval(root: Path, corpus: str = "both", skip_bad_rows: bool = False) -> Splits:
    """Student answers joined with their question and reference answers; ``label`` 0 = incorrect, 1 = correct.

    Splits: train / unseen_answers / unseen_questions / unseen_domains (SciEntsBank only). Reads the derived
    ``questions.jsonl`` + ``student_answers_<corpus>.jsonl`` (a mirror is needed; see the dataset spec).
    """
    check(corpus in (*SEMEVAL_CORPORA, "both"), "corpus", f"must be sciEntsBank, beetle or both; got '{corpus}'")
    corpora = SEMEVAL_CORPORA if corpus == "both" else (corpus,)
    policy = RowPolicy(skip_bad_rows)
    questions: dict[tuple[str, str, str], dict] = {}
    path = Path(root) / "questions.jsonl"
    for line, raw in jsonl_rows(path):
        with policy.guard(path, line):
            row = json_object(raw)
            key = (
                field(row, "corpus"),
                choice(field(row, "split"), SEMEVAL_SPLITS, "split"),
                field(row, "question_id"),
            )
            references = [field(ref, "text") for ref in field(row, "reference_answers", list)]
            questions[key] = {"question": field(row, "question"), "reference_answers": references}
    splits: dict[str, list[dict]] = {name: [] for name in SEMEVAL_SPLITS.values()}
    for name in corpora:
        path = Path(root) / f"student_answers_{name}.jsonl"
        for line, raw in jsonl_rows(path):
            with policy.guard(path, line):
                row = json_object(raw)
                if field(row, "corpus") != name:
                    raise BadRow(f"corpus '{row['corpus']}' in the {name} file")
                split = choice(field(row, "split"), SEMEVAL_SPLITS, "split")
                key = (name, split, field(row, "question_id"))
                if key not in questions:
                    raise BadRow(f"question '{key[2]}' ({split}) is not in questions.jsonl")
                splits[SEMEVAL_SPLITS[split]].append(
                    {
                        "id": field(row, "student_answer_id"),
                        "corpus": name,
                        "question_id": key[2],
                        **questions[key],
                        "student_answer": field(row, "student_answer"),
                        "label": SEMEVAL_LABELS[choice(field(row, "label_2way"), SEMEVAL_LABELS, "label")],
                    }
                )
    return policy.finish({split: records for split, records in splits.items() if records})


# --- GSM8K -------------------------------------------------------------------------------------------------------

GSM8K_MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


def final_answer(text: str, marker: str) -> str | None:
    """The answer after the last ``marker`` at a line start, commas removed as in GSM8K's own ``extract_answer``."""
    found = re.findall(rf"^{re.escape(marker)}(.*)$", text, flags=re.MULTILINE)
    return found[-1].strip().replace(",", "") if found else None


def load_gsm8k(root: Path, skip_bad_rows: bool = False) -> Splits:
    """Splits train / test: ``question``, ``rationale`` (worked solution before ``#### ``, with its ``<<a=b>>``
    calculator annotations), ``answer`` (final answer). Split ``model_solutions``: one record per (test problem,
    GPT-3 model) from ``example_model_solutions.jsonl`` with the model's ``solution`` and its ``is_correct`` label
    (Cobbe et al. 2021, arXiv:2110.14168).
    """
    policy = RowPolicy(skip_bad_rows)
    splits: dict[str, list[dict]] = {"train": [], "test": [], "model_solutions": []}
    for split in ("train", "test"):
        path = Path(root) / f"{split}.jsonl"
        for line, raw in jsonl_rows(path):
            with policy.guard(path, line):
                row = json_object(raw)
                solution = field(row, "answer")
                answer = final_answer(solution, "#### ")
                if answer is None:
                    raise BadRow("answer has no final '#### ' line")
                rationale = solution[: solution.rfind("#### ")].strip()
                question = field(row, "question")
                splits[split].append(
                    {"id": f"{split}-{line - 1}", "question": question, "rationale": rationale, "answer": answer}
                )
    path = Path(root) / "example_model_solutions.jsonl"
    for line, raw in jsonl_rows(path):
        with policy.guard(path, line):
            splits["model_solutions"] += _model_solutions(json_object(raw), problem_id=f"test-{line - 1}")
    return policy.finish(splits)


def _model_solutions(row: dict, problem_id: str) -> list[dict]:
    question, reference = field(row, "question"), final_answer(field(row, "ground_truth"), "A: ")
    records = []
    for model in GSM8K_MODELS:
        attempt = field(row, model, dict)
        solution = field(attempt, "solution")
        records.append(
            {
                "id": f"{problem_id}-{model}",
                "problem_id": problem_id,
                "question": question,
                "model": model,
                "solution": solution,
                "predicted_answer": final_answer(solution, "A: "),
                "reference_answer": reference,
                "is_correct": field(attempt, "is_correct", bool),
            }
        )
    return records


# --- PubMedQA PQA-L ----------------------------------------------------------------------------------------------

PUBMEDQA_LABELS = ("yes", "no", "maybe")


def load_pubmedqa(root: Path, skip_bad_rows: bool = False) -> Splits:
    """Splits test (the official 500 PMIDs of ``test_ground_truth.json``) and train (the other 500, the official
    train/dev pool). ``label`` is yes/no/maybe; ``long_answer`` is the abstract's conclusion (a rationale).
    Jin et al. 2019, PubMedQA, EMNLP.
    """
    policy = RowPolicy(skip_bad_rows)
    path = Path(root) / "ori_pqal.json"
    document, lines = _json_mapping(path)
    records: dict[str, dict] = {}
    for pmid, row in document.items():
        with policy.guard(path, lines.get(pmid, 1)):
            records[pmid] = {
                "id": pmid,
                "question": field(row, "QUESTION"),
                "contexts": str_list(row, "CONTEXTS"),
                "context_labels": str_list(row, "LABELS"),
                "meshes": str_list(row, "MESHES"),
                "year": field(row, "YEAR", (str, type(None))) if "YEAR" in row else None,
                "long_answer": field(row, "LONG_ANSWER"),
                "label": choice(field(row, "final_decision"), PUBMEDQA_LABELS, "label"),
            }
    path = Path(root) / "test_ground_truth.json"
    truth, lines = _json_mapping(path)
    test_ids = set()
    for pmid, label in truth.items():
        with policy.guard(path, lines.get(pmid, 1)):
            if pmid not in records:
                raise BadRow(f"PMID {pmid} is not in ori_pqal.json")
            if label != records[pmid]["label"]:
                raise BadRow(f"label '{label}' disagrees with ori_pqal.json ('{records[pmid]['label']}')")
            test_ids.add(pmid)
    return policy.finish(
        {
            "train": [r for pmid, r in records.items() if pmid not in test_ids],
            "test": [r for pmid, r in records.items() if pmid in test_ids],
        }
    )


def _json_mapping(path: Path) -> tuple[dict, dict[str, int]]:
    document, lines = json_document(path)
    if not isinstance(document, dict):
        raise MalformedRowError(path, 1, f"expected a JSON object keyed by PMID, got {type(document).__name__}")
    return document, lines


# --- Symptom2Disease ---------------------------------------------------------------------------------------------


def load_symptom2disease(root: Path, skip_bad_rows: bool = False) -> Splits:
    """Split ``all``: ``id`` (the file's row index), ``label`` (one of 24 diagnoses, capitalisation as in the source),
    ``text`` (a first-person symptom description). No official split; 47 texts are exact duplicates of another row,
    so split by text group to keep duplicates on one side.
    """
    policy = RowPolicy(skip_bad_rows)
    path, names = Path(root) / "Symptom2Disease.csv", ("", "label", "text")
    records = []
    for line, row in csv_rows(path, names):
        with policy.guard(path, line):
            values = columns(row, names)
            records.append(
                {
                    "id": _integer(values[""], "row index"),
                    "label": _nonempty(values, "label"),
                    "text": _nonempty(values, "text"),
                }
            )
    return policy.finish({"all": records})


def _integer(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise BadRow(f"{what} must be an integer, got '{value}'") from None


def _seconds(value: str, what: str) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise BadRow(f"{what} must be a number of seconds, got '{value}'") from None


def _nonempty(values: dict[str, str], key: str) -> str:
    if not values[key].strip():
        raise BadRow(f"empty '{key}'")
    return values[key].strip()


# --- MTSamples (500-note sample) ---------------------------------------------------------------------------------

MTSAMPLES_COLUMNS = ("description", "specialty", "title", "text", "keywords")


def load_mtsamples(root: Path, skip_bad_rows: bool = False) -> Splits:
    """Split ``all``: ``id`` (0-based data row), ``description`` (1-2 sentence summary), ``specialty``, ``title``,
    ``text`` (transcription), ``keywords``. The source's leading spaces are stripped from every field.
    """
    policy = RowPolicy(skip_bad_rows)
    path = Path(root) / "mtsamples_sample.csv"
    records = []
    for index, (line, row) in enumerate(csv_rows(path, MTSAMPLES_COLUMNS)):
        with policy.guard(path, line):
            values = {key: value.strip() for key, value in columns(row, MTSAMPLES_COLUMNS).items()}
            for required in ("specialty", "text"):
                _nonempty(values, required)
            records.append({"id": index, **values})
    return policy.finish({"all": records})


# --- IU X-ray (Open-i) reports -----------------------------------------------------------------------------------

IU_REPORT_COLUMNS = ("uid", "MeSH", "Problems", "image", "indication", "comparison", "findings", "impression")
IU_PROJECTIONS = ("Frontal", "Lateral")


def load_iu_xray(root: Path, skip_bad_rows: bool = False) -> Splits:
    """Split ``all``: one record per report with ``uid``, ``mesh``, ``problems``, ``image``, ``indication``,
    ``comparison``, ``findings``, ``impression`` (empty string where the report has none; ``XXXX`` marks
    de-identified words) and ``projections``: ``[{"filename", "projection"}]`` from ``indiana_projections.csv``.
    Demner-Fushman et al. 2016, JAMIA 23(2).
    """
    policy = RowPolicy(skip_bad_rows)
    path = Path(root) / "indiana_reports.csv"
    reports: dict[int, dict] = {}
    for line, row in csv_rows(path, IU_REPORT_COLUMNS):
        with policy.guard(path, line):
            values = {key.lower(): value.strip() for key, value in columns(row, IU_REPORT_COLUMNS).items()}
            uid = _integer(values.pop("uid"), "uid")
            if uid in reports:
                raise BadRow(f"duplicate uid {uid}")
            reports[uid] = {"uid": uid, **values, "projections": []}
    path, names = Path(root) / "indiana_projections.csv", ("uid", "filename", "projection")
    for line, row in csv_rows(path, names):
        with policy.guard(path, line):
            values = columns(row, names)
            uid = _integer(values["uid"], "uid")
            if uid not in reports:
                raise BadRow(f"uid {uid} has no report in indiana_reports.csv")
            projection = choice(values["projection"], IU_PROJECTIONS, "projection")
            reports[uid]["projections"].append({"filename": _nonempty(values, "filename"), "projection": projection})
    return policy.finish({"all": list(reports.values())})


# --- BDD-X -------------------------------------------------------------------------------------------------------

BDDX_SPLITS = ("train", "val", "test")
BDDX_FLAT_COLUMNS = ("csv_line", "video_id", "split", "segment", "start_s", "end_s", "action", "justification")
BDDX_SEGMENTS = 15
BDDX_COLUMNS = ("Input.Video",) + tuple(
    f"Answer.{k}{part}" for k in range(1, BDDX_SEGMENTS + 1) for part in ("start", "end", "action", "justification")
)


def load_bddx(root: Path, skip_bad_rows: bool = False) -> Splits:
    """Splits train / val / test (by video id in the official split files) and ``unassigned`` (segments whose video
    is in no split file). One record per (action, justification) segment: ``video_id``, ``segment`` (1-15),
    ``start_s`` / ``end_s`` (None where blank), ``action``, ``justification`` and ``csv_line`` (its line in the
    original CSV). Reads ``bddx_segments_flat.csv`` when present, otherwise rebuilds the same records from
    ``BDD-X-Annotations_v1.csv``. Kim et al. 2018, Textual Explanations for Self-Driving Vehicles, ECCV.
    """
    policy = RowPolicy(skip_bad_rows)
    flat = Path(root) / "bddx_segments_flat.csv"
    segments = _bddx_flat(flat, policy) if flat.is_file() else _bddx_original(Path(root), policy)
    splits: dict[str, list[dict]] = {name: [] for name in (*BDDX_SPLITS, "unassigned")}
    for split, record in segments:
        splits[split or "unassigned"].append(record)
    return policy.finish(splits)


def _bddx_segment(csv_line: int, video_id: str, segment: int, fields: tuple[str, ...]) -> dict:
    start, end, action, justification = (value.strip() for value in fields)
    return {
        "video_id": video_id,
        "segment": segment,
        "start_s": _seconds(start, "start"),
        "end_s": _seconds(end, "end"),
        "action": action,
        "justification": justification,
        "csv_line": csv_line,
    }


def _bddx_flat(path: Path, policy: RowPolicy) -> list[tuple[str, dict]]:
    segments = []
    for line, row in csv_rows(path, BDDX_FLAT_COLUMNS):
        with policy.guard(path, line):
            v = columns(row, BDDX_FLAT_COLUMNS)
            split = choice(v["split"], (*BDDX_SPLITS, ""), "split")
            fields = (v["start_s"], v["end_s"], v["action"], v["justification"])
            record = _bddx_segment(
                _integer(v["csv_line"], "csv_line"), v["video_id"], _integer(v["segment"], "segment"), fields
            )
            segments.append((split, record))
    return segments


def _bddx_original(root: Path, policy: RowPolicy) -> list[tuple[str, dict]]:
    split_of = _bddx_split_files(root)
    path = root / "BDD-X-Annotations_v1.csv"
    segments = []
    for line, row in csv_rows(path, BDDX_COLUMNS):
        with policy.guard(path, line):
            columns(row, BDDX_COLUMNS)
            url = row[0].strip()
            if not url:
                continue  # 5,998 rows of the original CSV are blank
            video_id = url.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            found = []
            for k in range(BDDX_SEGMENTS):
                fields = tuple(row[1 + 4 * k : 5 + 4 * k])
                if fields[2].strip() or fields[3].strip():
                    found.append((split_of.get(video_id, ""), _bddx_segment(line, video_id, k + 1, fields)))
            segments += found
    return segments


def _bddx_split_files(root: Path) -> dict[str, str]:
    """video id -> split, from lines ``<index>_<video id>`` in train.txt / val.txt / test.txt."""
    split_of: dict[str, str] = {}
    for split in BDDX_SPLITS:
        path = root / f"{split}.txt"
        for number, entry in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            index, sep, video_id = entry.strip().partition("_")
            if entry.strip() and (not sep or not index.isdigit()):
                raise MalformedRowError(path, number, "expected '<index>_<video id>'")
            if video_id:
                split_of[video_id] = split
    return split_of


# --- radlabels synthetic reports ---------------------------------------------------------------------------------

RADLABELS_STATUSES = ("definitely present", "definitely absent", "uncertain")


def load_radlabels(root: Path, skip_bad_rows: bool = False) -> Splits:
    """Split ``all``: one record per synthetic report of the radlabels wheel, ``{"id", "text", "labels"}`` with
    ``labels`` mapping each finding the report mentions to ``definitely present``, ``definitely absent`` or
    ``uncertain`` (unmentioned findings are absent from it). Read from the wheel (a zip) without installing it."""
    import zipfile

    policy = RowPolicy(skip_bad_rows)
    path = next(Path(root).glob("radlabels-*.whl"))
    with zipfile.ZipFile(path) as wheel:
        labels = json.loads(wheel.read("radlabels/samples/synthetic_labels.json"))
        records = []
        for line, (report_id, findings) in enumerate(sorted(labels.items()), start=1):
            with policy.guard(path, line):
                bad = sorted(set(findings.values()) - set(RADLABELS_STATUSES))
                if bad:
                    raise BadRow(f"{report_id}: unknown label status {bad}")
                text = wheel.read(f"radlabels/samples/synthetic_reports/{report_id}.txt").decode("utf-8")
                records.append({"id": report_id, "text": text, "labels": dict(findings)})
    return policy.finish({"all": records})
