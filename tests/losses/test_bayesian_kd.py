"""Bayesian KD (survey Eq. 6): the teacher-informed Dirichlet prior, its identities, SGLD sampling a known
posterior, predictive moments and selective accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from suite.eval import selective_accuracy
from suite.losses.bayesian import (
    SGLD,
    bayesian_kd_loss,
    dirichlet_log_prior,
    predictive_moments,
    teacher_prior_loss,
)
from suite.losses.kd import hinton_kd_loss


@pytest.fixture
def batch():
    torch.manual_seed(0)
    return torch.randn(5, 3), F.softmax(torch.randn(5, 3), -1), torch.tensor([0, 1, 2, 1, 0])


def test_the_prior_is_the_dirichlet_density_of_eq_6(batch):
    logits, teacher, _ = batch
    q = F.softmax(logits, -1)
    expected = torch.distributions.Dirichlet(1.0 + 4.0 * teacher).log_prob(q)
    assert torch.allclose(dirichlet_log_prior(q, teacher, 4.0), expected, atol=1e-5)


def test_lambda_zero_is_the_uniform_prior_and_plain_cross_entropy(batch):
    logits, teacher, labels = batch
    assert teacher_prior_loss(logits, teacher, 0.0).item() == 0.0
    uniform = dirichlet_log_prior(F.softmax(logits, -1), teacher, 0.0)
    assert torch.allclose(uniform, torch.full((5,), np.log(2.0)))  # log Gamma(K): the same density for every q
    assert bayesian_kd_loss(logits, teacher, labels, 0.0).item() == pytest.approx(
        F.cross_entropy(logits, labels).item()
    )


def test_the_map_objective_is_kd(batch):
    """CE + lambda * H(p, q) equals (1 + lambda) x Hinton's Eq. 1 at tau = 1 with alpha = 1 / (1 + lambda), up to
    the teacher's entropy, which does not depend on the student."""
    logits, teacher, labels = batch
    lam = 3.0
    entropy = -(teacher * teacher.log()).sum(-1).mean()
    hinton = hinton_kd_loss(logits, teacher.log(), labels, temperature=1.0, alpha=1 / (1 + lam))
    assert bayesian_kd_loss(logits, teacher, labels, lam).item() == pytest.approx(
        ((1 + lam) * hinton + lam * entropy).item(), rel=1e-5
    )


def test_sgld_samples_a_gaussian_posterior():
    """Energy U(theta) = (theta - 1)^2 / 2 (one 'example'): the samples after burn-in must be N(1, 1)."""
    theta = torch.zeros(1, requires_grad=True)
    optimizer = SGLD([theta], lr=0.05, num_data=1, generator=torch.Generator().manual_seed(0))
    samples = []
    for step in range(20_000):
        optimizer.zero_grad()
        (0.5 * (theta - 1.0) ** 2).sum().backward()
        optimizer.step()
        if step >= 1_000:
            samples.append(theta.item())
    assert np.mean(samples) == pytest.approx(1.0, abs=0.1) and np.var(samples) == pytest.approx(1.0, abs=0.15)


def test_sgld_at_temperature_zero_is_gradient_descent():
    a, b = torch.tensor([2.0], requires_grad=True), torch.tensor([2.0], requires_grad=True)
    sgld, sgd = SGLD([a], lr=0.1, num_data=4, temperature=0.0), torch.optim.SGD([b], lr=0.2)  # lr / 2 * N = 0.2
    for x, opt in ((a, sgld), (b, sgd)):
        (x**2).sum().backward()
        opt.step()
    assert torch.allclose(a, b)


def test_predictive_moments_and_selective_accuracy():
    agree = torch.tensor([[0.9, 0.1]]).expand(4, 1, 2)
    split = torch.tensor([[[0.9, 0.1]], [[0.1, 0.9]], [[0.9, 0.1]], [[0.1, 0.9]]])
    mean, variance = predictive_moments(torch.cat([agree, split], dim=1))
    assert torch.allclose(mean[0], torch.tensor([0.9, 0.1])) and variance[0] == 0 and variance[1] > 0.1
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.55, 0.45], [0.2, 0.8]])
    labels = np.array([0, 1, 1, 1])
    assert selective_accuracy(probs, labels, coverage=1.0) == 0.5
    assert selective_accuracy(probs, labels, coverage=0.5) == 1.0  # the two surest are right
    assert selective_accuracy(probs, labels, coverage=0.25, uncertainty=[0.9, 0.0, 0.5, 0.5]) == 0.0


def test_ensemble_distribution_distillation_fits_the_members_spread():
    from suite.losses.bayesian import EnsembleDistributionKD, ensemble_distribution_loss

    agreeing = torch.tensor([0.8, 0.1, 0.1]).expand(5, 1, 3)  # (K, B, C): five members, one example
    spread = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.6, 0.2, 0.2], [0.2, 0.6, 0.2]])
    spread = spread.unsqueeze(1)
    logits = torch.zeros(1, 3, requires_grad=True)
    optimizer = torch.optim.Adam([logits], lr=0.05)
    fitted = {}
    for name, members in (("agreeing", agreeing), ("spread", spread)):
        logits.data.zero_()
        for _ in range(400):
            optimizer.zero_grad()
            ensemble_distribution_loss(logits, members).backward()
            optimizer.step()
        fitted[name] = logits.detach().exp()
    # concentration: sure when members agree, unsure when they spread; the mean follows the members
    assert fitted["agreeing"].sum() > 5 * fitted["spread"].sum()
    mean = fitted["agreeing"] / fitted["agreeing"].sum()
    assert mean.argmax().item() == 0 and mean[0, 0] > 0.6
    term = EnsembleDistributionKD()
    with pytest.raises(ValueError, match="needs an ensemble"):
        term({"logits": torch.zeros(2, 3)}, {"logits": torch.zeros(2, 3)}, {})
    assert term({"logits": torch.zeros(2, 3)}, {"logits": torch.zeros(2, 4, 3)}, {}).isfinite()
