"""Self-distillation with shallow exits (Zhang et al. 2019) and deep mutual learning (Zhang et al. 2018): weight-0
exits are plain training, the deepest output teaches without being taught, and exits learn to answer early."""

from __future__ import annotations

import pytest
import torch

from suite.distiller import Distiller
from suite.errors import ConfigError
from suite.losses import TaskLoss
from suite.losses.self_distillation import ShallowExits, ShallowExitsConfig, exit_loss, mutual_learning_losses
from suite.students.text import TinyTextClassifier


def student() -> TinyTextClassifier:
    torch.manual_seed(0)
    return TinyTextClassifier(vocab_size=30, num_labels=2, dim=16, layers=2, max_len=12, dropout=0.0, pad_id=0)


def batch(n: int = 16, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 30, (n, 10), generator=g)
    labels = (ids[:, 0] > 16).long()  # the first token decides: learnable from any layer
    return {"inputs": {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, "labels": labels}


def grads(distiller: Distiller, data: dict) -> list[torch.Tensor]:
    distiller.zero_grad()
    distiller(data)["loss"].backward()
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in distiller.student.parameters()]


def test_exits_with_weight_zero_are_plain_training():
    data = batch()
    plain = Distiller(student(), {"task": TaskLoss()}, {"task": 1.0})
    exits = Distiller(student(), {"task": TaskLoss(), "exits": ShallowExits(16, 2)}, {"task": 1.0, "exits": 0.0})
    for a, b in zip(grads(plain, data), grads(exits, data), strict=True):
        assert torch.equal(a, b)


def test_the_deepest_output_teaches_but_is_not_taught():
    model, data = student(), batch()
    distiller = Distiller(model, {"exits": ShallowExits(16, 2, ShallowExitsConfig(layers=[1]))}, {"exits": 1.0})
    grads(distiller, data)
    assert all(p.grad is None or not p.grad.any() for p in model.head.parameters())  # the deepest head: untouched
    assert model.layers[0].qkv.weight.grad.abs().sum() > 0  # the exit's hint and CE reach layer 1


def test_exits_learn_to_answer_early():
    model, data = student(), batch(64)
    term = ShallowExits(16, 2, ShallowExitsConfig(layers=[1], alpha=0.0, hint=0.0))
    distiller = Distiller(model, {"task": TaskLoss(), "exits": term}, {"task": 1.0, "exits": 1.0})
    optimizer = torch.optim.Adam(distiller.trainable_parameters(), lr=1e-2)
    for _ in range(60):
        optimizer.zero_grad()
        distiller(data)["loss"].backward()
        optimizer.step()
    with torch.no_grad():
        out = model(**data["inputs"])
        early = term.exit_logits(out["hidden_states"], data["inputs"]["attention_mask"])[1]
    assert (early.argmax(-1) == data["labels"]).float().mean() >= 0.9


def test_an_exit_equal_to_the_deepest_has_only_its_cross_entropy():
    logits, features, labels = torch.randn(4, 3), torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
    config = ShallowExitsConfig(alpha=0.5, hint=1.0)
    ce = torch.nn.functional.cross_entropy(logits, labels)
    assert exit_loss(logits, features, logits, features, labels, config).item() == pytest.approx(0.5 * ce.item())


def test_mutual_learning_is_symmetric_and_each_side_learns_only_from_the_other():
    a, b = torch.randn(5, 3, requires_grad=True), torch.randn(5, 3, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 1, 0])
    loss_a, loss_b = mutual_learning_losses(a, b, labels)
    (grad_b_from_a,) = torch.autograd.grad(loss_a, b, allow_unused=True)
    assert grad_b_from_a is None  # the other's prediction is a fixed target
    same_a, same_b = mutual_learning_losses(a, a.detach().clone(), labels)
    ce = torch.nn.functional.cross_entropy(a, labels)
    assert same_a.item() == pytest.approx(ce.item(), abs=1e-6) and same_b.item() == pytest.approx(ce.item(), abs=1e-6)
    swapped = mutual_learning_losses(b, a, labels)
    assert swapped[0].item() == pytest.approx(loss_b.item()) and swapped[1].item() == pytest.approx(loss_a.item())


def test_bad_exit_settings_are_refused():
    with pytest.raises(ConfigError, match="alpha"):
        ShallowExitsConfig(alpha=1.5)
    with pytest.raises(ConfigError, match="layers"):
        ShallowExitsConfig(layers=[])


def test_the_mutual_term_trains_the_peer_fully_and_leaves_the_students_ce_to_the_task_term():
    from suite.losses.self_distillation import MutualKD, MutualPair

    a, b, labels = torch.randn(4, 2), torch.randn(4, 2), torch.tensor([0, 1, 1, 0])
    loss_a, loss_b = mutual_learning_losses(a, b, labels)
    got = MutualKD()({"logits": a, "peer_logits": b}, None, {"labels": labels})
    assert got.item() == pytest.approx(
        (loss_a - torch.nn.functional.cross_entropy(a, labels) + loss_b).item(), rel=1e-5
    )
    pair = MutualPair(student(), student())
    out = pair(**batch(2)["inputs"])
    assert out["peer_logits"].shape == out["logits"].shape == (2, 2)
