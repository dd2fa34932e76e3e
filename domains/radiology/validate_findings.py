"""Validate the pack's finding extractor against radlabels' labels of its 1,000 synthetic reports.

    python -m domains.radiology.validate_findings [--out docs/results/radiology_findings]

For every finding of :data:`~domains.radiology.findings.CHEST_FINDINGS`: precision and recall of the extractor's
``positive`` label against radlabels' ``definitely present`` (its labels mapped through ``RADLABELS_MAP``), on the
reports' findings and impression (:func:`report_body`). Two readings of radlabels' convention are reported: strict
(an uncertain mention, e.g. "opacities may reflect atelectasis", is not a positive) and lenient (it is, as radlabels
often labels such mentions present). Also: the share of radlabels' ``definitely absent`` findings the extractor does
not call positive. Writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from domains.radiology.findings import CHEST_FINDINGS, RADLABELS_MAP, chest_extractor, report_body
from suite.eval.findings import POSITIVE, UNCERTAIN, per_finding_scores


def validate(reports: list[dict]) -> dict:
    extractor = chest_extractor()
    strict, lenient, gold, absent_kept, absent = [], [], [], 0, 0
    for report in reports:
        labels = extractor(report_body(report["text"]))
        strict.append({f for f, label in labels.items() if label == POSITIVE})
        lenient.append({f for f, label in labels.items() if label in (POSITIVE, UNCERTAIN)})
        mapped = {RADLABELS_MAP[k]: v for k, v in report["labels"].items() if k in RADLABELS_MAP}
        gold.append({f for f, status in mapped.items() if status == "definitely present"})
        for finding, status in mapped.items():
            if status == "definitely absent":
                absent += 1
                absent_kept += labels.get(finding) != POSITIVE
    findings = list(CHEST_FINDINGS)
    return {
        "reports": len(reports),
        "strict": {"per_finding": per_finding_scores(strict, gold, findings), **_micro(strict, gold)},
        "lenient": {"per_finding": per_finding_scores(lenient, gold, findings), **_micro(lenient, gold)},
        "absent_not_called_positive": absent_kept / absent if absent else math.nan,
        "absent_findings": absent,
    }


def _micro(predicted: list[set[str]], gold: list[set[str]]) -> dict[str, float]:
    tp = sum(len(p & g) for p, g in zip(predicted, gold, strict=True))
    fp = sum(len(p - g) for p, g in zip(predicted, gold, strict=True))
    fn = sum(len(g - p) for p, g in zip(predicted, gold, strict=True))
    return {"micro_precision": tp / (tp + fp), "micro_recall": tp / (tp + fn)}


def markdown(result: dict, command: str) -> str:
    lines = ["# Radiology finding extractor vs radlabels", "",
             f"Produced by `{command}`: {result['reports']} synthetic reports of the `radlabels` 0.2.0 wheel (dataset "
             "`radlabels-synthetic`), findings + impression only. Positive = radlabels `definitely present`; strict: "
             "the extractor's uncertain mentions count as not positive, lenient: as positive.", "",
             "| finding | support | precision (strict) | recall (strict) | precision (lenient) | recall (lenient) |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for finding, s in result["strict"]["per_finding"].items():
        l = result["lenient"]["per_finding"][finding]  # noqa: E741
        lines.append(f"| {finding} | {s['support']} | {s['precision']:.3f} | {s['recall']:.3f} | "
                     f"{l['precision']:.3f} | {l['recall']:.3f} |")  # fmt: skip
    for reading in ("strict", "lenient"):
        r = result[reading]
        lines.append(f"| **micro ({reading})** | | {r['micro_precision']:.3f} | {r['micro_recall']:.3f} | | |")
    lines += ["", f"Findings radlabels labels `definitely absent` that the extractor does not call positive: "
              f"{result['absent_not_called_positive']:.3f} of {result['absent_findings']}.", ""]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import shlex
    import sys

    from suite.data import load_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/radiology/findings_validation"))
    args = parser.parse_args(argv)
    command = shlex.join(["python", "-m", "domains.radiology.validate_findings", *(argv or sys.argv[1:])])
    result = validate(load_dataset("radlabels-synthetic")["all"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result, command))
    print(markdown(result, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
