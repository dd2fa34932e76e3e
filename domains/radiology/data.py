"""IU X-ray (Open-i) reports as findings -> impression pairs, split so that no findings text is in two splits.

Templated normal reports repeat word for word (2,547 distinct findings texts among the 3,331 reports that have both
sections), so a random split would put the same text in train and test. Reports are grouped by their normalised
findings text and each group goes to one split by a stable hash. ``normal`` is the Open-i problem list saying
"normal"; every metric is reported for normal and abnormal reports apart, because the normal ones dominate.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Report:
    uid: int
    findings: str
    impression: str
    normal: bool


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower()).strip()


def load_reports(path: str = "") -> list[Report]:
    """Every IU X-ray report with both a findings and an impression section (dataset ``iu-xray-reports``)."""
    from suite.data import load_dataset

    records = load_dataset("iu-xray-reports", path or None)["all"]
    return [Report(r["uid"], r["findings"], r["impression"], r["problems"].strip().lower() == "normal")
            for r in records if r["findings"] and r["impression"]]  # fmt: skip


def split_of(findings: str, dev: float, test: float, salt: str = "iu-xray") -> str:
    """The split of a findings text, from a hash of the normalised text: the same text always lands together."""
    digest = hashlib.sha256(f"{salt}:{normalise(findings)}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    return "test" if position < test else "dev" if position < test + dev else "train"


def split_reports(reports: list[Report], dev: float = 0.1, test: float = 0.2) -> dict[str, list[Report]]:
    splits: dict[str, list[Report]] = {name: [] for name in SPLITS}
    for report in reports:
        splits[split_of(report.findings, dev, test)].append(report)
    return splits


def most_common_impression(train: list[Report]) -> str:
    """The copy-the-most-common-output baseline: the training set's most frequent impression."""
    return Counter(r.impression for r in train).most_common(1)[0][0]
