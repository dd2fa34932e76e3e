"""The clinical pack's three tasks as labelled text pairs with an optional gold rationale.

- ``pubmedqa``: PubMedQA PQA-L (Jin et al. 2019). (question, abstract contexts) -> yes / no / maybe; the authors'
  long answer (the abstract's conclusion) is the gold rationale. Test: the official 500 PMIDs; the other 500 are
  cut into train and dev by a hash of the PMID.
- ``symptom2disease``: a first-person symptom description -> one of 24 diagnoses. No gold rationale (the teacher's
  evidence is used). Split by text group: the 47 exact duplicates stay on one side.
- ``mtsamples``: a transcription -> its specialty (MTSamples-500). Specialties with fewer than
  ``MIN_SPECIALTY`` notes are pooled as ``Other`` (a class with one or two notes can be neither learned nor
  measured); split by a hash of the note id, stratified by nothing (the counts are in the report).

Every example carries an ``id`` (PMID, row index, note index): reports and logs show ids, never text.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

PUBMEDQA_LABELS = ["yes", "no", "maybe"]
MIN_SPECIALTY = 9
# run order: the released task first, PubMedQA last (offline, nothing beats its majority class: pubmedqa_probe.md)
TASKS = ("symptom2disease", "mtsamples", "pubmedqa")


@dataclass(frozen=True)
class Example:
    """One labelled case; ``group`` must not straddle splits; ``rationale`` is gold text or empty."""

    text: str
    text_pair: str
    label: int
    group: str
    id: str
    rationale: str = ""


@dataclass
class TaskData:
    labels: list[str]
    splits: dict[str, list[Example]]  # train, dev, test


def hashed_split(key: str, fraction: float, salt: str) -> bool:
    """True for about ``fraction`` of keys: a hash of the key, stable across runs and orderings."""
    from suite.data.splits import hash_unit

    return hash_unit(key, salt) < fraction


def _three_way(examples: list[Example], dev: float, test: float, salt: str) -> dict[str, list[Example]]:
    out: dict[str, list[Example]] = {"train": [], "dev": [], "test": []}
    for e in examples:
        if hashed_split(e.group, test, f"{salt}-test"):
            out["test"].append(e)
        elif hashed_split(e.group, dev / (1 - test), f"{salt}-dev"):
            out["dev"].append(e)
        else:
            out["train"].append(e)
    return out


def load_pubmedqa(path: str | None = None, dev_fraction: float = 0.1) -> TaskData:
    from suite.data import load_dataset

    splits = load_dataset("pubmedqa-pqal", path=path or None)

    def example(r: dict[str, Any]) -> Example:
        return Example(r["question"], " ".join(r["contexts"]), PUBMEDQA_LABELS.index(r["label"]), r["id"], r["id"],
                       r["long_answer"])  # fmt: skip

    pool = [example(r) for r in splits["train"]]
    dev = [e for e in pool if hashed_split(e.id, dev_fraction, "pubmedqa-dev")]
    train = [e for e in pool if e not in dev]
    return TaskData(PUBMEDQA_LABELS, {"train": train, "dev": dev, "test": [example(r) for r in splits["test"]]})


def _normalised(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def load_symptom2disease(path: str | None = None, dev_fraction: float = 0.1, test_fraction: float = 0.2) -> TaskData:
    from suite.data import load_dataset

    records = load_dataset("symptom2disease", path=path or None)["all"]
    labels = sorted({r["label"] for r in records})
    examples = [Example(r["text"], "", labels.index(r["label"]), _normalised(r["text"]), str(r["id"]))
                for r in records]  # fmt: skip
    return TaskData(labels, _three_way(examples, dev_fraction, test_fraction, "symptom2disease"))


def load_mtsamples(path: str | None = None, dev_fraction: float = 0.1, test_fraction: float = 0.2) -> TaskData:
    from suite.data import load_dataset

    records = load_dataset("mtsamples", path=path or None)["all"]
    counts = Counter(r["specialty"] for r in records)
    kept = sorted(s for s, n in counts.items() if n >= MIN_SPECIALTY)
    labels = [*kept, "Other"]

    def label(specialty: str) -> int:
        return labels.index(specialty) if specialty in kept else len(kept)

    examples = [Example(r["text"], "", label(r["specialty"]), str(r["id"]), str(r["id"])) for r in records]
    return TaskData(labels, _three_way(examples, dev_fraction, test_fraction, "mtsamples"))


LOADERS = {"pubmedqa": load_pubmedqa, "symptom2disease": load_symptom2disease, "mtsamples": load_mtsamples}


def load_task(task: str, path: str | None = None) -> TaskData:
    if task not in LOADERS:
        raise ValueError(f"unknown clinical task '{task}'; choose from {', '.join(TASKS)}")
    return LOADERS[task](path)
