from __future__ import annotations

import pytest
import torch
from torch import nn

from suite.distiller import Distiller, FrozenTeacher
from suite.losses import FeatureHint, FeatureHintConfig, SoftLabelKD, SoftLabelKDConfig, TaskLoss, hinton_kd_loss


class Net(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(4, width), nn.Dropout(0.5))
        self.head = nn.Linear(width, 3)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        pooled = self.hidden(x)
        return {"logits": self.head(pooled), "pooled": pooled, "embedding": pooled}


def batch() -> dict:
    torch.manual_seed(0)
    return {"inputs": {"x": torch.randn(6, 4)}, "labels": torch.tensor([0, 1, 2, 0, 1, 2])}


def test_teacher_is_frozen_and_stays_in_eval() -> None:
    teacher = FrozenTeacher(Net(8))
    assert not any(p.requires_grad for p in teacher.parameters())
    teacher.train()
    assert not teacher.training and not teacher.module.training
    distiller = Distiller(Net(4), {"kd": SoftLabelKD()}, {"kd": 1.0}, teacher=Net(8))
    distiller.train()
    assert distiller.student.training and not distiller.teacher.module.training
    out = distiller(batch())
    out["loss"].backward()
    assert all(p.grad is None for p in distiller.teacher.parameters())
    assert all(p.grad is not None for p in distiller.student.parameters())


def test_named_parts_and_weighted_total_equal_eq1() -> None:
    torch.manual_seed(1)
    student, teacher = Net(4).eval(), Net(8)
    distiller = Distiller(
        student,
        {"task": TaskLoss(), "kd": SoftLabelKD(SoftLabelKDConfig(3.0))},
        {"task": 0.3, "kd": 0.7},
        teacher=teacher,
    ).eval()
    data = batch()
    out = distiller(data)
    assert set(out) == {"loss", "task_loss", "kd_loss"}
    assert torch.allclose(out["loss"], 0.3 * out["task_loss"] + 0.7 * out["kd_loss"])
    expected = hinton_kd_loss(
        student(**data["inputs"])["logits"],
        teacher.eval()(**data["inputs"])["logits"],
        data["labels"],
        temperature=3.0,
        alpha=0.3,
    )
    assert torch.allclose(out["loss"], expected, atol=1e-6)


def test_precomputed_teacher_outputs_need_no_teacher_module() -> None:
    torch.manual_seed(2)
    teacher, student = Net(8).eval(), Net(4).eval()
    data = batch()
    live = Distiller(student, {"kd": SoftLabelKD()}, {"kd": 1.0}, teacher=teacher).eval()(data)
    stored = dict(data, teacher={"logits": teacher(**data["inputs"])["logits"].detach()})
    offline = Distiller(student, {"kd": SoftLabelKD()}, {"kd": 1.0}).eval()
    assert offline.teacher is None
    assert torch.allclose(offline(stored)["loss"], live["loss"])
    with pytest.raises(ValueError, match="teacher outputs"):
        offline(data)


def test_projectors_live_in_the_distiller_not_the_student() -> None:
    student = Net(4)
    before = set(student.state_dict())
    distiller = Distiller(
        student, {"hint": FeatureHint(4, 8, FeatureHintConfig(metric="cosine"))}, {"hint": 1.0}, teacher=Net(8)
    )
    assert set(student.state_dict()) == before
    names = {n for n, _ in distiller.named_parameters() if _.requires_grad}
    assert "terms.hint.loss.projector.weight" in names
    distiller(batch())["loss"].backward()
    assert distiller.terms["hint"].loss.projector.weight.grad is not None


def test_weights_must_name_every_term() -> None:
    with pytest.raises(ValueError, match="missing"):
        Distiller(Net(4), {"task": TaskLoss(), "kd": SoftLabelKD()}, {"task": 1.0})
    with pytest.raises(ValueError, match="unknown"):
        Distiller(Net(4), {"task": TaskLoss()}, {"task": 1.0, "kd": 1.0})


def test_task_only_distiller_never_calls_a_teacher() -> None:
    distiller = Distiller(Net(4), {"task": TaskLoss()}, {"task": 1.0})
    out = distiller(batch())
    assert set(out) == {"loss", "task_loss"}
