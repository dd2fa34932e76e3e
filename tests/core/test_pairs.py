"""Text-pair stages with a tiny learned tokenizer and a 1-layer, 8-dim student: encoding, ordered scoring, KD."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from suite.distiller import Distiller
from suite.losses import SoftLabelKDConfig, TaskLoss
from suite.pairs import (
    attach_teacher_logits,
    dev_accuracy,
    encode_pairs,
    item_labels,
    predict_proba,
    train_pair_student,
)
from suite.students import build_student
from suite.students.text import build_vocab_tokenizer
from suite.trainer import TrainerConfig

WORDS = ["water", "boat", "floats", "sinks", "dense", "light", "heavy", "because", "apple", "red"]


def toy_pairs(n: int, seed: int) -> tuple[list[tuple[str, str]], list[int]]:
    """("why", answer) pairs; the answer holds 'apple' in every other pair, at a random place."""
    rng = random.Random(seed)
    pairs, marked = [], []
    for i in range(n):
        answer = [rng.choice(WORDS[:8]) for _ in range(rng.randint(1, 4))]
        if i % 2:
            answer.insert(rng.randrange(len(answer) + 1), "apple")
        pairs.append(("why", " ".join(answer)))
        marked.append(i % 2)
    return pairs, marked


@pytest.fixture(scope="module")
def tokenizer():
    return build_vocab_tokenizer(["why does the boat float", *WORDS] * 2, vocab_size=200)


def tiny_student(tokenizer, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_student(
        "tiny-text-arch",
        vocab_size=len(tokenizer),
        num_labels=2,
        dim=8,
        heads=2,
        ffn=16,
        layers=1,
        max_len=32,
        dropout=0.0,
        pad_id=tokenizer.pad_token_id,
    )


def test_encode_pairs_truncates_and_keeps_labels(tokenizer, caplog):
    assert encode_pairs(tokenizer, [], [], max_length=8) == []
    pairs = [("why", "apple"), ("why does the boat float " * 4, "water is dense and heavy " * 4)]
    with caplog.at_level("WARNING", logger="suite.pairs"):
        items = encode_pairs(tokenizer, pairs, [1, 0], max_length=12)
    assert "1 of 2 pairs (50%) are longer than max_length=12 tokens" in caplog.text
    assert [item["label"] for item in items] == [1, 0]
    assert len(items[0]["input_ids"]) == 5  # [CLS] why [SEP] apple [SEP]
    assert len(items[1]["input_ids"]) == 12 and len(items[1]["attention_mask"]) == 12
    assert items[1]["input_ids"][0] == tokenizer.cls_token_id and items[1]["input_ids"][-1] == tokenizer.sep_token_id
    assert tokenizer.convert_ids_to_tokens(items[0]["input_ids"])[1:4] == ["why", "[SEP]", "apple"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="suite.pairs"):
        encode_pairs(tokenizer, [("why", "apple")], [1], max_length=5)  # exactly max_length: nothing was cut
    assert "truncated" not in caplog.text


def test_predict_proba_returns_rows_in_input_order(tokenizer):
    student = tiny_student(tokenizer)
    pairs = [
        ("why", "water " * 9),
        ("why", "apple"),
        ("why", "boat " * 4),
        ("why", "dense light"),
        ("why", "red " * 7),
    ]
    items = encode_pairs(tokenizer, pairs, [0] * len(pairs), max_length=32)
    lengths = [len(item["input_ids"]) for item in items]
    assert lengths != sorted(lengths) and len(set(lengths)) == len(lengths)

    probs = predict_proba(student, tokenizer, items, batch_size=2)
    alone = np.concatenate([predict_proba(student, tokenizer, [item]) for item in items])
    assert probs.shape == (5, 2)
    np.testing.assert_allclose(probs, alone, atol=1e-5)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)
    assert np.abs(alone[0] - alone[1]).max() > 1e-4  # rows differ, so a wrong order could not pass
    assert predict_proba(student, tokenizer, []).shape[0] == 0


def test_attach_teacher_logits_checks_lengths(tokenizer):
    items = encode_pairs(tokenizer, [("a", "b"), ("c", "d"), ("e", "f")], [0, 1, 0], max_length=8)
    with pytest.raises(ValueError, match="2 teacher logit rows for 3 items"):
        attach_teacher_logits(items, torch.zeros(2, 2))
    attached = attach_teacher_logits(items, torch.arange(6.0).view(3, 2))
    assert attached[2]["teacher_logits"].tolist() == [4.0, 5.0] and "teacher_logits" not in items[0]


def config(tmp_path, **changes) -> TrainerConfig:
    options = dict(epochs=1, batch_size=8, lr=1e-2, progress=False, tensorboard=False, output_dir=str(tmp_path))
    return TrainerConfig(**{**options, **changes})


def test_kd_without_teacher_logits_is_an_error(tokenizer, tmp_path):
    pairs, marked = toy_pairs(8, seed=0)
    items = encode_pairs(tokenizer, pairs, marked, max_length=32)
    with pytest.raises(ValueError, match="teacher_logits"):
        train_pair_student(
            tiny_student(tokenizer), tokenizer, items, [], config(tmp_path), terms={"task": 0.5, "kd": 0.5}
        )
    with pytest.raises(ValueError, match=r"unknown loss terms \['rkd'\]"):
        train_pair_student(tiny_student(tokenizer), tokenizer, items, [], config(tmp_path), terms={"rkd": 1.0})


def kl(teacher_logits: torch.Tensor, student_probs: np.ndarray) -> float:
    """Mean KL(p_teacher || p_student) over rows."""
    p = teacher_logits.softmax(-1).double()
    q = torch.from_numpy(student_probs).double()
    return float((p * (p.log() - q.log())).sum(-1).mean())


def test_kd_with_alpha_zero_moves_the_student_toward_the_teacher(tokenizer, tmp_path):
    pairs, marked = toy_pairs(32, seed=1)
    # The teacher says "correct" iff the answer holds 'apple'; the hard labels say the opposite. With the KD term alone
    # (alpha=0), so the student must follow the teacher, not the labels.
    teacher = torch.tensor([[-1.5, 1.5] if m else [1.5, -1.5] for m in marked])
    labels = [1 - m for m in marked]
    items = attach_teacher_logits(encode_pairs(tokenizer, pairs, labels, max_length=32), teacher)
    student = tiny_student(tokenizer)
    before = kl(teacher, predict_proba(student, tokenizer, items))

    train_pair_student(
        student,
        tokenizer,
        items,
        [],
        config(tmp_path, epochs=6, lr=3e-2, warmup_ratio=0.0, schedule="constant"),
        terms={"kd": 1.0},
        kd=SoftLabelKDConfig(temperature=1.0),
    )
    probs = predict_proba(student, tokenizer, items)
    after = kl(teacher, probs)
    assert after < 0.5 * before
    assert (probs.argmax(-1) == np.array(marked)).mean() >= 0.9  # agrees with the teacher, not the labels


def test_dev_accuracy(tokenizer):
    assert dev_accuracy(tokenizer, []) is None
    pairs, marked = toy_pairs(6, seed=2)
    dev = encode_pairs(tokenizer, pairs, marked, max_length=32)
    student = tiny_student(tokenizer)
    evaluate = dev_accuracy(tokenizer, dev)
    expected = float((predict_proba(student, tokenizer, dev).argmax(-1) == item_labels(dev)).mean())
    assert evaluate(Distiller(student, {"task": TaskLoss()}, {"task": 1.0})) == {"accuracy": expected}


def test_one_teacher_through_the_multi_teacher_term_trains_exactly_like_soft_label_kd(tokenizer, tmp_path):
    from suite.losses import MultiTeacherConfig

    pairs, marked = toy_pairs(16, seed=3)
    teacher = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    items = encode_pairs(tokenizer, pairs, marked, max_length=32)
    trained = []
    for name, logits, multi in (("plain", teacher, None), ("multi", teacher.unsqueeze(1), MultiTeacherConfig(2.0))):
        student = tiny_student(tokenizer)
        train_pair_student(student, tokenizer, attach_teacher_logits(items, logits), [], config(tmp_path / name),
                           terms={"task": 0.5, "kd": 0.5}, kd=SoftLabelKDConfig(2.0), multi=multi)  # fmt: skip
        trained.append(student)
    for a, b in zip(trained[0].state_dict().values(), trained[1].state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-3)  # equal up to Adam amplifying float rounding of tiny gradients


def test_an_ensemble_student_follows_the_teachers_that_give_the_true_label(tokenizer, tmp_path):
    from suite.losses import MultiTeacherConfig

    pairs, marked = toy_pairs(32, seed=4)
    right = torch.tensor([[-2.0, 2.0] if m else [2.0, -2.0] for m in marked])
    teachers = torch.stack([right, -right], dim=1)  # (N, K=2, C): one teacher right, one always wrong
    items = attach_teacher_logits(encode_pairs(tokenizer, pairs, marked, max_length=32), teachers)
    student = tiny_student(tokenizer)
    train_pair_student(student, tokenizer, items, [], config(tmp_path, epochs=6, lr=3e-2, warmup_ratio=0.0,
                       schedule="constant"), terms={"kd": 1.0},
                       multi=MultiTeacherConfig(temperature=1.0, weighting="ground_truth", sharpness=0.5))  # fmt: skip
    probs = predict_proba(student, tokenizer, items)
    assert (probs.argmax(-1) == np.array(marked)).mean() >= 0.9  # equal weights would leave it at 50 / 50


def test_a_diverging_sgld_chain_names_its_step_size_and_leaves_the_student_as_trained(tokenizer):
    """SGLD's step on the dataset's energy (N x the batch mean) blows up above some step size; the chain must stop
    with the setting to change, not return NaN probabilities that every metric then reads."""
    from suite.errors import ConfigError
    from suite.pairs import PosteriorConfig, posterior_predictions

    pairs, marked = toy_pairs(16, seed=3)
    items = attach_teacher_logits(encode_pairs(tokenizer, pairs, marked, max_length=32), torch.randn(16, 2))
    student = tiny_student(tokenizer)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    huge = PosteriorConfig(samples=2, burn_in=5, thin=5, lr=1e6, batch_size=8)
    with pytest.raises(ConfigError, match=r"posterior.lr: SGLD diverged at step \d+ .* with lr 1e\+06"):
        posterior_predictions(student, tokenizer, items, {"task": 1.0, "prior": 3.0}, {"dev": items}, huge)
    assert all(torch.equal(v, before[k]) for k, v in student.state_dict().items())
    small = PosteriorConfig(samples=2, burn_in=5, thin=5, lr=1e-6, batch_size=8)
    samples = posterior_predictions(student, tokenizer, items, {"task": 1.0, "prior": 3.0}, {"dev": items}, small)
    assert samples["dev"].shape == (2, 16, 2) and np.isfinite(samples["dev"]).all()
