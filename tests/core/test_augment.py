"""The transfer set (suite.augment): neighbour swaps, typos and re-paired answers, deterministic per seed; the
offline MiniLM's word neighbours; and the pair pack giving it to KD students only, unlabelled."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from suite.augment import (
    TransferConfig,
    minilm_word_neighbours,
    neighbour_replacement,
    repaired_pairs,
    transfer_pairs,
    typo_variants,
)
from suite.errors import ConfigError

TABLE = {"water": ["liquid"], "boils": ["bubbles"], "steam": ["vapour"]}


def neighbours(words: list[str]) -> dict[str, list[str]]:
    return {w: TABLE[w] for w in words if w in TABLE}


def test_neighbour_replacement_swaps_content_words_only_and_is_deterministic():
    texts = ["the water boils into steam", "water and the kettle"]
    every = neighbour_replacement(texts, neighbours, rate=1.0, seed=0)
    assert every == ["the liquid bubbles into vapour", "liquid and the kettle"]  # 'the', 'and', 'kettle' stay
    some = neighbour_replacement(texts * 10, neighbours, rate=0.5, seed=1)
    assert some == neighbour_replacement(texts * 10, neighbours, rate=0.5, seed=1)
    assert 0 < sum("liquid" in t for t in some) < 20  # about half the time


def test_typos_and_repaired_pairs():
    noisy = typo_variants(["photosynthesis makes food"] * 3, seed=0)
    assert (
        noisy == typo_variants(["photosynthesis makes food"] * 3, seed=0) and noisy[0] != "photosynthesis makes food"
    )
    pairs = [("q1", "a1"), ("q1", "a2"), ("q2", "b1"), ("q3", "c1")]
    repaired = repaired_pairs(pairs, ["q1", "q1", "q2", "q3"], seed=0)
    assert [p[0] for p in repaired] == ["q1", "q1", "q2", "q3"]
    assert all(answer not in {"a1", "a2"} for q, answer in repaired[:2])  # never an answer to its own question
    assert repaired_pairs([("q", "a")], ["g"], seed=0) == [("q", "a")]  # one group: nothing else to borrow


def test_the_transfer_set_has_every_generators_copies():
    pairs, groups = [("water question", "it boils"), ("steam question", "water")], ["a", "b"]
    config = TransferConfig(neighbours=2, typos=1, repaired=1)
    assert len(transfer_pairs(pairs, groups, config, neighbours)) == 2 * 4
    with pytest.raises(ValueError, match="neighbours table"):
        transfer_pairs(pairs, groups, config)
    with pytest.raises(ConfigError, match="rate"):
        TransferConfig(rate=0.0)
    assert not TransferConfig().enabled


def test_minilm_neighbours_are_whole_words_near_in_meaning():
    table = minilm_word_neighbours(k=5)(["water", "zzzqqq"])
    assert set(table) == {"water"} and len(table["water"]) == 5 and "water" not in table["water"]
    assert all(w.isalpha() for w in table["water"])


def test_kd_students_get_the_transfer_set_unlabelled_and_the_no_kd_twin_does_not():
    from suite.augment import TransferConfig
    from suite.losses import SoftLabelKDConfig
    from suite.pair_pack import PairClassificationPack, PairTask
    from suite.runner import Variant
    from suite.students.text import build_vocab_tokenizer
    from suite.trainer import TrainerConfig

    tokenizer = build_vocab_tokenizer(["why does water boil", "it gets hot"] * 4, vocab_size=60)
    pack = object.__new__(PairClassificationPack)  # kd_items needs only these attributes
    train = [SimpleNamespace(text="why does water boil", text_pair="it gets hot", label=1)] * 3
    pack.task = PairTask(name="t", labels=["a", "b"], max_length=16, teacher="finetune", teacher_model="x",
                         teacher_trainer=TrainerConfig(), students={"tiny": TrainerConfig()}, seeds={"tiny": [0]},
                         variants={"kd": {"task": 0.5, "kd": 0.5}, "no_kd": {"task": 1.0}}, kd=SoftLabelKDConfig(),
                         tiny={}, transfer=TransferConfig(typos=1))  # fmt: skip
    pack.data = SimpleNamespace(train=train)
    pack.train_logits, pack.transfer = torch.zeros(3, 2), [("why does water boil", "it gets hto")] * 2
    pack.transfer_logits = torch.tensor([[1.0, -1.0], [1.0, -1.0]])
    kd = pack.kd_items(Variant("t_tiny_kd", "tiny", {"task": 0.5, "kd": 0.5}, [0], kd=True), tokenizer)
    plain = pack.kd_items(Variant("t_tiny_no_kd", "tiny", {"task": 1.0}, [0], kd=False), tokenizer)
    assert len(plain) == 3 and len(kd) == 5
    assert [i["label"] for i in kd] == [1, 1, 1, -100, -100] and kd[4]["teacher_logits"].tolist() == [1.0, -1.0]


def test_a_batch_of_unlabelled_items_gives_a_zero_task_loss_not_nan():
    from suite.losses import TaskLoss

    logits = torch.randn(2, 3, requires_grad=True)
    loss = TaskLoss()({"logits": logits}, None, {"labels": torch.tensor([-100, -100])})
    assert loss.item() == 0.0 and loss.requires_grad
