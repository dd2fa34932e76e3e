"""Perturbations (seeded, pure, actually changing text), the registry, and ASR / PDR (survey Eq. 26-27)."""

from __future__ import annotations

import math
import random

import pytest

from suite.errors import RegistryError
from suite.eval import (
    PERTURBATIONS,
    attack_success_rate,
    evaluate_robustness,
    performance_drop_rate,
    perturb,
    register_perturbation,
    robustness,
)

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Distilled students should stay accurate under noise",
    "Is this review positive or negative?",
]


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_perturbation_is_deterministic_and_changes_text(name):
    first, again = perturb(TEXTS, name, seed=3), perturb(TEXTS, name, seed=3)
    assert first == again
    assert all(p != t for p, t in zip(first, TEXTS, strict=True))


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_perturbation_depends_on_seed_and_not_on_other_texts(name):
    outputs = {tuple(perturb(TEXTS, name, seed=s)) for s in range(6)}
    assert len(outputs) > 1
    assert perturb(TEXTS[:1], name, seed=3) == perturb(TEXTS, name, seed=3)[:1]


def test_perturbations_are_pure_functions_of_the_rng():
    fn = PERTURBATIONS["char_typos"]
    assert fn(TEXTS[0], random.Random(7)) == fn(TEXTS[0], random.Random(7))


def test_word_level_perturbations_keep_or_drop_words_as_documented():
    deleted = perturb(["a b c d e f g h i j"], "word_deletion", seed=0)[0].split()
    assert len(deleted) == 9 and set(deleted) < set("abcdefghij")
    swapped = perturb(["a b c d e f g h i j"], "word_swap", seed=0)[0].split()
    assert sorted(swapped) == list("abcdefghij") and swapped != list("abcdefghij")
    assert perturb(["Hello World"], "casing_noise", seed=0)[0].lower() == "hello world"


def test_register_perturbation_and_duplicates(monkeypatch):
    monkeypatch.setattr(robustness, "PERTURBATIONS", dict(robustness.PERTURBATIONS))
    register_perturbation("shout", lambda text, rng: text.upper() + "!")
    assert perturb(["hi there"], "shout") == ["HI THERE!"]
    with pytest.raises(RegistryError, match="registered twice"):
        register_perturbation("shout", lambda text, rng: text)
    with pytest.raises(RegistryError, match="registered twice"):
        register_perturbation("char_typos", lambda text, rng: text)
    with pytest.raises(RegistryError, match="unknown perturbation 'nope'"):
        perturb(["x"], "nope")


def test_attack_success_rate_and_pdr_hand_case():
    labels = [0, 1, 1, 0, 1]
    clean = [0, 1, 0, 0, 1]  # right on 0, 1, 3, 4
    perturbed = [0, 0, 1, 1, 1]  # 1 and 3 flip to wrong; 2 becoming right does not count
    assert attack_success_rate(labels, clean, perturbed) == pytest.approx(2 / 4)
    assert performance_drop_rate(0.8, 0.6) == pytest.approx(0.25)
    assert performance_drop_rate(0.5, 0.6) == pytest.approx(-0.2)


def test_undefined_rates_are_nan():
    assert math.isnan(attack_success_rate([1, 1], [0, 0], [1, 1]))
    assert math.isnan(performance_drop_rate(0.0, 0.0))


def test_evaluate_robustness_end_to_end():
    labels = [0, 1, 2]
    lookup = dict(zip(TEXTS, labels, strict=True))

    def memoriser(texts):  # right only on exactly the texts it has seen
        return [lookup.get(t, -1) for t in texts]

    def case_blind(texts):
        return [labels[[t.lower() for t in TEXTS].index(t.lower())] for t in texts]

    report = evaluate_robustness(memoriser, TEXTS, labels, ["char_typos", "distracting_prefix"], seed=1)
    assert report["clean"] == {"accuracy": 1.0}
    for name in ("char_typos", "distracting_prefix"):
        assert report[name] == pytest.approx(
            {"accuracy": 0.0, "attack_success_rate": 1.0, "performance_drop_rate": 1.0}
        )
    blind = evaluate_robustness(case_blind, TEXTS, labels, ["casing_noise"], seed=1)
    assert blind["casing_noise"] == pytest.approx(
        {"accuracy": 1.0, "attack_success_rate": 0.0, "performance_drop_rate": 0.0}
    )
