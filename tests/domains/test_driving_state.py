"""The gate's state clone: it learns a rule that lives in the privileged state, and drives through StatePolicy."""

from __future__ import annotations

import torch

from domains.driving.state import EGO_FEATURES, STATE_DIM, StateCloner, load_cloner, save_cloner, train_state_cloner


def test_the_clone_learns_a_rule_of_the_state_and_round_trips_through_safetensors(tmp_path):
    generator = torch.Generator().manual_seed(0)
    states = torch.rand(2000, STATE_DIM, generator=generator)
    gap = states[:, EGO_FEATURES + 1]  # the nearest car's longitudinal distance
    actions = torch.where(gap < 0.3, 4, torch.where(gap > 0.7, 3, 1))  # close: SLOWER, far: FASTER, else IDLE
    model = train_state_cloner(states[:1500], actions[:1500], epochs=30, seed=0)
    accuracy = (model(states[1500:]).argmax(-1) == actions[1500:]).float().mean()
    assert accuracy > 0.9
    untrained = (StateCloner()(states[1500:]).argmax(-1) == actions[1500:]).float().mean()
    assert untrained < 0.7  # the rule is learnt, not an accident of the initialisation
    again = load_cloner(save_cloner(model, tmp_path / "cloner.safetensors"))
    assert torch.equal(again(states[:8]), model(states[:8]))
