"""ERASER comprehensiveness / sufficiency of extractive rationales (suite.eval.eraser)."""

import numpy as np
import pytest

from suite.eval.eraser import cited_words, eraser_scores, keep_words, random_words, remove_words


def keyword_model(texts: list[str], pairs: list[str]) -> np.ndarray:
    """Class 1 ('flu') with probability 0.9 when 'fever' is in the case, else 0.2."""
    p = np.array([0.9 if "fever" in f"{t} {q}".lower() else 0.2 for t, q in zip(texts, pairs, strict=True)])
    return np.stack([1 - p, p], axis=1)


def test_cited_words_are_content_words_of_the_input_outside_the_frame():
    rationale = "the case mentions Fever, cough and rash, pointing to flu ."
    assert cited_words(rationale, "A case of fever and cough since Monday.") == {"fever", "cough"}


def test_remove_and_keep_split_the_text_on_whole_words():
    text = "Fever, feverish cough."
    assert remove_words(text, {"fever"}) == "feverish cough."
    assert keep_words(text, {"fever", "cough"}) == "Fever, cough."


def test_random_words_draw_as_many_content_words_as_asked():
    chosen = random_words(["fever cough rash headache", "pain"], [2, 3], seed=1)
    assert len(chosen[0]) == 2 and chosen[0] <= {"fever", "cough", "rash", "headache"}
    assert chosen[1] == {"pain"}  # never more than the text has


def test_citing_the_decisive_word_is_comprehensive_and_sufficient():
    texts = ["high fever and cough with tiredness", "fever after travel with muscle pain"]
    scores = eraser_scores(keyword_model, texts, ["", ""], ["mentions fever, pointing to flu ."] * 2)
    assert scores["eraser_cases"] == 2
    assert scores["comprehensiveness"] == pytest.approx(0.7)  # 0.9 -> 0.2 once 'fever' is gone
    assert scores["sufficiency"] == pytest.approx(0.0)  # 'fever' alone keeps 0.9
    assert scores["comprehensiveness_random"] < scores["comprehensiveness"]


def test_citing_an_irrelevant_word_is_neither():
    texts = ["high fever and cough with tiredness"]
    scores = eraser_scores(keyword_model, texts, [""], ["the case mentions cough, pointing to flu ."])
    assert scores["comprehensiveness"] == pytest.approx(0.0)
    assert scores["sufficiency"] == pytest.approx(0.7)


def test_evidence_in_the_second_text_of_a_pair_is_erased_there():
    scores = eraser_scores(keyword_model, ["is it flu?"], ["patient reports fever"], ["fever, so the answer is yes"])
    assert scores["comprehensiveness"] == pytest.approx(0.7)


def test_rationales_that_cite_nothing_are_left_out():
    assert eraser_scores(keyword_model, ["fever"], [""], ["pointing to flu ."]) == {"eraser_cases": 0.0}
