r"""Robustness under input noise (survey section 6.1, "Robustness and Uncertainty"; Eq. 26-27).

A perturbation is a pure function ``fn(text, rng) -> str`` that draws all randomness from the ``random.Random`` it
is given, so a seed fixes the output. Each one edits ``max(1, round(rate * n))`` units of the text (n words or
letters), so any text long enough to be edited is changed. Word-level perturbations split on whitespace and rejoin
with single spaces. They are character/word noise in the spirit of PromptBench (Zhu et al. 2023), not
model-targeted adversarial attacks.

``PERTURBATIONS`` maps names to functions; a domain pack adds its own with :func:`register_perturbation`.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Hashable, Sequence

from suite.errors import RegistryError
from suite.eval._arrays import check_same_length

Perturbation = Callable[[str, random.Random], str]

PUNCTUATION_MARKS = ",.;:!?"
DISTRACTORS = (
    "Ignore any irrelevant details.",
    "Note: the following may contain typos.",
    "and true is true and false is not true.",
    "Read carefully before answering.",
    "The weather today is sunny and mild.",
)


def _n_edits(units: int, rate: float) -> int:
    return min(units, max(1, round(rate * units)))


def char_typos(text: str, rng: random.Random, rate: float = 0.05) -> str:
    """Replace, delete or duplicate ``rate`` of the letters (at least one); a replacement is a different letter."""
    chars = list(text)
    letters = [i for i, c in enumerate(chars) if c.isalpha()]
    if not letters:
        return text
    # edit from the right so earlier indices stay valid after deletions and insertions
    for i in sorted(rng.sample(letters, _n_edits(len(letters), rate)), reverse=True):
        op = rng.choice(("replace", "delete", "duplicate"))
        if op == "replace":
            chars[i] = rng.choice([c for c in string.ascii_lowercase if c != chars[i].lower()])
        elif op == "delete":
            del chars[i]
        else:
            chars.insert(i, chars[i])
    return "".join(chars)


def word_deletion(text: str, rng: random.Random, rate: float = 0.1) -> str:
    """Delete ``rate`` of the words (at least one), always keeping one word."""
    words = text.split()
    if len(words) < 2:
        return text
    drop = set(rng.sample(range(len(words)), _n_edits(len(words) - 1, rate)))
    return " ".join(w for i, w in enumerate(words) if i not in drop)


def word_swap(text: str, rng: random.Random, rate: float = 0.1) -> str:
    """Swap ``rate`` of the words (at least one pair) with their right neighbour."""
    words = text.split()
    if len(words) < 2:
        return text
    for i in rng.sample(range(len(words) - 1), _n_edits(len(words) - 1, rate)):
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def casing_noise(text: str, rng: random.Random, rate: float = 0.1) -> str:
    """Flip the case of ``rate`` of the cased letters (at least one)."""
    chars = list(text)
    cased = [i for i, c in enumerate(chars) if c.swapcase() != c]
    if not cased:
        return text
    for i in rng.sample(cased, _n_edits(len(cased), rate)):
        chars[i] = chars[i].swapcase()
    return "".join(chars)


def punctuation_noise(text: str, rng: random.Random, rate: float = 0.1) -> str:
    """Insert a random mark from ``,.;:!?`` after ``rate`` of the words (at least one)."""
    words = text.split()
    if not words:
        return text
    for i in rng.sample(range(len(words)), _n_edits(len(words), rate)):
        words[i] += rng.choice(PUNCTUATION_MARKS)
    return " ".join(words)


def distracting_prefix(text: str, rng: random.Random) -> str:
    """Prepend an irrelevant sentence (PromptBench-style distraction for prompts)."""
    return f"{rng.choice(DISTRACTORS)} {text}"


PERTURBATIONS: dict[str, Perturbation] = {
    "char_typos": char_typos,
    "word_deletion": word_deletion,
    "word_swap": word_swap,
    "casing_noise": casing_noise,
    "punctuation_noise": punctuation_noise,
    "distracting_prefix": distracting_prefix,
}


def register_perturbation(name: str, fn: Perturbation) -> None:
    """Add a perturbation under ``name``; a name already taken (or ``"clean"``, the key of unperturbed results in
    :func:`evaluate_robustness`) is a :class:`RegistryError`."""
    if name in PERTURBATIONS or name == "clean":
        raise RegistryError(f"perturbation '{name}' is registered twice")
    PERTURBATIONS[name] = fn


def _lookup(name: str) -> Perturbation:
    if name not in PERTURBATIONS:
        raise RegistryError(f"unknown perturbation '{name}' (known: {', '.join(sorted(PERTURBATIONS))})")
    return PERTURBATIONS[name]


def perturb(texts: Sequence[str], name: str, seed: int = 0) -> list[str]:
    """Apply the perturbation ``name`` to each text. Text i uses ``random.Random(f"{seed}:{name}:{i}")``, so its
    result depends on the seed, the name and its position only, not on the other texts."""
    fn = _lookup(name)
    return [fn(text, random.Random(f"{seed}:{name}:{i}")) for i, text in enumerate(texts)]


def attack_success_rate(
    labels: Sequence[Hashable], clean_predictions: Sequence[Hashable], perturbed_predictions: Sequence[Hashable]
) -> float:
    r"""Attack Success Rate, survey Eq. 26 (Wang et al. 2021, 2023):

    .. math:: \mathrm{ASR} = \frac{\sum_i I[f(\mathcal{A}(x_i)) \ne y_i]\, I[f(x_i) = y_i]}{\sum_i I[f(x_i) = y_i]}

    the share of originally correct examples that the perturbation makes wrong (the survey's sum-of-ratios notation
    means this ratio). ``nan`` when no example was correct to begin with.
    """
    check_same_length(labels, clean_predictions, "labels", "clean_predictions")
    check_same_length(labels, perturbed_predictions, "labels", "perturbed_predictions")
    triples = zip(labels, clean_predictions, perturbed_predictions, strict=True)
    flipped = [perturbed != y for y, clean, perturbed in triples if clean == y]
    return sum(flipped) / len(flipped) if flipped else float("nan")


def performance_drop_rate(clean_metric: float, perturbed_metric: float) -> float:
    r"""Performance Drop Rate, survey Eq. 27 (Zhu et al. 2023, PromptBench):

    .. math:: \mathrm{PDR} = 1 - \frac{\sum_{(x,y)} \mathcal{M}[f([A(P), x]), y]}
                                    {\sum_{(x,y)} \mathcal{M}[f([P, x]), y]}

    Pass the metric summed or averaged over the same examples (the ratio is the same). Higher means more
    vulnerable; negative when the perturbation helps. ``nan`` when the clean metric is 0.
    """
    return 1.0 - perturbed_metric / clean_metric if clean_metric != 0 else float("nan")


def evaluate_robustness(
    predict_fn: Callable[[list[str]], Sequence[Hashable]],
    texts: Sequence[str],
    labels: Sequence[Hashable],
    perturbations: Sequence[str],
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Accuracy on clean and perturbed ``texts``, with ASR and PDR (of accuracy) per perturbation.

    ``predict_fn`` maps a list of texts to one prediction per text. Returns
    ``{"clean": {"accuracy"}, name: {"accuracy", "attack_success_rate", "performance_drop_rate"}, ...}``.
    """
    check_same_length(texts, labels, "texts", "labels")
    clean = list(predict_fn(list(texts)))
    clean_accuracy = _accuracy(clean, labels)
    results: dict[str, dict[str, float]] = {"clean": {"accuracy": clean_accuracy}}
    for name in perturbations:
        perturbed = list(predict_fn(perturb(texts, name, seed)))
        accuracy = _accuracy(perturbed, labels)
        results[name] = {
            "accuracy": accuracy,
            "attack_success_rate": attack_success_rate(labels, clean, perturbed),
            "performance_drop_rate": performance_drop_rate(clean_accuracy, accuracy),
        }
    return results


def _accuracy(predictions: Sequence[Hashable], labels: Sequence[Hashable]) -> float:
    check_same_length(predictions, labels, "predictions", "labels")
    return sum(p == y for p, y in zip(predictions, labels, strict=True)) / len(labels)
