"""Prompt-based synthetic training data from any generator, with drift monitoring (survey sections 4.2 and 5.2).

One round asks the generator for ``per_label`` texts per label, filters them (empty, too short, duplicates, copies
of real training texts, and, with a ``labeler``, texts the teacher reads as another label), embeds the survivors and
measures their drift from the real data as an MMD. The run stops when drift exceeds the threshold (that round's texts
are dropped: they are the ones that drifted) or after ``rounds``. Between rounds the prompt is revised from the
feedback on what was rejected (automatic prompt revision): its ``{feedback}`` slot is filled with the reasons and a
few rejected texts, and an optional :class:`LLMReviser` also asks a backend to rewrite the whole prompt.

Generators answer :class:`Request` lists with texts:

- :class:`TeacherGenerator`: any teacher backend whose answers carry text (an OpenAI-compatible server, a local
  Hugging Face generator), through the teacher-output store when one is given so each prompt is asked once.
- :class:`NgramGenerator`: an offline stand-in: per label, a word trigram LM trained on that label's real texts,
  sampled. It cannot read prompts, so prompt revision does not change what it writes.
- :class:`~suite.condense.soft_prompt.SoftPromptGenerator`: a local causal LM steered per label by a soft prompt
  learned with peft prompt tuning.

The synthetic texts then train a student with the teacher's soft labels (KD on synthetic data): the labeler's
probabilities are kept with each text.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from suite.errors import ConfigError
from suite.progress import progress_bar
from suite.selection.lm import NgramLM

DEFAULT_TEMPLATE = (
    "Write one new, realistic example of a text labelled '{label}'. Vary the wording; do not copy the examples.\n"
    "Examples:\n{examples}\n{feedback}Example #{index}:"
)


@dataclass(frozen=True)
class Request:
    label: str
    prompt: str
    seed: int


class Generator(Protocol):
    def generate(self, requests: list[Request]) -> list[str]: ...


# -- drift ---------------------------------------------------------------------------------------------------------


def _median_bandwidth(z: np.ndarray) -> float:
    d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    positive = d2[d2 > 0]
    return float(np.sqrt(np.median(positive) / 2)) if len(positive) else 1.0


def mmd_rbf(x: np.ndarray, y: np.ndarray, bandwidth: float | None = None) -> float:
    """Squared MMD with a Gaussian kernel, biased (V-statistic) estimate: mean k(x,x') + mean k(y,y') - 2 mean
    k(x,y), ``k(a,b) = exp(-||a-b||^2 / (2 sigma^2))``; ``sigma`` by the median heuristic on the pooled sample."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) == 0 or len(y) == 0:
        raise ConfigError("MMD needs at least one vector on each side")
    sigma = bandwidth or _median_bandwidth(np.concatenate([x, y])[:1000])

    def kernel(a: np.ndarray, b: np.ndarray) -> float:
        d2 = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * a @ b.T
        return float(np.exp(-np.clip(d2, 0, None) / (2 * sigma**2)).mean())

    return kernel(x, x) + kernel(y, y) - 2 * kernel(x, y)


@dataclass
class DriftMonitor:
    """Drift of generated embeddings from real ones, and the stop rule.

    The biased MMD shrinks with sample size, so the threshold is relative: ``factor`` times the MMD between ``m``
    random real vectors and the other real vectors (``m`` = the generated count), the drift two real samples show by
    chance at that size, unless an absolute ``threshold`` is given.
    """

    real: np.ndarray
    factor: float = 3.0
    threshold: float | None = None
    seed: int = 0
    draws: int = 3

    def baseline(self, m: int) -> float:
        rng = np.random.default_rng(self.seed)
        m = min(m, len(self.real) // 2)
        values = []
        for _ in range(self.draws):
            order = rng.permutation(len(self.real))
            values.append(mmd_rbf(self.real[order[:m]], self.real[order[m:][:1000]]))
        return float(np.mean(values))

    def check(self, generated: np.ndarray) -> tuple[float, float]:
        """``(mmd, threshold)`` for these generated vectors against the real ones (at most 1,000 real)."""
        rng = np.random.default_rng(self.seed + 1)
        real = self.real[rng.permutation(len(self.real))[:1000]]
        limit = self.threshold if self.threshold is not None else self.factor * self.baseline(len(generated))
        return mmd_rbf(generated, real), limit


# -- generators ----------------------------------------------------------------------------------------------------


class TeacherGenerator:
    """Texts from any teacher backend (``answer(prompts)`` -> outputs with ``.text``), each prompt asked once and
    kept when ``store`` (a teacher-output store folder) is set."""

    def __init__(self, teacher: Any, store: str | None = None, batch_size: int = 8):
        self.teacher, self.store, self.batch_size = teacher, store, batch_size

    def generate(self, requests: list[Request]) -> list[str]:
        prompts = [r.prompt for r in requests]
        if self.store:
            from suite.teachers.store import TeacherOutputStore

            outputs = TeacherOutputStore(self.store).run(self.teacher, prompts, batch_size=self.batch_size,
                                                         progress=False)  # fmt: skip
        else:
            outputs = self.teacher.answer(prompts)
        return [(o.text or "").strip() for o in outputs]


class NgramSampler:
    """Draws texts from an :class:`NgramLM`: each next word from the interpolated trigram distribution, by backing
    off with the discounted mass (exactly the mixture :meth:`NgramLM.probability` scores). The follower tables are
    built once here, from the LM's counts."""

    def __init__(self, lm: NgramLM):
        self.lm = lm
        self.followers: list[dict] = [{}, {}]
        for (a, w), c in lm.counts[1].items():
            self.followers[0].setdefault(a, []).append((w, c))
        for (a, b, w), c in lm.counts[2].items():
            self.followers[1].setdefault((a, b), []).append((w, c))
        self.unigrams = [(w, c + 1) for w, c in lm.counts[0].items()]

    def sample(self, rng: random.Random, max_words: int = 80) -> str:
        words = ["<s>", "<s>"]
        while len(words) < max_words + 2:
            word = self._next_word(rng, words[-2], words[-1])
            if word == "</s>":
                break
            words.append(word)
        return _detokenize(words[2:])

    def _next_word(self, rng: random.Random, a: str, b: str) -> str:
        lm = self.lm
        for level, history in ((1, (a, b)), (0, b)):
            seen = self.followers[level].get(history)
            if not seen:
                continue
            backoff = lm.discount * lm.followers[level][history] / lm.history[level][history]
            if rng.random() >= backoff:
                return _draw(rng, [(w, max(c - lm.discount, 0)) for w, c in seen])
        return _draw(rng, self.unigrams)


def _draw(rng: random.Random, options: list[tuple[str, float]]) -> str:
    return rng.choices([w for w, _ in options], weights=[c for _, c in options])[0]


def _detokenize(words: list[str]) -> str:
    text = " ".join(words)
    for mark in (".", ",", ";", ":", "!", "?", "'", ")"):
        text = text.replace(f" {mark}", mark)
    return text.replace("( ", "(")


class NgramGenerator:
    """Per label, a trigram LM on that label's real texts, sampled with each request's seed (offline stand-in)."""

    def __init__(self, texts: Sequence[str], labels: Sequence[str], max_words: int = 80):
        by_label: dict[str, list[str]] = {}
        for text, label in zip(texts, labels, strict=True):
            by_label.setdefault(label, []).append(text)
        self.models = {label: NgramSampler(NgramLM(group)) for label, group in by_label.items()}
        self.max_words = max_words

    def generate(self, requests: list[Request]) -> list[str]:
        missing = sorted({r.label for r in requests} - set(self.models))
        if missing:
            raise ConfigError(f"no real texts for labels {missing}: the n-gram generator learns each label from them")
        return [self.models[r.label].sample(random.Random(r.seed), self.max_words) for r in requests]


# -- prompts and their revision ------------------------------------------------------------------------------------


@dataclass
class Rejection:
    label: str
    text: str
    reason: str


def feedback_note(rejections: list[Rejection], examples: int = 2, max_chars: int = 160) -> str:
    """A prompt section from the last round's rejections: the reasons by count and a few rejected texts."""
    if not rejections:
        return ""
    reasons = Counter(r.reason.split(":")[0] for r in rejections)
    lines = ["Feedback on earlier attempts (avoid these problems):"]
    lines += [f"- {count} were rejected as {reason}" for reason, count in reasons.most_common()]
    for r in rejections[:examples]:
        lines.append(f'- rejected ({r.reason}): "{r.text[:max_chars]}"')
    return "\n".join(lines) + "\n"


class LLMReviser:
    """Asks a backend (any teacher with text answers) to rewrite the prompt from the feedback (OPRO-style)."""

    def __init__(self, teacher: Any):
        self.teacher = teacher

    def revise(self, template: str, rejections: list[Rejection]) -> str:
        if not rejections:
            return template
        ask = ("Rewrite this prompt for generating training examples so that fewer outputs are rejected. Keep the "
               "placeholders {label}, {examples}, {feedback} and {index} unchanged. Reply with the prompt only.\n\n"
               f"Prompt:\n{template}\n\n{feedback_note(rejections)}")  # fmt: skip
        revised = (self.teacher.answer([ask])[0].text or "").strip()
        try:  # a rewrite with stray braces or without the slots would break every later prompt: keep the old one
            revised.format(label="x", index=1, examples="", feedback="")
        except (KeyError, IndexError, ValueError):
            return template
        return revised if all(p in revised for p in ("{label}", "{index}")) else template


# -- the loop ------------------------------------------------------------------------------------------------------


@dataclass
class RoundReport:
    round: int
    generated: int
    kept: int
    rejected: dict[str, int]
    mmd: float
    threshold: float
    drifted: bool
    template: str


@dataclass
class SyntheticData:
    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    probabilities: list[list[float]] = field(default_factory=list)  # the labeler's, one row per text, when given
    rounds: list[RoundReport] = field(default_factory=list)
    stopped: str = ""

    def report(self) -> dict[str, Any]:
        return {"count": len(self.texts), "by_label": dict(Counter(self.labels)), "stopped": self.stopped,
                "rounds": [asdict(r) for r in self.rounds]}  # fmt: skip


@dataclass(frozen=True)
class SynthesisConfig:
    per_label: int = 20  # texts asked per label per round
    rounds: int = 5
    min_words: int = 3
    few_shot: int = 3  # real examples of the label shown in each prompt
    seed: int = 0
    progress: bool = True


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def _prompts(template: str, labels: Sequence[str], examples: dict[str, list[str]], feedback: str, round_: int,
             config: SynthesisConfig) -> list[Request]:  # fmt: skip
    requests = []
    for li, label in enumerate(labels):
        for i in range(config.per_label):
            seed = config.seed * 1_000_003 + round_ * 10_007 + li * 1_009 + i
            pool = examples.get(label, [])
            shots = random.Random(seed).sample(pool, min(config.few_shot, len(pool)))
            prompt = template.format(label=label, index=round_ * config.per_label + i + 1, feedback=feedback,
                                     examples="\n".join(f"- {s}" for s in shots))  # fmt: skip
            requests.append(Request(label=label, prompt=prompt, seed=seed))
    return requests


def _why_rejected(text: str, label: str, seen: set[str], config: SynthesisConfig) -> str | None:
    if len(text.split()) < config.min_words:
        return "too short"
    if _normal(text) in seen:
        return "duplicate or copy of a real text"
    return None


def synthesize(generator: Generator, labels: Sequence[str], real_texts: Sequence[str],
               real_labels: Sequence[str], embed: Callable[[list[str]], np.ndarray],
               labeler: Callable[[list[str]], np.ndarray] | None = None, monitor: DriftMonitor | None = None,
               template: str = DEFAULT_TEMPLATE, reviser: Any = None,
               config: SynthesisConfig | None = None) -> SyntheticData:  # fmt: skip
    """Rounds of generation, filtering and drift checks (see the module docstring); ``labeler`` maps texts to class
    probabilities in the order of ``labels``."""
    config = config or SynthesisConfig()
    for slot in ("{label}", "{index}"):
        if slot not in template:
            raise ConfigError(f"the prompt template needs a {slot} placeholder")
    examples: dict[str, list[str]] = {}
    for text, label in zip(real_texts, real_labels, strict=True):
        examples.setdefault(label, []).append(text)
    monitor = monitor or DriftMonitor(embed(list(real_texts)), seed=config.seed)
    seen = {_normal(t) for t in real_texts}
    out, rejections = SyntheticData(), []
    with progress_bar(config.rounds, "synthesize", "round", config.progress) as bar:
        for round_ in range(config.rounds):
            requests = _prompts(template, labels, examples, feedback_note(rejections), round_, config)
            texts = generator.generate(requests)
            kept, rejections = _filter(requests, texts, labels, seen, labeler, config)
            # this round's texts alone: drift that earlier rounds would dilute shows, and is dropped with them
            mmd, limit = monitor.check(embed([t for t, _, _ in kept])) if kept else (0.0, 0.0)
            drifted = bool(kept) and mmd > limit
            reasons = Counter(r.reason.split(":")[0] for r in rejections)
            out.rounds.append(RoundReport(round_, len(texts), len(kept), dict(reasons), mmd, limit, drifted, template))
            bar.update(1)
            if drifted:
                out.stopped = f"round {round_}: drift {mmd:.4f} above threshold {limit:.4f}; its texts dropped"
                break
            for text, label, probs in kept:
                out.texts.append(text)
                out.labels.append(label)
                if probs is not None:
                    out.probabilities.append(probs)
                seen.add(_normal(text))
            if reviser is not None:
                template = reviser.revise(template, rejections)
    out.stopped = out.stopped or f"{config.rounds} rounds"
    return out


def _filter(requests: list[Request], texts: list[str], labels: Sequence[str], seen: set[str],
            labeler: Callable[[list[str]], np.ndarray] | None,
            config: SynthesisConfig) -> tuple[list[tuple[str, str, list[float] | None]], list[Rejection]]:  # fmt: skip
    if len(texts) != len(requests):
        raise ConfigError(f"the generator answered {len(texts)} of {len(requests)} requests")
    candidates, rejections, fresh = [], [], set()
    for request, text in zip(requests, texts, strict=True):
        reason = _why_rejected(text, request.label, seen | fresh, config)
        if reason:
            rejections.append(Rejection(request.label, text, reason))
        else:
            fresh.add(_normal(text))
            candidates.append((text, request.label))
    if labeler is None or not candidates:
        return [(t, lab, None) for t, lab in candidates], rejections
    probabilities = np.asarray(labeler([t for t, _ in candidates]))
    kept = []
    for (text, label), probs in zip(candidates, probabilities, strict=True):
        read_as = labels[int(np.argmax(probs))]
        if read_as != label:
            rejections.append(Rejection(label, text, f"teacher disagrees: read as '{read_as}'"))
        else:
            kept.append((text, label, [float(p) for p in probs]))
    return kept, rejections
