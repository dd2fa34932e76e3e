"""Task metrics against hand-computed values and their reference implementations (sklearn, sacrebleu)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import cohen_kappa_score

from suite.eval import (
    accuracy,
    bleu,
    distinct_n,
    exact_match,
    macro_f1,
    normalize_answer,
    paraphrase_agreement,
    perplexity,
    quadratic_weighted_kappa,
    rouge,
    self_bleu,
    token_f1,
)

# --- classification ------------------------------------------------------------------------------------------------


def test_accuracy_and_macro_f1_hand_case():
    labels, preds = [0, 0, 1, 1, 2], [0, 1, 1, 1, 0]
    assert accuracy(preds, labels) == pytest.approx(3 / 5)
    # class 0: P = R = 1/2 -> F1 1/2; class 1: P = 2/3, R = 1 -> F1 4/5; class 2: no hit -> 0
    assert macro_f1(preds, labels) == pytest.approx((0.5 + 0.8 + 0.0) / 3)


def test_qwk_hand_computed():
    # O = [[1,0,0],[0,0,1],[0,1,1]], marginals (1,1,2) both ways, E = r c^T / 4, w_ij = (i-j)^2 / 4:
    # sum wO = 0.5, sum wE = 1.375 -> kappa = 1 - 0.5 / 1.375 = 7/11
    labels, preds = [0, 1, 2, 2], [0, 2, 2, 1]
    assert quadratic_weighted_kappa(preds, labels) == pytest.approx(7 / 11)
    assert quadratic_weighted_kappa(preds, labels) == pytest.approx(
        cohen_kappa_score(labels, preds, weights="quadratic")
    )


def test_qwk_counts_unused_middle_ratings():
    # rating 2 never occurs: sklearn's default label list [0, 1, 3] would put 3 at distance 2 from 0, not 3
    labels, preds = [0, 1, 3, 3, 1], [1, 1, 3, 0, 3]
    expected = cohen_kappa_score(labels, preds, labels=[0, 1, 2, 3], weights="quadratic")
    assert quadratic_weighted_kappa(preds, labels) == pytest.approx(expected)
    assert expected != pytest.approx(cohen_kappa_score(labels, preds, weights="quadratic"))
    assert quadratic_weighted_kappa(preds, labels, rating_range=(0, 3)) == pytest.approx(expected)


def test_qwk_perfect_agreement_is_one():
    assert quadratic_weighted_kappa([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1.0)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="predictions has 2 items"):
        accuracy([0, 1], [0, 1, 1])


# --- question answering ----------------------------------------------------------------------------------------------


def test_squad_normalisation():
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert normalize_answer("an apple, a pear") == "apple pear"


def test_exact_match_and_token_f1_squad_examples():
    preds = ["the Eiffel Tower", "in Paris, France"]
    refs = ["Eiffel Tower.", "Paris"]
    assert exact_match(preds, refs) == pytest.approx(0.5)
    # second pair: tokens [in, paris, france] vs [paris] -> P = 1/3, R = 1, F1 = 1/2
    assert token_f1(preds, refs) == pytest.approx((1.0 + 0.5) / 2)


def test_qa_metrics_take_the_best_reference():
    assert exact_match(["Paris"], [["Lyon", "paris"]]) == 1.0
    assert token_f1(["big red dog"], [["cat", "red dog"]]) == pytest.approx(0.8)  # P = 2/3, R = 1


def test_token_f1_empty_answers():
    assert token_f1(["the"], [""]) == 1.0  # both normalise to nothing: SQuAD v2 counts that as agreement
    assert token_f1(["yes"], [""]) == 0.0


# --- language modelling ---------------------------------------------------------------------------------------------


def test_perplexity_from_mean_nll_and_token_logprobs():
    assert perplexity(mean_nll=math.log(7.0)) == pytest.approx(7.0)
    assert perplexity(token_logprobs=[math.log(0.5), math.log(0.25)]) == pytest.approx(2**1.5)
    # ragged per-text lists pool all tokens: nll = (ln 2 + 2 ln 4) / 3
    ragged = [[math.log(0.5)], [math.log(0.25), math.log(0.25)]]
    assert perplexity(token_logprobs=ragged) == pytest.approx(2 ** (5 / 3))


def test_perplexity_of_uniform_model_is_vocab_size():
    logprobs = torch.full((3, 5), -math.log(50.0))
    assert perplexity(token_logprobs=logprobs) == pytest.approx(50.0)
    assert perplexity(token_logprobs=np.log(np.full(4, 0.1))) == pytest.approx(10.0)


def test_perplexity_needs_exactly_one_input():
    with pytest.raises(ValueError, match="exactly one"):
        perplexity()
    with pytest.raises(ValueError, match="exactly one"):
        perplexity(mean_nll=1.0, token_logprobs=[-1.0])


# --- generation ------------------------------------------------------------------------------------------------------


def test_bleu_identical_is_100():
    texts = ["the quick brown fox jumps over the lazy dog", "a distilled student answers fast"]
    assert bleu(texts, texts) == pytest.approx(100.0)


def test_bleu_sacrebleu_readme_example():
    # sacrebleu README: two reference streams -> BLEU = 48.53
    hyps = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
    refs = [
        ["The dog bit the man.", "The dog had bit the man."],
        ["It was not unexpected.", "No one was surprised."],
        ["The man bit him first.", "The man had bitten the dog."],
    ]
    assert bleu(hyps, refs) == pytest.approx(48.53, abs=0.01)


def test_bleu_allows_a_varying_number_of_references():
    hyps = ["The dog bit the man.", "It wasn't surprising."]
    refs = [["The dog bit the man.", "The dog had bit the man."], "No one was surprised."]
    assert 0.0 < bleu(hyps, refs) < 100.0


def test_rouge_hand_computed():
    # pred 3 tokens, ref 6 tokens, all pred unigrams/bigrams in ref:
    # ROUGE-1 P = 1, R = 3/6 -> 2/3; ROUGE-2 P = 2/2, R = 2/5 -> 4/7; ROUGE-L LCS = 3 -> 2/3
    scores = rouge(["the cat sat"], ["the cat sat on the mat"])
    assert scores == pytest.approx({"rouge1": 2 / 3, "rouge2": 4 / 7, "rougeL": 2 / 3})


def test_rouge_averages_over_pairs():
    scores = rouge(["the cat sat", "completely different words"], ["the cat sat", "nothing shared here"])
    assert scores["rouge1"] == pytest.approx(0.5)


def test_distinct_n_hand_case():
    texts = ["a b a b", "a b c"]
    # bigrams: ab ba ab | ab bc -> 3 unique of 5; unigrams: 3 unique of 7
    assert distinct_n(texts, 2) == pytest.approx(3 / 5)
    assert distinct_n(texts, 1) == pytest.approx(3 / 7)
    assert distinct_n(["one"], 2) == 0.0


def test_self_bleu_repetitive_set_is_higher():
    same = ["the cat sat on the mat today"] * 3
    varied = ["the cat sat on the mat today", "quantum fields obey gauge symmetry", "please pass the salt now"]
    assert self_bleu(same) == pytest.approx(100.0)
    assert self_bleu(varied) < 20.0


def test_paraphrase_agreement_all_or_nothing_per_prompt():
    answers = [["Paris", "paris."], ["4", "four"], ["yes", "Yes", "YES!"]]
    assert paraphrase_agreement(answers) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="at least 2"):
        paraphrase_agreement([["only one"]])
