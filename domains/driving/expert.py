"""The privileged expert: the built-in, offline stand-in for the vision-language teacher.

It reads the full simulator state (positions, speeds, routes of every car), checks each legal action against a
4-second prediction of all cars along their routes, and decides by a fixed order of preference with safety margins
(:func:`_choose`); then it says why in the order VERDI asks its VLM: perception (which agents matter, where),
prediction (what they will do), planning (the action and why).

The margins have hysteresis: keeping the current lane and speed needs ``keep_margin`` metres of clearance, changing
lanes needs the larger ``change_margin`` and speeding up ``speed_up_margin`` (at least as much), always, even as the
least unsafe way out: short of it the expert holds its speed. An earlier expert traded speed against a clearance bonus
and flipped between FASTER, IDLE and SLOWER on 42% of consecutive highway steps; even an MLP given its full state
could only clone it to 0.82 accuracy (issue 14), so no camera-based student could do better.
It also writes one short description per visible agent, for the agent-centric contrast (VLP, survey Eq. 12).

Distances in the texts are rounded to 5 m and planning texts carry no numbers, so the planning rationale is one of a
few dozen reasons: "nearest teacher rationale" is then a meaningful retrieval target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from domains.driving.scenarios import ACTIONS, SCENARIOS, frame_shape, world_to_pixel

HORIZON_S = np.arange(1, 9) * 0.5  # 0.5 .. 4 s
TAU_ACC = 0.6  # highway-env's speed controller time constant [s]
LATERAL_MARGIN = 2.6  # [m] half a lane plus half a car: closer than this laterally shares our lane
REAR_MARGIN = 6.0  # [m] a car length plus a metre behind us
MAX_AGENTS = 8
SEE_RADIUS = 60.0  # [m]
# The roundabout's top speed (16 m/s) leaves no time to react to entering cars at one decision per second.
CRUISE_SPEED = {"roundabout": 8.0}
LANE_CHANGES = ("LANE_LEFT", "LANE_RIGHT")
KEEP_RIGHT = ("highway", "merge")  # scenarios where the expert returns to the right lane when it is clearly free
OTHER_ROUTES = ("known", "any")
ROUTE_DEPTH = 2  # roads after the current lane a possible path goes on to: 4 s at 10 m/s cross an intersection


@dataclass(frozen=True)
class ExpertConfig:
    """Safety margins (metres of clearance over the 4-second horizon) of the expert's decisions."""

    keep_margin: float = 1.0  # below this, the current lane and speed are unsafe: change lanes or brake
    change_margin: float = 4.0  # changing lanes needs this much (more than keeping: hysteresis)
    # speeding up needs this much, even as the least unsafe way out: below it the expert holds its speed. 10 m made
    # the expert and its state clone safer still but slower (0.88 of the progress at the intersection; issue 14,
    # docs/results/driving_speed_hold)
    speed_up_margin: float = 4.0
    overtake_gain: float = 10.0  # a lane change to pass or to keep right needs change_margin + this
    # "known": the other cars' planned routes are read from the simulator (privileged); "any": a car may take any
    # road that leaves the end of its lane, and every such path must stay clear (what a camera could know). "any" by
    # default: with the intersection's 10x episodes its planners crash less over 2,400 episodes (imitation 104 vs 147,
    # all five 66 vs 132), more at the roundabout (issue 14, docs/results/driving_epoch_share/vs_known)
    other_routes: str = "any"

    def __post_init__(self) -> None:
        if not 0 <= self.keep_margin <= self.change_margin <= self.speed_up_margin or self.overtake_gain < 0:
            raise ValueError("expert margins: need 0 <= keep_margin <= change_margin <= speed_up_margin and "
                             "overtake_gain >= 0")  # fmt: skip
        if self.other_routes not in OTHER_ROUTES:
            raise ValueError(f"expert other_routes: choose from {', '.join(OTHER_ROUTES)}")


@dataclass
class Agent:
    """One car near the ego: where it is in the frame and what the teacher says about it."""

    box: np.ndarray  # (4,) x0, y0, x1, y1 in frame pixels
    description: str
    relevant: bool  # named by the rationale (the Vi-LAD relevance map highlights it)
    state: np.ndarray  # (4,) longitudinal, lateral [m], speed [m/s], heading difference [rad], in the ego frame
    clearance: float = np.inf  # [m] to the box we keep free around our path (smaller: more critical)


@dataclass
class Decision:
    action: str
    rationale: dict[str, str]  # perception / prediction / planning
    agents: list[Agent] = field(default_factory=list)
    # the smallest clearance [m] over the horizon of each legal action (-inf: infeasible): the scores the expert
    # decides by, which a planner can learn as soft targets beside the action itself
    clearances: dict[str, float] = field(default_factory=dict)


class PrivilegedExpert:
    """Rule-based planner with full state access; ``decide(env, scenario)`` after the frame was rendered."""

    def __init__(self, config: ExpertConfig | None = None):
        self.config = config or ExpertConfig()

    def decide(self, env: Any, scenario: str) -> Decision:
        ego, road = env.unwrapped.vehicle, env.unwrapped.road
        others = [v for v in road.vehicles if v is not ego and np.linalg.norm(v.position - ego.position) < SEE_RADIUS]
        futures = [(_predict_other(v, self.config.other_routes), _crossing(ego, v)) for v in others]  # (P, T, 2)
        legal = [a for a in ACTIONS if a in SCENARIOS[scenario].actions]
        options = {a: _evaluate(ego, road, a, futures) for a in legal}
        action = _choose(ego, options, scenario, self.config)
        agents = _describe_agents(env, ego, others, futures, options, action)
        clearances = {a: _worst(option) for a, option in options.items()}
        return Decision(action, _rationale(ego, road, scenario, action, options, agents), agents, clearances)


# -- prediction -------------------------------------------------------------------------------------------------


def _predict_other(vehicle: Any, other_routes: str = "known") -> np.ndarray:
    """(P, T, 2) possible future positions at constant speed (what IDM cars do): along its planned route
    (``known``, P = 1) or along every road it could take next (``any``); straight on for a car off the road network.

    A car that is changing lanes is predicted in the lane it is moving to, so cut-ins are seen coming.
    """
    from highway_env.vehicle.controller import ControlledVehicle

    if isinstance(vehicle, ControlledVehicle):
        lane = vehicle.target_lane_index
        distances = longitudinal(vehicle.road, lane, vehicle.position) + vehicle.speed * HORIZON_S
        routes = [vehicle.route] if other_routes == "known" else _possible_routes(vehicle.road, lane)
        along = [along_route(vehicle.road, lane, route, distances) for route in routes]
        paths = [path[0] for path in along if path is not None]
        if paths:
            return np.stack(paths)
    return (vehicle.position + HORIZON_S[:, None] * vehicle.velocity)[None]


def _possible_routes(road: Any, lane: tuple) -> list[list[tuple]]:
    """Every route from ``lane`` through the next ``ROUTE_DEPTH`` roads of the network (lanes left open)."""
    routes = [[lane]]
    for _ in range(ROUTE_DEPTH):
        grown = []
        for route in routes:
            end = route[-1][1]
            grown += [route + [(end, after, None)] for after in road.network.graph.get(end, {})] or [route]
        routes = grown
    return routes


def longitudinal(road: Any, lane: tuple, position: np.ndarray) -> float:
    """Where ``position`` lies along ``lane`` [m]: negative just before its start.

    A car about to leave its lane already targets the next one (highway-env switches the target half a car length
    before the end): measured on the lane it was still in, it was placed that far along the next one, tens of metres
    past the junction it was entering.
    """
    return float(road.network.get_lane(lane).local_coordinates(position)[0])


def _route_from(lane: tuple, route: list | None) -> list[tuple]:
    """``lane``, then the roads of ``route`` that come after it. highway-env drops a route's first road when the
    car targets the next lane, sometimes a step before the car is on it: the route then starts after ``lane``."""
    roads = [step[:2] for step in route or []]
    if lane[:2] in roads:
        return [lane, *route[roads.index(lane[:2]) + 1 :]]
    return [lane, *route] if route and route[0][0] == lane[1] else [lane]


def along_route(road: Any, lane: tuple, route: list | None, distances: np.ndarray) -> tuple | None:
    """``(positions (T, 2), headings (T,))`` at ``distances`` along ``lane`` then the rest of ``route``.

    Some roundabout routes cannot be followed from a changed lane (highway-env raises IndexError); then the lane alone.
    """
    for path in (_route_from(lane, route), [lane]):
        try:
            points = [road.network.position_heading_along_route(path, d, 0.0, lane) for d in distances]
        except IndexError:
            continue
        return np.array([p for p, _ in points], dtype=np.float64), np.array([h for _, h in points])
    return None


def _crossing(ego: Any, vehicle: Any) -> bool:
    """True for cars whose heading differs from ours (crossing or oncoming): their length lies across our lane."""
    return abs(np.angle(np.exp(1j * (vehicle.heading - ego.heading)))) > 0.5


def _target_speed(ego: Any, action: str) -> float:
    speeds = getattr(ego, "target_speeds", None)
    if speeds is None or action not in ("FASTER", "SLOWER"):
        return float(ego.target_speed)
    index = ego.speed_to_index(ego.speed) + (1 if action == "FASTER" else -1)
    return float(speeds[int(np.clip(index, 0, len(speeds) - 1))])


def _target_lane(ego: Any, road: Any, action: str) -> tuple | None:
    """The lane a lane change would go to, or None when there is none on that side."""
    # Lane changes start from the lane we are already heading to, as highway-env's controller does.
    _from, _to, lane_id = ego.target_lane_index
    offset = {"LANE_LEFT": -1, "LANE_RIGHT": 1}.get(action, 0)
    target = (_from, _to, lane_id + offset)
    return target if offset == 0 or target in road.network.side_lanes(ego.target_lane_index) else None


@dataclass
class Option:
    """What one action would do over the horizon: our path, the target speed, and the clearance to every car."""

    feasible: bool
    speed: float
    path: np.ndarray  # (T, 2)
    headings: np.ndarray  # (T,)
    clearance: np.ndarray  # (N,) metres to the unsafe box around our path, per other car (negative: unsafe)


def _evaluate(ego: Any, road: Any, action: str, futures: list[np.ndarray]) -> Option:
    lane = _target_lane(ego, road, action)
    speed = _target_speed(ego, action)
    if lane is None:
        return Option(False, speed, np.zeros((len(HORIZON_S), 2)), np.zeros(len(HORIZON_S)), np.zeros(0))
    s0 = longitudinal(road, lane, ego.position)
    v0 = ego.speed
    travelled = speed * HORIZON_S + (v0 - speed) * TAU_ACC * (1 - np.exp(-HORIZON_S / TAU_ACC))
    along = along_route(road, lane, ego.route, s0 + travelled)
    if along is None:
        return Option(False, speed, np.zeros((len(HORIZON_S), 2)), np.zeros(len(HORIZON_S)), np.zeros(0))
    path, headings = along
    speeds = speed + (v0 - speed) * np.exp(-HORIZON_S / TAU_ACC)
    clearance = np.array([_clearance(path, headings, speeds, future, crossing) for future, crossing in futures])
    return Option(True, speed, path, headings, clearance)


def _clearance(path: np.ndarray, headings: np.ndarray, speeds: np.ndarray, other: np.ndarray, crossing: bool) -> float:
    """Smallest distance (m) from ``other`` (its possible paths, (P, T, 2)) to the box we must keep free around our
    future positions.

    The box spans our lane width and, ahead of us, a car length plus 0.3 s of our speed (a short time gap).
    A crossing car lies across our lane, so its half length widens the box on every side.
    """
    delta = other - path  # (P, T, 2)
    cos, sin = np.cos(headings), np.sin(headings)
    lon = cos * delta[..., 0] + sin * delta[..., 1]
    lat = -sin * delta[..., 0] + cos * delta[..., 1]
    extra = 2.5 if crossing else 0.0
    front = 6.0 + 0.3 * speeds + extra
    lon_gap = np.where(lon >= 0, lon - front, -lon - REAR_MARGIN - extra)
    return float(np.max([lon_gap, np.abs(lat) - LATERAL_MARGIN - extra], axis=0).min())


def _worst(option: Option) -> float:
    """The smallest clearance of an option over the horizon (30 m with no car around; -inf when infeasible)."""
    if not option.feasible:
        return -np.inf
    return float(option.clearance.min()) if option.clearance.size else 30.0


def _choose(ego: Any, options: dict[str, Option], scenario: str, config: ExpertConfig) -> str:
    """The preferred action (:func:`_prefer`), except that speeding up with less than ``speed_up_margin`` of room
    holds the speed instead, even where speeding up was the least unsafe option (keeping unsafe, braking not possible).
    Without this hold the expert sped up with little room as that way out; the hold cut its intersection collisions
    from 0.080 to 0.030 and its state clone's (after DAgger) from 0.340 to 0.150 (issue 14,
    docs/results/driving_speed_hold)."""
    action = _prefer(ego, options, scenario, config)
    if action == "FASTER" and _worst(options["FASTER"]) < config.speed_up_margin:
        return "IDLE"
    return action


def _prefer(ego: Any, options: dict[str, Option], scenario: str, config: ExpertConfig) -> str:
    """The expert's preference, in order: if keeping lane and speed is unsafe, move to a lane with room or else
    brake (or else the least unsafe option); if a faster speed is wanted and safe, speed up; if it is wanted but
    blocked, pass in a clearly freer lane; on highways, return right when that lane is clearly free; else keep."""
    clear = {action: _worst(option) for action, option in options.items()}
    if clear["IDLE"] < config.keep_margin:
        room = [a for a in LANE_CHANGES if clear.get(a, -np.inf) >= config.change_margin]
        if room:
            return max(room, key=clear.__getitem__)
        brakes = "SLOWER" in clear and options["SLOWER"].speed < ego.target_speed and clear["SLOWER"] >= 0
        return "SLOWER" if brakes else max(clear, key=clear.__getitem__)
    kind = SCENARIOS[scenario].kind  # a shifted highway keeps the highway's rules
    cruise = CRUISE_SPEED.get(kind) or float(np.max(getattr(ego, "target_speeds", [ego.target_speed])))
    wants_speed = "FASTER" in clear and ego.target_speed < options["FASTER"].speed <= cruise
    free = config.change_margin + config.overtake_gain
    if wants_speed and clear["FASTER"] >= config.change_margin:
        return "FASTER"
    if wants_speed:  # blocked below cruise speed
        passing = [a for a in LANE_CHANGES if clear.get(a, -np.inf) >= free]
        if passing:
            return max(passing, key=clear.__getitem__)
    elif kind in KEEP_RIGHT and clear.get("LANE_RIGHT", -np.inf) >= free:
        return "LANE_RIGHT"
    return "IDLE"


# -- words ------------------------------------------------------------------------------------------------------


def _ego_frame(ego: Any, position: np.ndarray) -> tuple[float, float]:
    dx, dy = position - ego.position
    cos, sin = np.cos(ego.heading), np.sin(ego.heading)
    return float(cos * dx + sin * dy), float(-sin * dx + cos * dy)  # lateral > 0 is to our right


def _where(lon: float, lat: float, heading_diff: float) -> str:
    if abs(heading_diff) > 2.4:
        return "oncoming"
    if abs(heading_diff) > 0.8 and lon > 0:
        return "crossing from the " + ("right" if lat > 0 else "left")
    side = "" if abs(lat) < 2.0 else ("right" if lat > 0 else "left")
    along = "ahead" if lon > 3.0 else ("behind" if lon < -3.0 else "")
    return " ".join(w for w in (along, "on the" if side and not along else "", side) if w) or "beside us"


def _speed_word(ego: Any, other: Any, heading_diff: float) -> str:
    along = other.speed * np.cos(heading_diff) - ego.speed
    if getattr(other, "crashed", False):
        return "stopped after a crash"
    return "faster than us" if along > 2 else "slower than us" if along < -2 else "at our speed"


def _round5(metres: float) -> int:
    return int(5 * round(metres / 5))


def _describe_agents(env, ego, others, futures, options, action) -> list[Agent]:
    chosen, idle = options[action], options.get("IDLE", options[action])
    order = np.argsort([np.linalg.norm(v.position - ego.position) for v in others])
    agents = []
    for i in order:
        vehicle = others[i]
        box = _pixel_box(env, vehicle)
        if box is None:
            continue
        lon, lat = _ego_frame(ego, vehicle.position)
        heading_diff = float(np.angle(np.exp(1j * (vehicle.heading - ego.heading))))
        text = f"car {_where(lon, lat, heading_diff)}, about {_round5(np.hypot(lon, lat))} m away, "
        text += _speed_word(ego, vehicle, heading_diff)
        clearance = min(_clear(chosen, i), _clear(idle, i))
        state = np.array([lon, lat, vehicle.speed, heading_diff], dtype=np.float32)
        agents.append(Agent(box, text, bool(clearance < 10.0), state, clearance))
        if len(agents) == MAX_AGENTS:
            break
    return agents


def _clear(option: Option, i: int) -> float:
    return float(option.clearance[i]) if option.feasible and option.clearance.size else np.inf


def _pixel_box(env: Any, vehicle: Any) -> np.ndarray | None:
    """Axis-aligned pixel box of the car, clipped to the frame; None when it is off screen."""
    c, s = np.cos(vehicle.heading), np.sin(vehicle.heading)
    local = np.array([[dx, dy] for dx in (-1, 1) for dy in (-1, 1)]) * [vehicle.LENGTH / 2, vehicle.WIDTH / 2]
    corners = vehicle.position + local @ np.array([[c, s], [-s, c]])  # rotate by the heading
    pixels = world_to_pixel(env, corners)
    x0, y0 = pixels.min(0)
    x1, y1 = pixels.max(0)
    height, width = frame_shape(env)
    if x1 < 0 or y1 < 0 or x0 >= width or y0 >= height:
        return None
    return np.clip([x0, y0, x1, y1], 0, [width, height, width, height]).astype(np.float32)


_PHRASE = {
    "FASTER": "Speed up",
    "IDLE": "Keep speed and lane",
    "SLOWER": "Slow down",
    "LANE_LEFT": "Change to the left lane",
    "LANE_RIGHT": "Change to the right lane",
}


def _rationale(ego, road, scenario, action, options, agents) -> dict[str, str]:
    named = sorted((a for a in agents if a.relevant), key=lambda a: a.clearance)[:3]  # most critical first
    lanes = len(road.network.all_side_lanes(ego.lane_index))
    where = f"lane {ego.lane_index[2] + 1} of {lanes}" if lanes > 1 else f"the {scenario} lane"
    perception = f"We drive at {ego.speed:.0f} m/s in {where}. "
    perception += "; ".join(a.description for a in named) if named else "No car is close to our path"
    prediction = _prediction(named, options)
    planning = f"{_PHRASE[action]}: {_reason(action, named, options)}."
    return {"perception": perception + ".", "prediction": prediction, "planning": planning}


def _prediction(named: list[Agent], options: dict[str, Option]) -> str:
    if not named:
        return "The road ahead stays clear for the next 4 seconds."
    parts = []
    for agent in named:
        who = agent.description.split(",")[0]
        closing = any(word in agent.description for word in ("slower", "crossing", "oncoming", "stopped"))
        parts.append(f"the {who} {'will come close to our path' if closing else 'keeps its distance'}")
    return "Within 4 seconds " + "; ".join(parts) + "."


def _reason(action: str, named: list[Agent], options: dict[str, Option]) -> str:
    who = named[0].description.split(",")[0] if named else "car ahead"
    if action == "FASTER":
        return "our lane is clear ahead"
    if action == "SLOWER":
        if "crossing" in who:
            return "yield to the crossing car"
        return f"the {who} is too close" if named else "the way ahead is not clear"
    if action == "IDLE":
        if options.get("FASTER") is not None and options["FASTER"].feasible and named:
            return f"the {who} leaves no room to speed up"
        return "the current speed is safe"
    side = "left" if action == "LANE_LEFT" else "right"
    return f"pass the slower traffic, the {side} lane is free" if named else f"return to the {side} lane, it is free"
