"""The gate's state clone: it learns a rule that lives in the privileged state, and drives through StatePolicy."""

from __future__ import annotations

import torch

from domains.driving.state import EGO_FEATURES, STATE_DIM, StateCloner, load_cloner, save_cloner, train_state_cloner


def test_the_clone_learns_a_rule_of_the_state_and_round_trips_through_safetensors(tmp_path):
    generator = torch.Generator().manual_seed(0)
    states = torch.rand(4000, STATE_DIM, generator=generator)
    gap = states[:, EGO_FEATURES + 1]  # the nearest car's longitudinal distance
    actions = torch.where(gap < 0.3, 4, torch.where(gap > 0.7, 3, 1))  # close: SLOWER, far: FASTER, else IDLE
    model = train_state_cloner(states[:3000], actions[:3000], epochs=30, seed=0)
    accuracy = (model(states[3000:]).argmax(-1) == actions[3000:]).float().mean()
    assert accuracy > 0.9
    untrained = (StateCloner()(states[3000:]).argmax(-1) == actions[3000:]).float().mean()
    assert untrained < 0.7  # the rule is learnt, not an accident of the initialisation
    again = load_cloner(save_cloner(model, tmp_path / "cloner.safetensors"))
    assert torch.equal(again(states[:8]), model(states[:8]))


def test_the_state_knows_where_the_egos_route_goes():
    """Straight ahead on the highway; at the intersection the route bends at the junction, never farther away than
    the distance along it."""
    import numpy as np

    from domains.driving import scenarios as sim
    from domains.driving.state import ROUTE_AHEAD_M, privileged_state

    def route_features(scenario: str, steps: int) -> np.ndarray:
        env = sim.make_env(scenario)
        try:
            sim.reset(env, 0)
            rows = []
            for _ in range(steps):
                rows.append(privileged_state(env)[EGO_FEATURES - 1 - 2 * len(ROUTE_AHEAD_M) : EGO_FEATURES])
                sim.step(env, scenario, "IDLE")
            return np.stack(rows)
        finally:
            env.close()

    ahead = np.array(ROUTE_AHEAD_M)
    highway = route_features("highway", 3)
    assert (highway[:, 0] == 2.0).all()  # a highway lane is far longer than 100 m
    np.testing.assert_allclose(highway[:, 1::2] * 50, np.broadcast_to(ahead, (3, 3)), atol=0.5)
    np.testing.assert_allclose(highway[:, 2::2], 0, atol=0.05)
    crossing = route_features("intersection", 6)
    distance = np.hypot(crossing[:, 1::2] * 50, crossing[:, 2::2] * 10)
    assert (distance <= ahead + 0.5).all()
    assert np.abs(crossing[:, -1] * 10).max() > 5  # the route turns at the junction
