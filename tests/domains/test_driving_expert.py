"""The privileged expert: legal, explained decisions whose boxes mark the cars drawn in the frame, and no driving
into an obvious obstacle."""

from __future__ import annotations

import numpy as np
import pytest

from domains.driving import scenarios as sim
from domains.driving.expert import MAX_AGENTS, PrivilegedExpert
from domains.driving.policies import best_legal_action

STAGES = ("perception", "prediction", "planning")
ROAD, LINE = (100, 100, 100), (255, 255, 255)  # highway-env's road grey and lane-marking white


def _drive(scenario: str, seed: int, steps: int):
    """Yield ``(frame, decision)`` for the first ``steps`` expert decisions of one seeded episode."""
    env, expert = sim.make_env(scenario), PrivilegedExpert()
    try:
        frame = sim.reset(env, seed)
        for _ in range(steps):
            decision = expert.decide(env, scenario)
            yield frame, decision
            frame, _, done, _ = sim.step(env, scenario, decision.action)
            if done:
                break
    finally:
        env.close()


@pytest.mark.parametrize("scenario", ["highway", "merge", "intersection", "roundabout"])
def test_decisions_are_legal_explained_and_boxed(scenario):
    decisions = 0
    for seed in (1, 2):
        for frame, decision in _drive(scenario, seed, steps=6):
            decisions += 1
            assert decision.action in sim.SCENARIOS[scenario].actions
            assert set(decision.rationale) == set(STAGES)
            assert all(decision.rationale[stage].strip() for stage in STAGES)
            assert len(decision.agents) <= MAX_AGENTS
            for agent in decision.agents:
                x0, y0, x1, y1 = agent.box
                assert 0 <= x0 <= x1 <= sim.FRAME_SIZE and 0 <= y0 <= y1 <= sim.FRAME_SIZE
                assert agent.description.startswith("car ")
                if (x1 - x0) * (y1 - y0) >= 4:  # not a sliver at the frame's edge
                    region = frame[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))].reshape(-1, 3)
                    background = (region == ROAD).all(1) | (region == LINE).all(1)
                    assert not background.all(), f"no car drawn under {agent.box} ({agent.description})"
            # The rationale names the most critical relevant agents (up to three) in its perception stage.
            named = sorted((a for a in decision.agents if a.relevant), key=lambda a: a.clearance)[:3]
            for agent in named:
                assert agent.description in decision.rationale["perception"]
            if not any(a.relevant for a in decision.agents):
                assert "No car is close" in decision.rationale["perception"]
    assert decisions >= 6


def _place(road, vehicle, lane_index: tuple, s: float, speed: float) -> None:
    """Put ``vehicle`` at ``s`` metres along lane ``lane_index``, cruising at ``speed`` in that lane."""
    lane = road.network.get_lane(lane_index)
    vehicle.lane_index = vehicle.target_lane_index = lane_index
    vehicle.lane = lane
    vehicle.position = lane.position(s, 0.0)
    vehicle.heading = lane.heading_at(s)
    vehicle.speed = vehicle.target_speed = speed
    # IDM cars would otherwise dodge the ego on their own (MOBIL), which is a cut-in, not a parked obstacle.
    vehicle.enable_lane_change = False


def _highway_with_obstacle(seed: int, gap: float, speed: float, block_sides: bool):
    env = sim.make_env("highway")
    sim.reset(env, seed)
    ego, road = env.unwrapped.vehicle, env.unwrapped.road
    middle = ("0", "1", 1)
    s0 = ego.lane.local_coordinates(ego.position)[0]
    _place(road, ego, middle, s0, float(ego.speed))
    others = [v for v in road.vehicles if v is not ego]
    others.sort(key=lambda v: np.linalg.norm(v.position - ego.position))
    _place(road, others[0], middle, s0 + gap, speed)
    if block_sides:
        _place(road, others[1], ("0", "1", 0), s0, float(ego.speed))
        _place(road, others[2], ("0", "1", 2), s0, float(ego.speed))
    sim.render(env)  # the expert's boxes read the viewer's window, which follows the ego
    return env


@pytest.mark.parametrize("seed", [0, 1])
def test_a_slow_car_just_ahead_makes_the_expert_leave_its_lane(seed):
    env = _highway_with_obstacle(seed, gap=12.0, speed=5.0, block_sides=False)
    try:
        expert = PrivilegedExpert()
        decision = expert.decide(env, "highway")
        assert decision.action not in ("FASTER", "IDLE")
        planning = decision.rationale["planning"]
        assert "pass the slower traffic" in planning or "too close" in planning, planning
        assert "car ahead" in decision.rationale["perception"]
        for _ in range(3):  # and it does get past
            _, _, done, info = sim.step(env, "highway", decision.action)
            assert not info["crashed"]
            if done:
                break
            decision = expert.decide(env, "highway")
    finally:
        env.close()


def test_with_both_sides_taken_the_expert_brakes_and_says_why():
    env = _highway_with_obstacle(0, gap=30.0, speed=18.0, block_sides=True)
    try:
        decision = PrivilegedExpert().decide(env, "highway")
    finally:
        env.close()
    assert decision.action == "SLOWER"
    assert decision.rationale["planning"] == "Slow down: the car ahead is too close."
    assert "car ahead" in decision.rationale["perception"]


def test_best_legal_action_never_steers_at_the_intersection():
    rng = np.random.default_rng(0)
    lateral = {"LANE_LEFT", "LANE_RIGHT"}
    for _ in range(200):
        logits = rng.normal(size=len(sim.ACTIONS)) * 5
        logits[[sim.ACTION_INDEX[a] for a in lateral]] += 100.0  # the lane changes are the planner's favourites
        assert best_legal_action(logits, "intersection") not in lateral
        assert best_legal_action(logits, "highway") in lateral
    logits = np.full(len(sim.ACTIONS), -np.inf)
    logits[sim.ACTION_INDEX["LANE_LEFT"]] = np.inf
    assert best_legal_action(logits, "intersection") in sim.SCENARIOS["intersection"].actions


def test_other_routes_any_keeps_every_road_a_car_could_take_and_the_known_one_among_them():
    from highway_env.vehicle.controller import ControlledVehicle

    from domains.driving.expert import ExpertConfig, _predict_other

    env = sim.make_env("intersection")
    try:
        sim.reset(env, 0)
        ego, road = env.unwrapped.vehicle, env.unwrapped.road
        cars = [v for v in road.vehicles if v is not ego and isinstance(v, ControlledVehicle)]
        branching = 0
        for car in cars:
            known, possible = _predict_other(car, "known"), _predict_other(car, "any")
            assert known.shape == (1, 8, 2) and possible.shape[1:] == (8, 2)
            # the route the simulator planned is one of the possible paths
            assert np.abs(possible - known[0]).max(axis=(1, 2)).min() < 1e-6
            branching += len(possible) > 1
        assert branching >= 1  # a car before the junction could turn either way or go straight
    finally:
        env.close()
    with pytest.raises(ValueError, match="other_routes"):
        ExpertConfig(other_routes="psychic")


def _options(clearance: dict[str, float]) -> dict:
    """Options for ``_choose`` with one car at the given worst clearance per action (target speeds 0 / 4.5 / 9)."""
    from domains.driving.expert import Option

    speeds = {"SLOWER": 0.0, "IDLE": 4.5, "FASTER": 9.0}
    return {a: Option(True, speeds[a], np.zeros((8, 2)), np.zeros(8), np.array([c])) for a, c in clearance.items()}


HOLD_CASES = [(7.0, 10.0, "IDLE"), (7.0, 4.0, "FASTER"), (12.0, 10.0, "FASTER"), (2.0, 4.0, "IDLE")]


@pytest.mark.parametrize(("faster_room", "speed_up_margin", "expected"), HOLD_CASES)
def test_speeding_up_needs_speed_up_margin_of_room_else_the_expert_holds_its_speed(
    faster_room, speed_up_margin, expected
):
    from types import SimpleNamespace

    from domains.driving.expert import ExpertConfig, _choose

    ego = SimpleNamespace(target_speed=4.5, target_speeds=[0.0, 4.5, 9.0])
    options = _options({"SLOWER": 20.0, "IDLE": 20.0, "FASTER": faster_room})
    assert _choose(ego, options, "intersection", ExpertConfig(speed_up_margin=speed_up_margin)) == expected


def test_a_stopped_expert_in_harms_way_holds_rather_than_speeding_up_with_too_little_room():
    """Keeping is unsafe and braking is no option at speed 0: the least unsafe option is speeding up, which the
    expert takes only with speed_up_margin of room (it used to, with any: the intersection flips, issue 14)."""
    from types import SimpleNamespace

    from domains.driving.expert import ExpertConfig, _choose, _prefer

    ego = SimpleNamespace(target_speed=0.0, target_speeds=[0.0, 4.5, 9.0])
    options = _options({"SLOWER": -1.0, "IDLE": -1.0, "FASTER": 3.0})
    options["SLOWER"].speed = 0.0
    config = ExpertConfig()
    assert _prefer(ego, options, "intersection", config) == "FASTER"  # the least unsafe option
    assert _choose(ego, options, "intersection", config) == "IDLE"
    options["FASTER"].clearance[:] = config.speed_up_margin
    assert _choose(ego, options, "intersection", config) == "FASTER"


def test_expert_margins_must_grow_from_keeping_to_changing_lanes_to_speeding_up():
    from domains.driving.expert import ExpertConfig

    with pytest.raises(ValueError, match="speed_up_margin"):
        ExpertConfig(change_margin=4.0, speed_up_margin=3.0)


def test_predicted_paths_start_where_the_cars_are_even_as_they_enter_the_next_road():
    """Half a second ahead every car (and the ego, keeping its speed) is at most half a second of driving away.
    Cars about to leave their lane already target the next one; their paths were once placed tens of metres past the
    junction they were entering. (The intersection's roads meet end to end; the roundabout's entries stop a few
    metres short of the ring, so paths there jump by that gap.)"""
    scenario = "intersection"
    from highway_env.vehicle.controller import ControlledVehicle

    from domains.driving.expert import HORIZON_S, _evaluate, _predict_other

    env, expert = sim.make_env(scenario), PrivilegedExpert()
    entering = 0
    try:
        sim.reset(env, 3)
        for _ in range(12):
            ego, road = env.unwrapped.vehicle, env.unwrapped.road
            cars = [v for v in road.vehicles if isinstance(v, ControlledVehicle)]
            entering += sum(car.lane_index[:2] != car.target_lane_index[:2] for car in cars)
            for car in cars:
                path = _evaluate(ego, road, "IDLE", []).path if car is ego else _predict_other(car, "known")[0]
                first = path[0]
                reach = max(car.speed, car.target_speed) * HORIZON_S[0] + 1.0
                assert np.linalg.norm(first - car.position) <= reach, (car.lane_index, car.target_lane_index)
            _, _, done, _ = sim.step(env, scenario, expert.decide(env, scenario).action)
            if done:
                break
    finally:
        env.close()
    assert entering >= 1  # the case that went wrong was met
