r"""Task metrics (survey section 6.1, "Performance Metrics"): classification, QA, language modelling, generation.

Scales follow the library each metric comes from: :func:`bleu` and :func:`self_bleu` are sacrebleu's 0-100; every
other metric here is a fraction in [0, 1]. References for generation and QA metrics are given per prediction, as
one string or a list of acceptable strings. sklearn, sacrebleu and rouge-score are imported inside the functions
that use them, so importing this module stays cheap.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np
import torch

from suite.eval._arrays import as_numpy, check_same_length

References = Sequence[str | Sequence[str]]


def _reference_lists(references: References) -> list[list[str]]:
    return [[ref] if isinstance(ref, str) else list(ref) for ref in references]


# ---- classification -------------------------------------------------------------------------------------------------


def accuracy(predictions: Sequence[Hashable], labels: Sequence[Hashable]) -> float:
    r"""Share of exact label matches, :math:`\frac{1}{N}\sum_i I[\hat y_i = y_i]` (sklearn ``accuracy_score``)."""
    from sklearn.metrics import accuracy_score

    check_same_length(predictions, labels, "predictions", "labels")
    return float(accuracy_score(labels, predictions))


def macro_f1(predictions: Sequence[Hashable], labels: Sequence[Hashable]) -> float:
    r"""Unweighted mean over classes of :math:`F_1 = 2PR/(P+R)` (``sklearn.metrics.f1_score(average="macro")``).

    Classes are those present in ``labels`` or ``predictions``; a class that only ever appears as a prediction gets
    F1 = 0 (``zero_division=0``), so predicting a class that never occurs is penalised.
    """
    from sklearn.metrics import f1_score

    check_same_length(predictions, labels, "predictions", "labels")
    return float(f1_score(labels, predictions, average="macro", zero_division=0))


def quadratic_weighted_kappa(
    predictions: Sequence[int], labels: Sequence[int], rating_range: tuple[int, int] | None = None
) -> float:
    r"""Cohen's kappa with quadratic weights (QWK), the agreement metric of ordinal scoring tasks (ASAP essays).

    .. math:: \kappa = 1 - \frac{\sum_{ij} w_{ij} O_{ij}}{\sum_{ij} w_{ij} E_{ij}}, \qquad
              w_{ij} = \frac{(i-j)^2}{(K-1)^2}

    with :math:`O` the confusion matrix and :math:`E` the outer product of its marginals divided by N (Cohen 1968).
    Computed by ``sklearn.metrics.cohen_kappa_score(weights="quadratic")`` over every integer rating in
    ``rating_range`` (inclusive; default: min to max of both inputs). sklearn weights by the *position* in its label
    list, so an unused middle rating would otherwise shrink the distances around it; listing the full range gives the
    Kaggle/ASAP definition.
    """
    from sklearn.metrics import cohen_kappa_score

    check_same_length(predictions, labels, "predictions", "labels")
    low, high = rating_range or (min(*predictions, *labels), max(*predictions, *labels))
    return float(cohen_kappa_score(labels, predictions, labels=list(range(low, high + 1)), weights="quadratic"))


# ---- question answering (SQuAD v1.1 evaluation script, Rajpurkar et al. 2016) ------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower-case, drop punctuation and the articles a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:  # SQuAD v2 convention: two empty answers agree, one empty answer scores 0
        return float(pred == ref)
    overlap = sum((Counter(pred) & Counter(ref)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


def exact_match(predictions: Sequence[str], references: References) -> float:
    """Share of predictions equal to any of their references after :func:`normalize_answer` (SQuAD EM, 0-1)."""
    check_same_length(predictions, references, "predictions", "references")
    refs = _reference_lists(references)
    hits = [normalize_answer(p) in {normalize_answer(r) for r in rs} for p, rs in zip(predictions, refs, strict=True)]
    return float(np.mean(hits))


def token_f1(predictions: Sequence[str], references: References) -> float:
    r"""SQuAD token F1: bag-of-tokens overlap of normalised answers, max over references, mean over examples.

    .. math:: P = \frac{|\hat a \cap a|}{|\hat a|},\quad R = \frac{|\hat a \cap a|}{|a|},\quad F_1 = \frac{2PR}{P+R}

    with :math:`\cap` the multiset intersection of tokens.
    """
    check_same_length(predictions, references, "predictions", "references")
    refs = _reference_lists(references)
    return float(np.mean([max(_token_f1(p, r) for r in rs) for p, rs in zip(predictions, refs, strict=True)]))


# ---- language modelling -------------------------------------------------------------------------------------------


def perplexity(
    *,
    mean_nll: float | None = None,
    token_logprobs: Sequence[float] | Sequence[Sequence[float]] | np.ndarray | torch.Tensor | None = None,
) -> float:
    r"""Perplexity :math:`\exp\big(-\frac{1}{N}\sum_{t=1}^{N} \log p(x_t \mid x_{<t})\big)` (natural log).

    Pass exactly one of ``mean_nll`` (the mean token negative log-likelihood in nats, e.g. a causal LM's loss) or
    ``token_logprobs`` (log-probabilities of the observed tokens: a flat sequence, one sequence per text, or an
    array; every entry counts as a token, so drop padding first). Ragged per-text lists are pooled over all tokens
    (corpus perplexity), not averaged per text.
    """
    if (mean_nll is None) == (token_logprobs is None):
        raise ValueError("pass exactly one of mean_nll or token_logprobs")
    if token_logprobs is not None:
        if isinstance(token_logprobs, np.ndarray | torch.Tensor):
            flat = as_numpy(token_logprobs).ravel()
        elif len(token_logprobs) and isinstance(token_logprobs[0], Sequence | np.ndarray | torch.Tensor):
            flat = np.concatenate([as_numpy(seq).ravel() for seq in token_logprobs])
        else:
            flat = as_numpy(token_logprobs)
        if flat.size == 0:
            raise ValueError("token_logprobs is empty")
        mean_nll = -float(flat.mean())
    return math.exp(mean_nll)


# ---- generation ---------------------------------------------------------------------------------------------------


def bleu(hypotheses: Sequence[str], references: References) -> float:
    """Corpus BLEU (Papineni et al. 2002) via ``sacrebleu.corpus_bleu`` with its defaults (13a tokenizer, exp
    smoothing), 0-100.

    Each hypothesis may have several references; hypotheses with fewer references than others are padded with
    ``None``, which sacrebleu skips.
    """
    import sacrebleu

    check_same_length(hypotheses, references, "hypotheses", "references")
    refs = _reference_lists(references)
    width = max(len(rs) for rs in refs)
    streams = [[rs[k] if k < len(rs) else None for rs in refs] for k in range(width)]
    return float(sacrebleu.corpus_bleu(list(hypotheses), streams).score)


ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def rouge(
    predictions: Sequence[str],
    references: References,
    rouge_types: Sequence[str] = ROUGE_TYPES,
    use_stemmer: bool = True,
) -> dict[str, float]:
    r"""Mean ROUGE F-measures (Lin 2004) via Google's ``rouge-score``: ``{"rouge1": F1, "rouge2": F1, "rougeL": F1}``.

    ROUGE-n F1 is the harmonic mean of n-gram precision :math:`|\hat g \cap g| / |\hat g|` and recall
    :math:`|\hat g \cap g| / |g|`; ROUGE-L uses the longest common subsequence instead of n-gram overlap.
    Porter stemming is on by default, as with ROUGE-1.5.5's ``-m`` used in summarisation papers. With several
    references, each prediction takes its best-scoring one (``score_multi``).
    """
    from rouge_score import rouge_scorer

    check_same_length(predictions, references, "predictions", "references")
    scorer = rouge_scorer.RougeScorer(list(rouge_types), use_stemmer=use_stemmer)
    totals = dict.fromkeys(rouge_types, 0.0)
    for prediction, refs in zip(predictions, _reference_lists(references), strict=True):
        scores = scorer.score_multi(refs, prediction)
        for name in rouge_types:
            totals[name] += scores[name].fmeasure
    return {name: total / len(predictions) for name, total in totals.items()}


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct-n (Li et al. 2016): unique n-grams / total n-grams over all texts (whitespace tokens, case kept).

    Higher means more diverse output; 0 when no text has n tokens.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    ngrams = [tuple(words[i : i + n]) for words in (t.split() for t in texts) for i in range(len(words) - n + 1)]
    return len(set(ngrams)) / len(ngrams) if ngrams else 0.0


def self_bleu(texts: Sequence[str]) -> float:
    """Self-BLEU (Zhu et al. 2018, Texygen): mean sentence BLEU of each text against all the others, 0-100.

    The survey describes it as BLEU of a generation "against itself"; the standard definition scores each
    generation against the rest of the set, which is what this computes. Higher means more repetitive output.
    Uses ``sacrebleu.sentence_bleu`` (exp smoothing, effective order).
    """
    import sacrebleu

    if len(texts) < 2:
        raise ValueError(f"self_bleu needs at least 2 texts, got {len(texts)}")
    scores = [sacrebleu.sentence_bleu(t, [*texts[:i], *texts[i + 1 :]]).score for i, t in enumerate(texts)]
    return float(np.mean(scores))


def paraphrase_agreement(answers_per_prompt: Sequence[Sequence[str]]) -> float:
    """Consistency as agreement rate (survey 6.1): the share of prompts whose paraphrases all get the same answer.

    ``answers_per_prompt[i]`` holds the model's answers to the paraphrases of prompt i. A prompt counts as
    consistent when every answer is identical after :func:`normalize_answer` (so "Paris." and "paris" agree);
    all-or-nothing per prompt, not pairwise. Each prompt needs at least two paraphrases.
    """
    if not answers_per_prompt:
        raise ValueError("answers_per_prompt is empty")
    agreed = 0
    for i, answers in enumerate(answers_per_prompt):
        if len(answers) < 2:
            raise ValueError(f"prompt {i} has {len(answers)} answers; agreement needs at least 2 paraphrases")
        agreed += len({normalize_answer(a) for a in answers}) == 1
    return agreed / len(answers_per_prompt)
