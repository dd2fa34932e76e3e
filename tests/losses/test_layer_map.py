"""Intermediate-layer KD (TinyBERT): zero for a student that is the teacher, a projector across widths, head-averaged
attention across head counts, and the settings that cannot work refused."""

from __future__ import annotations

import pytest
import torch

from suite.errors import ConfigError
from suite.losses.layer_map import LayerMapConfig, LayerMapKD, masked_mse


def outputs(layers: int, dim: int, heads: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    hidden = tuple(torch.randn(2, 5, dim, generator=g) for _ in range(layers + 1))
    attentions = tuple(torch.randn(2, heads, 5, 5, generator=g).softmax(-1) for _ in range(layers))
    return {"logits": torch.zeros(2, 2), "hidden_states": hidden, "attentions": attentions}


BATCH = {"inputs": {"attention_mask": torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])}}


def test_a_student_equal_to_the_teachers_mapped_layers_has_zero_loss():
    teacher = outputs(6, 8, 2, seed=0)
    student = {**teacher, "hidden_states": (teacher["hidden_states"][0], teacher["hidden_states"][3],
                                            teacher["hidden_states"][6]),
               "attentions": (teacher["attentions"][2], teacher["attentions"][5])}  # fmt: skip
    term = LayerMapKD(8, 8, LayerMapConfig({1: 3, 2: 6}))
    assert term(student, teacher, BATCH).item() == 0.0
    assert term(outputs(2, 8, 2, seed=1), teacher, BATCH).item() > 0


def test_widths_and_head_counts_that_differ_are_bridged():
    term = LayerMapKD(4, 8, LayerMapConfig({1: 3, 2: 6}))
    assert isinstance(term.projectors["1"], torch.nn.Linear) and term.projectors["1"].in_features == 4
    loss = term(outputs(2, 4, 1, seed=2), outputs(6, 8, 2, seed=0), BATCH)  # 1 head against 2: head means
    loss.backward()
    assert term.projectors["2"].weight.grad.abs().sum() > 0


def test_padding_does_not_count():
    student, teacher = torch.zeros(1, 3, 2), torch.zeros(1, 3, 2)
    teacher[0, 2] = 100.0  # a padded position
    assert masked_mse(student, teacher, torch.tensor([[1, 1, 0]])).item() == 0.0


def test_settings_that_cannot_work_are_refused():
    with pytest.raises(ConfigError, match="no attention map"):
        LayerMapConfig({0: 0, 1: 3})
    assert LayerMapConfig({0: 0}, attention=0.0).layer_map == {0: 0}
    with pytest.raises(ConfigError, match="not both 0"):
        LayerMapConfig(hidden=0.0, attention=0.0)
    with pytest.raises(ValueError, match="live teacher"):
        LayerMapKD(8, 8)(outputs(2, 8, 2, seed=0), None, BATCH)
