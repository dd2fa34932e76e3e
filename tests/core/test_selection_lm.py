"""Language-model selectors: the n-gram LM is a proper distribution, perplexity filtering drops garbled text, and
Moore-Lewis picks the in-domain texts out of a mix; a local Hugging Face causal LM scores text the same way."""

from __future__ import annotations

import math

import pytest

from suite.selection.lm import HFCausalLM, NgramLM, moore_lewis, perplexity_filter

CLINICAL = [
    "the patient reports chest pain and shortness of breath",
    "the patient denies fever and reports a mild cough",
    "chest pain radiating to the left arm with sweating",
    "the patient has a history of hypertension and diabetes",
    "shortness of breath worse when lying flat at night",
    "mild cough with fever for three days",
]
GENERAL = [
    "the match ended with a late goal from the home side",
    "prices rose again this quarter across most markets",
    "the film opens with a long shot of the empty city",
    "the recipe needs two eggs and a cup of flour",
]


def test_ngram_probabilities_sum_to_one_over_the_vocabulary_and_unknown_words():
    lm = NgramLM(CLINICAL)
    vocabulary = list(lm.counts[0]) + ["<an unseen word>"]
    for history in (("<s>", "<s>"), ("the", "patient"), ("never", "seen")):
        assert sum(lm.probability(*history, w) for w in vocabulary) == pytest.approx(1.0, abs=1e-9)


def test_perplexity_filter_drops_garbled_text_and_says_by_how_much():
    lm = NgramLM(CLINICAL * 3)
    texts = ["the patient reports chest pain", "zxq flarb wibble pain zork", "mild cough with fever"]
    selection = perplexity_filter(texts, lm, keep=2)
    assert selection.kept == [0, 2] and selection.removed[1].startswith("perplexity")
    perplexities = [math.exp(lm.cross_entropy(t)) for t in texts]
    threshold = max(perplexities[0], perplexities[2]) + 1
    assert perplexities[1] > threshold
    assert perplexity_filter(texts, lm, max_perplexity=threshold).kept == [0, 2]
    with pytest.raises(ValueError, match="exactly one"):
        perplexity_filter(texts, lm)


def test_moore_lewis_keeps_the_in_domain_half_of_a_mix():
    in_domain, general = NgramLM(CLINICAL), NgramLM(GENERAL)
    mix = ["the patient reports a cough and fever", "the match ended with a goal",
           "chest pain and shortness of breath", "prices rose across the markets"]  # fmt: skip
    selection = moore_lewis(mix, in_domain, general, keep=0.5)
    assert selection.kept == [0, 2] and "cross-entropy difference" in selection.removed[1]


def test_a_local_causal_lm_folder_scores_text(tmp_path):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from suite import hub

    tokenizer = hub.load_tokenizer("minilm-l6")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_layer=1, n_embd=32, n_head=2, n_positions=64))
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    lm = HFCausalLM(str(tmp_path))
    score = lm.cross_entropy("the patient reports chest pain")
    assert math.log(len(tokenizer)) - 1 < score < math.log(len(tokenizer)) + 1  # an untrained model: ~uniform
    assert len(perplexity_filter(CLINICAL, lm, keep=3).kept) == 3
