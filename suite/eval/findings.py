"""Negation-aware finding extraction and the faithfulness rates built on it (hallucinated and missing findings).

A finding vocabulary maps each finding to the phrases that assert it (``{"pleural_effusion": ["pleural effusion",
"effusion"], ...}``). :class:`FindingExtractor` reads a text sentence by sentence and labels every finding it
mentions ``positive``, ``negative`` or ``uncertain`` with NegEx-style rules (Chapman et al. 2001):

- a negation cue before the phrase (``no``, ``without``, ``negative for``, ``free of``, ``no evidence of`` ...)
  negates everything after it in the sentence up to a scope terminator (``but``, ``however``, ``although``,
  ``except``, ``which``), so "No pneumothorax, effusion or consolidation." negates all three;
- a negation cue after the phrase (``is not seen``, ``has resolved``, ``are absent`` ...) negates back to the
  previous terminator;
- an uncertainty cue before the phrase (``may``, ``possible``, ``likely``, ``suspicious for`` ...; hypothetical or
  historical ones too: ``evaluate for``, ``rule out``, ``history of``) or after it (``cannot be excluded``, ``is
  suspected``) makes the mention uncertain, unless it is negated: in "opacities may reflect atelectasis" the
  opacities are asserted and the atelectasis is uncertain.

A finding mentioned more than once keeps its most assertive label (positive > uncertain > negative), as a reader
would: "no effusion on the left; small effusion on the right" asserts an effusion.

From two texts (source and generated) come the two clinical-faithfulness rates (Tariq et al.-style checks):
**hallucination** — a finding the output asserts (positive) that the source does not (absent or negated), and
**missing information** — a positive finding of the source that the output does not assert.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

POSITIVE, NEGATIVE, UNCERTAIN = "positive", "negative", "uncertain"
_RANK = {NEGATIVE: 0, UNCERTAIN: 1, POSITIVE: 2}

PRE_NEGATIONS = (
    "no", "not", "without", "negative for", "free of", "clear of", "no evidence of", "no sign of", "no signs of",
    "absence of", "no findings of", "no radiographic evidence of", "rules out", "ruled out", "resolution of",
    "resolved", "removal of", "no new", "no acute", "no definite", "no focal", "no large", "no visible",
)  # fmt: skip
POST_NEGATIONS = (
    "is not seen", "are not seen", "not seen", "not identified", "is not identified", "are not identified",
    "has resolved", "have resolved", "resolved", "is absent", "are absent", "not present", "has been removed",
    "have been removed", "removed", "not appreciated", "is not appreciated", "are not appreciated",
)  # fmt: skip
UNCERTAIN_PRE = (
    "may", "might", "possible", "possibly", "probable", "probably", "likely", "suggest", "suggests", "suggestive of",
    "suspicious for", "concerning for", "questionable", "cannot exclude", "versus", "vs", "borderline", "equivocal",
    "could represent", "may represent", "could reflect", "may reflect", "evaluate for", "evaluation for",
    "evaluation of", "eval for", "assess for", "assessment for", "assessment of", "rule out", "r/o", "to detect",
    "history of", "question of", "?",
)  # fmt: skip
UNCERTAIN_POST = (
    "cannot be excluded", "can not be excluded", "not excluded", "is suspected", "are suspected", "is possible",
    "are possible", "is not excluded", "is questioned", "?",
)  # fmt: skip
TERMINATORS = (
    "but", "however", "although", "though", "except", "which", "aside from", "apart from", "otherwise", "there is",
    "there are", "there has been", "there have been",
)  # fmt: skip
_SENTENCE = re.compile(r"(?<=[.;:!?\n])\s+|\n+")


def _pattern(phrases: Iterable[str]) -> re.Pattern[str]:
    """Whole-word, longest-first alternation of ``phrases`` (spaces match any run of whitespace or hyphens)."""
    ordered = sorted({p.lower() for p in phrases}, key=len, reverse=True)
    body = "|".join(re.escape(p).replace(r"\ ", r"[\s-]+") for p in ordered)
    return re.compile(rf"(?<![a-z0-9])(?:{body})(?![a-z0-9])")


@dataclass(frozen=True)
class Mention:
    finding: str
    label: str
    start: int
    end: int


class FindingExtractor:
    """Phrase matching with NegEx-style negation and uncertainty over a finding vocabulary."""

    def __init__(self, vocabulary: Mapping[str, Sequence[str]]):
        if not vocabulary or any(not phrases for phrases in vocabulary.values()):
            raise ValueError("finding vocabulary: every finding needs at least one phrase")
        self.findings = tuple(vocabulary)
        self._phrases = {finding: _pattern(phrases) for finding, phrases in vocabulary.items()}
        self._pre, self._post = _pattern(PRE_NEGATIONS), _pattern(POST_NEGATIONS)
        self._uncertain_pre, self._uncertain_post = _pattern(UNCERTAIN_PRE), _pattern(UNCERTAIN_POST)
        self._stop = _pattern(TERMINATORS)

    def mentions(self, text: str) -> list[Mention]:
        """Every finding phrase in ``text`` with its label, sentence by sentence."""
        out = []
        for sentence in _SENTENCE.split(text.lower()):
            stops = [m.start() for m in self._stop.finditer(sentence)]
            for finding, pattern in self._phrases.items():
                for match in pattern.finditer(sentence):
                    out.append(Mention(finding, self._label(sentence, match.start(), match.end(), stops),
                                       match.start(), match.end()))  # fmt: skip
        return out

    def _label(self, sentence: str, start: int, end: int, stops: list[int]) -> str:
        scope_start = max([s for s in stops if s < start], default=0)  # the clause the phrase sits in
        scope_end = min([s for s in stops if s >= end], default=len(sentence))
        before, after = sentence[scope_start:start], sentence[end:scope_end]
        if self._pre.search(before) or self._post.search(after):
            return NEGATIVE
        if self._uncertain_pre.search(before) or self._uncertain_post.search(after):
            return UNCERTAIN
        return POSITIVE

    def __call__(self, text: str) -> dict[str, str]:
        """``{finding: label}`` for every finding mentioned (its most assertive label); unmentioned ones are absent."""
        labels: dict[str, str] = {}
        for m in self.mentions(text):
            if m.finding not in labels or _RANK[m.label] > _RANK[labels[m.finding]]:
                labels[m.finding] = m.label
        return labels

    def positives(self, text: str) -> set[str]:
        return {finding for finding, label in self(text).items() if label == POSITIVE}


def faithfulness(
    extractor: FindingExtractor, sources: Sequence[str], outputs: Sequence[str]
) -> dict[str, float]:  # fmt: skip
    """Over all (source, output) pairs:

    - ``hallucination_rate``: asserted findings of the outputs that their source does not assert, over all asserted
      findings of the outputs (0 when the outputs assert nothing);
    - ``missing_rate``: positive findings of the sources that their output does not assert, over all positive
      findings of the sources;
    - ``outputs_with_hallucination``: share of outputs asserting at least one unsupported finding.
    """
    if len(sources) != len(outputs):
        raise ValueError(f"{len(sources)} sources but {len(outputs)} outputs")
    asserted = unsupported = source_positive = missed = flagged = 0
    for source, output in zip(sources, outputs, strict=True):
        given, said = extractor.positives(source), extractor.positives(output)
        asserted, unsupported = asserted + len(said), unsupported + len(said - given)
        source_positive, missed = source_positive + len(given), missed + len(given - said)
        flagged += bool(said - given)
    return {
        "hallucination_rate": unsupported / asserted if asserted else 0.0,
        "missing_rate": missed / source_positive if source_positive else 0.0,
        "outputs_with_hallucination": flagged / len(outputs) if outputs else 0.0,
    }


def per_finding_scores(
    predicted: Sequence[set[str]], gold: Sequence[set[str]], findings: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Precision, recall and support of each finding's positive label (validation against a labelled set)."""
    scores = {}
    for finding in findings:
        tp = sum(finding in p and finding in g for p, g in zip(predicted, gold, strict=True))
        fp = sum(finding in p and finding not in g for p, g in zip(predicted, gold, strict=True))
        fn = sum(finding not in p and finding in g for p, g in zip(predicted, gold, strict=True))
        scores[finding] = {
            "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / (tp + fn) if tp + fn else float("nan"),
            "support": tp + fn,
        }
    return scores
