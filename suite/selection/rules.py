"""Rule filters (survey section 5, the heuristic filters of Gopher / C4-style pipelines): drop texts that are too
short or too long, that repeat themselves, or whose characters are mostly not letters. Each removal names the rule
and the measured value, so a user can see which threshold bit."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from suite.selection.record import Selection, texts_checksum

WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class RuleConfig:
    min_words: int = 3
    max_words: int = 2000
    max_repeated_ngrams: float = 0.3  # share of word 3-grams that are repeats of an earlier one
    min_alpha_ratio: float = 0.5  # letters over non-space characters
    max_digit_ratio: float = 0.5  # digits over non-space characters


def repeated_ngram_share(words: Sequence[str], n: int = 3) -> float:
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return sum(count - 1 for count in Counter(grams).values()) / len(grams)


def why_removed(text: str, config: RuleConfig) -> str | None:
    """The first rule ``text`` breaks, with its measured value; None when it passes every rule."""
    words = WORD.findall(text)
    if len(words) < config.min_words:
        return f"{len(words)} words < min_words {config.min_words}"
    if len(words) > config.max_words:
        return f"{len(words)} words > max_words {config.max_words}"
    repeated = repeated_ngram_share([w.lower() for w in words])
    if repeated > config.max_repeated_ngrams:
        return f"repeated word 3-grams {repeated:.2f} > {config.max_repeated_ngrams}"
    characters = [c for c in text if not c.isspace()]
    alpha = sum(c.isalpha() for c in characters) / len(characters)
    if alpha < config.min_alpha_ratio:
        return f"letter ratio {alpha:.2f} < {config.min_alpha_ratio}"
    digits = sum(c.isdigit() for c in characters) / len(characters)
    if digits > config.max_digit_ratio:
        return f"digit ratio {digits:.2f} > {config.max_digit_ratio}"
    return None


def rule_filter(texts: Sequence[str], config: RuleConfig | None = None) -> Selection:
    config = config or RuleConfig()
    reasons = {i: why for i, text in enumerate(texts) if (why := why_removed(text, config)) is not None}
    kept = [i for i in range(len(texts)) if i not in reasons]
    return Selection("rules", asdict(config), texts_checksum(list(texts)), kept, reasons)
