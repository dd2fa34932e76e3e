"""Golden and identity tests for the rationale losses (survey Eq. 4 and 5)."""

from __future__ import annotations

import math

import pytest
import torch

from suite.losses.rationale import (
    RationaleCE,
    RationaleConfig,
    easiest_steps,
    idf_weights,
    rationale_steps,
    step_difficulty,
    token_nll,
)


def batch(seed: int = 0):
    torch.manual_seed(seed)
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[1, 2, 3, 4, 5], [6, 1, 2, -100, -100]])
    steps = torch.tensor([[0, 0, 1, 1, 2], [0, 1, 1, -1, -1]])
    return {"rationale_logits": logits}, {"rationale_labels": labels, "rationale_steps": steps,
                                          "rationale_weights": torch.ones(2, 5)}  # fmt: skip


def test_plain_rationale_loss_is_the_mean_token_cross_entropy():
    out, b = batch()
    logits, labels = out["rationale_logits"], b["rationale_labels"]
    expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())
    assert RationaleCE()(out, None, b).item() == pytest.approx(expected.item(), rel=1e-6)


def test_uniform_kpod_weights_equal_plain_step_by_step():
    out, b = batch()
    kpod = RationaleCE(RationaleConfig(token_weights=True))
    assert kpod(out, None, b).item() == pytest.approx(RationaleCE()(out, None, b).item(), rel=1e-6)


def test_token_weights_scale_each_tokens_share():
    out, b = batch()
    b["rationale_weights"] = torch.tensor([[2.0, 0, 0, 0, 0], [0, 0, 0, 0, 0]])  # only the first token counts
    nll = token_nll(out["rationale_logits"], b["rationale_labels"])
    assert RationaleCE(RationaleConfig(token_weights=True))(out, None, b).item() == pytest.approx(nll[0, 0].item())


def test_step_difficulty_sums_weighted_nll_per_step():
    nll = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 0.0, 0.0]])
    weights = torch.tensor([[1.0, 0.5, 2.0, 1.0], [1.0, 1.0, 0.0, 0.0]])
    steps = torch.tensor([[0, 0, 1, 2], [0, 0, -1, -1]])
    assert step_difficulty(nll, weights, steps, 3).tolist() == [[2.0, 6.0, 4.0], [11.0, 0.0, 0.0]]


def test_easiest_steps_keep_the_lowest_difficulty_share_of_each_rationale():
    steps = torch.tensor([[0, 0, 1, 2, 3], [0, 1, -1, -1, -1]])
    difficulty = torch.tensor([[5.0, 1.0, 9.0, 2.0], [3.0, 1.0, 0.0, 0.0]])
    half = easiest_steps(difficulty, steps, 0.5)
    assert half.tolist() == [[False, False, True, False, True], [False, True, False, False, False]]
    tiny = easiest_steps(difficulty, steps, 0.01)  # at least one step per rationale
    assert tiny.tolist() == [[False, False, True, False, False], [False, True, False, False, False]]
    assert easiest_steps(difficulty, steps, 1.0).tolist() == (steps >= 0).tolist()


def test_the_progressive_schedule_masks_hard_steps_early_and_none_late():
    out, b = batch()
    term = RationaleCE(RationaleConfig(start_fraction=0.34, ramp=0.5))
    term.progress = 0.0
    early = term(out, None, b).item()
    term.progress = 0.5
    assert term(out, None, b).item() == pytest.approx(RationaleCE()(out, None, b).item(), rel=1e-6)
    assert early < RationaleCE()(out, None, b).item()  # only the easiest steps count at first
    assert RationaleConfig(start_fraction=0.2, ramp=0.5).fraction(0.25) == pytest.approx(0.6)


def test_a_batch_without_any_rationale_costs_nothing_in_every_schedule():
    """A 10% budget of a task whose filter dropped most rationales deals batches with none (MTSamples did)."""
    out, b = batch()
    b["rationale_labels"] = torch.full_like(b["rationale_labels"], -100)
    b["rationale_steps"] = torch.full_like(b["rationale_steps"], -1)
    for config in (RationaleConfig(), RationaleConfig(token_weights=True, start_fraction=0.4, ramp=0.5)):
        loss = RationaleCE(config)(out, None, b)
        assert loss.item() == 0.0 and not math.isnan(loss.item())


def test_idf_weights_have_mean_one_and_favour_rare_tokens():
    weights = idf_weights([[1, 2, 3], [1, 2, 4], [1, 5, 9]], ignore=[9])
    for row in weights:
        scored = row[:-1] if row[-1] == 1.0 else row
        assert sum(scored) / len(scored) == pytest.approx(1.0)
    assert weights[0][2] > weights[0][1] > weights[0][0]  # 3 is rarer than 2, which is rarer than 1
    assert weights[2][2] == 1.0
    # token 1 is in all 3 rationales, token 3 in one: idf = log(4/4) + 1 and log(4/2) + 1
    assert weights[0][0] / weights[0][2] == pytest.approx((math.log(4 / 4) + 1) / (math.log(4 / 2) + 1))


def test_rationale_steps_split_after_boundaries_and_keep_the_end_token_in_the_last_step():
    assert rationale_steps([5, 6, 0, 7, 0, 9], boundaries=[0]) == [0, 0, 0, 1, 1, 1]
    assert rationale_steps([5, 0, 7, 8], boundaries=[0]) == [0, 0, 1, 1]
