"""Multi-teacher KD (survey Eq. 7-8): identities (one teacher, identical teachers, equal weights), each weighting
favours the teacher it should, and each conflict rule keeps the teachers it should."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from suite.errors import ConfigError
from suite.losses.kd import soft_label_kd_loss
from suite.losses.multi_teacher import (
    CONFLICTS,
    WEIGHTINGS,
    MultiTeacherConfig,
    multi_teacher_kd_loss,
    resolve_conflicts,
    teacher_weights,
)


@pytest.fixture
def logits():
    torch.manual_seed(0)
    return torch.randn(6, 4), torch.randn(3, 6, 4), torch.randint(0, 4, (6,))


@pytest.mark.parametrize("weighting", WEIGHTINGS)
@pytest.mark.parametrize("conflicts", CONFLICTS)
def test_one_teacher_or_identical_teachers_is_plain_kd(logits, weighting, conflicts):
    student, teachers, labels = logits
    config = MultiTeacherConfig(temperature=2.0, weighting=weighting, conflicts=conflicts)
    plain = soft_label_kd_loss(student, teachers[0], temperature=2.0)
    one = multi_teacher_kd_loss(student, teachers[:1], config, labels)
    same = multi_teacher_kd_loss(student, teachers[:1].expand(3, -1, -1), config, labels)
    assert one == pytest.approx(plain.item(), rel=1e-5) and same == pytest.approx(plain.item(), rel=1e-5)


def test_equal_weights_distil_the_mean_distribution(logits):
    student, teachers, _ = logits
    mean = F.softmax(teachers, -1).mean(0)  # Eq. 7 at temperature 1
    expected = F.kl_div(F.log_softmax(student, -1), mean, reduction="batchmean")  # Eq. 8
    got = multi_teacher_kd_loss(student, teachers, MultiTeacherConfig(temperature=1.0))
    assert got == pytest.approx(expected.item(), rel=1e-5)


def test_each_weighting_favours_the_teacher_it_should():
    labels = torch.tensor([0])
    right, wrong = torch.tensor([[0.7, 0.2, 0.1]]), torch.tensor([[0.1, 0.2, 0.7]])
    w = teacher_weights(torch.stack([wrong, right]), "ground_truth", labels)
    assert w[1, 0] > 0.8  # most weight on the teacher that gives the true label 0.7
    sure, unsure = torch.tensor([[0.98, 0.01, 0.01]]), torch.tensor([[0.4, 0.3, 0.3]])
    assert teacher_weights(torch.stack([unsure, sure]), "confidence")[1, 0] > 0.5
    student = torch.log(torch.tensor([[0.1, 0.2, 0.7]]))
    w = teacher_weights(torch.stack([right, wrong]), "student_agreement", student_log_probs=student)
    assert w[1, 0] > w[0, 0]  # the teacher the student already follows
    assert torch.allclose(teacher_weights(torch.stack([right, wrong]), "equal"), torch.full((2, 1), 0.5))


def test_student_agreement_weights_carry_no_gradient(logits):
    student, teachers, _ = logits
    student = student.clone().requires_grad_()
    log_p = F.log_softmax(student, -1)
    weights = teacher_weights(F.softmax(teachers, -1), "student_agreement", student_log_probs=log_p)
    assert not weights.requires_grad


def test_conflict_rules_keep_the_teachers_they_should():
    # example 0: teachers agree on class 0; example 1: two say class 1, one says class 2 (the label)
    probs = torch.tensor([[[0.8, 0.1, 0.1], [0.1, 0.8, 0.1]],
                          [[0.7, 0.2, 0.1], [0.2, 0.7, 0.1]],
                          [[0.6, 0.2, 0.2], [0.1, 0.1, 0.8]]])  # fmt: skip
    equal, labels = torch.full((3, 2), 1 / 3), torch.tensor([0, 2])
    weights, keep = resolve_conflicts(probs, equal, "average")
    assert torch.equal(weights, equal) and keep.all()
    weights, keep = resolve_conflicts(probs, equal, "vote")
    assert torch.allclose(weights[:, 0], equal[:, 0]) and torch.allclose(weights[:, 1], torch.tensor([0.5, 0.5, 0]))
    weights, _ = resolve_conflicts(probs, equal, "trust_label", labels)
    assert torch.allclose(weights[:, 1], torch.tensor([0.0, 0.0, 1.0]))
    _, keep = resolve_conflicts(probs, equal, "skip")
    assert keep.tolist() == [True, False]


def test_skipping_conflicts_distils_only_the_examples_teachers_agree_on(logits):
    student, teachers, _ = logits
    teachers = teachers[0].expand(3, -1, -1).clone()
    teachers[1, 3:] = -teachers[1, 3:]  # teacher 1 turns its ranking upside down on the last three examples
    top = teachers.argmax(-1)
    agree = (top == top[:1]).all(0)
    assert agree.any() and not agree.all()  # the fixture has both kinds
    config = MultiTeacherConfig(temperature=1.0, conflicts="skip")
    expected = multi_teacher_kd_loss(student[agree], teachers[:, agree], MultiTeacherConfig(temperature=1.0))
    assert multi_teacher_kd_loss(student, teachers, config) == pytest.approx(expected.item(), rel=1e-5)
    everything_conflicts = torch.stack([torch.eye(4)[[0] * 6], torch.eye(4)[[1] * 6]]) * 5
    zero = multi_teacher_kd_loss(student.requires_grad_(), everything_conflicts, config)
    assert zero.item() == 0.0 and zero.requires_grad


def test_bad_settings_are_refused(logits):
    with pytest.raises(ConfigError, match="weighting"):
        MultiTeacherConfig(weighting="best")
    with pytest.raises(ConfigError, match="conflicts"):
        MultiTeacherConfig(conflicts="ignore")
    student, teachers, _ = logits
    with pytest.raises(ValueError, match="needs the labels"):
        multi_teacher_kd_loss(student, teachers, MultiTeacherConfig(weighting="ground_truth"))
    with pytest.raises(ValueError, match=r"\(K, B, C\)"):
        multi_teacher_kd_loss(student, teachers[0], MultiTeacherConfig())
