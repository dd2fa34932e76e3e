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


def _rare_rule(rows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """States whose nearest car is very close 4% of the time (SLOWER, 4); IDLE (1) otherwise: a rare action that a
    feature of the state decides, as a lane change or a brake is for the expert."""
    generator = torch.Generator().manual_seed(seed)
    states = torch.rand(rows, STATE_DIM, generator=generator)
    actions = torch.where(states[:, EGO_FEATURES + 1] < 0.04, 4, 1)
    return states, actions


def test_class_weights_of_power_zero_are_plain_cross_entropy_and_rare_actions_weigh_more_above_it():
    from domains.driving.data import class_weights

    actions = torch.tensor([1] * 90 + [4] * 10)
    assert torch.equal(class_weights(actions, 5, 0.0), torch.ones(5))
    weights = class_weights(actions, 5, 0.5)
    assert weights[4] > weights[1] and torch.isclose(weights.mean(), torch.tensor(1.0))


def test_a_weighted_clone_recalls_a_rare_action_that_plain_cloning_misses_more_often():
    states, actions = _rare_rule(3000, seed=0)
    test_states, test_actions = _rare_rule(4000, seed=1)
    rare = test_actions == 4

    def recall(power: float) -> float:
        model = train_state_cloner(states, actions, epochs=3, seed=0, class_weight_power=power)
        with torch.no_grad():
            return (model(test_states[rare]).argmax(-1) == 4).float().mean().item()

    plain, balanced = recall(0.0), recall(1.0)
    assert balanced > plain + 0.1, (plain, balanced)


def test_lane_slots_find_the_nearest_car_ahead_and_behind_in_each_lane():
    from domains.driving.state import EGO_OFFSET, NEIGHBOUR_FEATURES, lane_slots

    state = torch.zeros(1, STATE_DIM)
    state[0, EGO_OFFSET] = 0.25  # the ego drives 1 m off its lane's centre, towards the next lane
    cars = [(1.0, 20 / 50, -1 / 10, -0.5, 0.0),  # 20 m ahead in the ego's lane (0 m from its centre), 5 m/s slower
            (1.0, 35 / 50, -1 / 10, 0.0, 0.0),  # farther ahead in the same lane: not the nearest
            (1.0, -10 / 50, 3 / 10, 0.3, 0.0)]  # 10 m behind in the next lane (+4 m), 3 m/s faster  # fmt: skip
    rows = state[0, EGO_FEATURES:].view(-1, NEIGHBOUR_FEATURES)  # a view: writing it writes the state
    rows[: len(cars)] = torch.tensor(cars)
    slots = lane_slots(state)[0].reshape(3, 2, 4)  # lane (-1, 0, +1), side (ahead, behind), feature
    torch.testing.assert_close(slots[1, 0], torch.tensor([1.0, 0.4, -0.5, 0.4]))  # closing at 5 m/s: 4 s
    torch.testing.assert_close(slots[2, 1], torch.tensor([1.0, 0.2, 0.3, 1 / 3]))  # closing at 3 m/s: 3.3 s
    empty = torch.tensor([0.0, 1.0, 0.0, 1.0])  # no car: as far and as slow to close as the state reaches
    for lane, side in [(0, 0), (0, 1), (1, 1), (2, 0)]:
        torch.testing.assert_close(slots[lane, side], empty)


def test_a_clone_with_lane_slots_round_trips_and_drives_from_the_state_alone(tmp_path):
    states, actions = _rare_rule(500, seed=0)
    model = train_state_cloner(states, actions, epochs=1, seed=0, slots=True)
    again = load_cloner(save_cloner(model, tmp_path / "slots.safetensors"))
    assert again.slots and not load_cloner(save_cloner(StateCloner(), tmp_path / "plain.safetensors")).slots
    assert torch.equal(again(states[:8]), model(states[:8]))


def test_the_lane_slots_read_the_egos_offset_and_a_real_highways_lanes():
    """On a real highway the ego's lateral offset sits where lane_slots reads it, and every car the slots place in a
    lane is in that lane of the simulator."""

    from domains.driving import scenarios as sim
    from domains.driving.state import EGO_OFFSET, lane_slots, privileged_state

    env = sim.make_env("highway")
    try:
        sim.reset(env, 0)
        ego = env.unwrapped.vehicle
        state = torch.from_numpy(privileged_state(env))[None]
        assert abs(state[0, EGO_OFFSET].item() * 4 - ego.lane.local_coordinates(ego.position)[1]) < 1e-4
        slots = lane_slots(state)[0].reshape(3, 2, 4)
        others = [v for v in env.unwrapped.road.vehicles if v is not ego]
        for delta in range(3):
            for side in range(2):
                if slots[delta, side, 0] == 0:
                    continue
                gap = slots[delta, side, 1].item() * 50
                lanes = [v.lane_index[2] - ego.lane_index[2] for v in others
                         if abs(abs(v.position[0] - ego.position[0]) - gap) < 0.1]  # fmt: skip
                assert delta - 1 in lanes
        assert slots[:, :, 0].sum() > 0  # the first frame has cars around the ego
    finally:
        env.close()
