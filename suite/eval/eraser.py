r"""ERASER-style faithfulness of extractive rationales (DeYoung et al. 2020, "ERASER: A Benchmark to Evaluate
Rationalized NLP Models").

A rationale is faithful when the words it cites are the ones the classifier's decision rests on. With :math:`m(x)_j`
the model's probability of the class :math:`j` it predicts on the full input :math:`x`, and :math:`r` the cited words:

.. math:: \text{comprehensiveness} = m(x)_j - m(x \setminus r)_j, \qquad
          \text{sufficiency} = m(x)_j - m(r)_j

High comprehensiveness: removing the cited words takes the decision away. Low sufficiency: the cited words alone keep
it. Both are shown next to the same measures for as many *random* content words of the input, the baseline a
rationale has to beat (a long input barely notices any few words removed, so the raw numbers mean little alone).

Evidence here is word-level: the content words a written rationale shares with its input (:func:`cited_words`), so
a generated rationale is scored by what it actually points at in the case, not by what it claims.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

import numpy as np

_STOPWORDS = (
    "a an and are as at be been but by for from had has have he her his i in is it its me my of on or our she so than "
    "that the their them then there these they this to was we were what when which who with you your also after "
    "before about into over very just now since being do does did not no all any some more most"
)
STOPWORDS = frozenset(_STOPWORDS.split())  # function words never count as evidence
# the words of the rationale frame ("the case mentions ..., pointing to X ." / "... so the answer is X ."): a
# rationale says them whatever the case, so they are never evidence
FRAME = frozenset({"case", "mentions", "pointing", "answer"})
WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
# (texts, text pairs) -> class probabilities (N, C)
Predict = Callable[[list[str], list[str]], np.ndarray]


def _content(word: str) -> bool:
    return len(word) > 2 and word.lower() not in STOPWORDS


def cited_words(rationale: str, text: str) -> set[str]:
    """The content words (lower case) that ``rationale`` shares with ``text``, its frame aside: the evidence it
    points at."""
    present = {w.lower() for w in WORD.findall(text) if _content(w)} - FRAME
    return {w.lower() for w in WORD.findall(rationale) if w.lower() in present}


def remove_words(text: str, words: set[str]) -> str:
    """``text`` without every occurrence of ``words`` (case-insensitive, whole words)."""
    return " ".join(t for t in text.split() if _bare(t) not in words)


def keep_words(text: str, words: set[str]) -> str:
    """Only the occurrences of ``words`` in ``text``, in text order."""
    return " ".join(t for t in text.split() if _bare(t) in words)


def _bare(token: str) -> str:
    match = WORD.search(token)
    return match.group(0).lower() if match else ""


def random_words(texts: Sequence[str], sizes: Sequence[int], seed: int = 0) -> list[set[str]]:
    """For each text, as many distinct content words as its rationale cites, drawn at random (the baseline)."""
    rng = random.Random(seed)
    out = []
    for text, size in zip(texts, sizes, strict=True):
        pool = sorted({w.lower() for w in WORD.findall(text) if _content(w)})
        out.append(set(rng.sample(pool, min(size, len(pool)))))
    return out


def _scores(predict: Predict, texts: list[str], pairs: list[str], evidence: list[set[str]], full: np.ndarray,
            predicted: np.ndarray) -> tuple[float, float]:  # fmt: skip
    rows = np.arange(len(texts))
    erased = predict([remove_words(t, e) for t, e in zip(texts, evidence, strict=True)],
                     [remove_words(p, e) for p, e in zip(pairs, evidence, strict=True)])  # fmt: skip
    alone = predict([keep_words(t, e) for t, e in zip(texts, evidence, strict=True)],
                    [keep_words(p, e) for p, e in zip(pairs, evidence, strict=True)])  # fmt: skip
    base = full[rows, predicted]
    return float(np.mean(base - erased[rows, predicted])), float(np.mean(base - alone[rows, predicted]))


def eraser_scores(predict: Predict, texts: Sequence[str], pairs: Sequence[str], rationales: Sequence[str],
                  seed: int = 0) -> dict[str, float]:  # fmt: skip
    """Comprehensiveness and sufficiency of ``rationales`` for the model behind ``predict``, over the cases whose
    rationale cites at least one word of its input, beside the same for random words of equal count.

    ``pairs`` holds each case's second text ('' for single-text tasks); cited words are erased from both.
    """
    cases = [(t, p, cited_words(r, f"{t} {p}")) for t, p, r in zip(texts, pairs, rationales, strict=True)]
    cases = [c for c in cases if c[2]]
    if not cases:
        return {"eraser_cases": 0.0}
    texts_, pairs_, evidence = (list(x) for x in zip(*cases, strict=True))
    full = predict(texts_, pairs_)
    predicted = full.argmax(-1)
    comp, suff = _scores(predict, texts_, pairs_, evidence, full, predicted)
    joined = [f"{t} {p}" for t, p in zip(texts_, pairs_, strict=True)]
    chance = random_words(joined, [len(e) for e in evidence], seed)
    comp_random, suff_random = _scores(predict, texts_, pairs_, chance, full, predicted)
    return {"eraser_cases": float(len(cases)), "comprehensiveness": comp, "sufficiency": suff,
            "comprehensiveness_random": comp_random, "sufficiency_random": suff_random,
            "cited_words": float(np.mean([len(e) for e in evidence]))}  # fmt: skip
