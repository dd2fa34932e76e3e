"""The privileged state the expert reads, as one fixed-length vector, and the gate that clones the expert from it.

Before a pixel planner is asked to imitate the expert, a small MLP is asked to imitate it from this state (the
simulator's own numbers, no pixels). If even that clone cannot reach near-expert open- and closed-loop numbers, the
labels are the problem, not the camera: the report shows the gate first (issue 14). The vector is built the same
way when episodes are recorded and when the clone drives (:class:`StatePolicy`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from domains.driving import scenarios as sim
from domains.driving.expert import SEE_RADIUS, along_route, longitudinal

NEIGHBOURS = 8  # nearest cars, whether or not the camera would see them
# Where the ego's own route goes: its points this far ahead, in the ego frame. Without them the clone knew the other
# cars around it but not where the junction was or that its path turned there, which the expert's clearances (and a
# camera's view of the road) depend on. On their own they did not close the clone's gap to the expert at the
# intersection (benchmarks.driving_gate_probe); they stay because the expert reads them.
ROUTE_AHEAD_M = (10.0, 20.0, 30.0)
# ego: speed / 30, speed level (the controller's target index), lane-change in progress (-1, 0, 1), lane index, lane
# count, a lane on the left, a lane on the right, lateral offset in the lane / 4 m, the rest of the current lane / 50 m
# (at most 2), then each route point ahead: longitudinal / 50 m, lateral / 10 m
EGO_FEATURES = 9 + 2 * len(ROUTE_AHEAD_M)
EGO_OFFSET = 7  # where the ego features keep the lateral offset in the lane / 4 m
# per neighbour: present, longitudinal / 50 m, lateral / 10 m (ego frame), speed difference / 10 m/s, heading diff
NEIGHBOUR_FEATURES = 5
STATE_DIM = EGO_FEATURES + NEIGHBOURS * NEIGHBOUR_FEATURES
GATE_WEIGHTS = "cloner.safetensors"  # the gate's weights in its stage's folder


def privileged_state(env: Any) -> np.ndarray:
    """``(STATE_DIM,)`` float32: the ego's own state, then its ``NEIGHBOURS`` nearest cars within the expert's
    radius, nearest first (absent ones are zeros)."""
    ego, road = env.unwrapped.vehicle, env.unwrapped.road
    lane_id = ego.lane_index[2]
    sides = {index[2] for index in road.network.side_lanes(ego.lane_index)}
    _, offset = ego.lane.local_coordinates(ego.position)
    level = ego.speed_to_index(ego.target_speed) if hasattr(ego, "speed_to_index") else 0
    state = [ego.speed / 30.0, float(level), float(np.sign(ego.target_lane_index[2] - lane_id)), float(lane_id),
             float(len(road.network.all_side_lanes(ego.lane_index))), float(lane_id - 1 in sides),
             float(lane_id + 1 in sides), offset / 4.0, *_route_ahead(ego, road)]  # fmt: skip
    cos, sin = np.cos(ego.heading), np.sin(ego.heading)
    near = sorted((v for v in road.vehicles if v is not ego), key=lambda v: np.linalg.norm(v.position - ego.position))
    rows = np.zeros((NEIGHBOURS, NEIGHBOUR_FEATURES), np.float32)
    for i, vehicle in enumerate(v for v in near if np.linalg.norm(v.position - ego.position) < SEE_RADIUS):
        if i == NEIGHBOURS:
            break
        dx, dy = vehicle.position - ego.position
        heading = float(np.angle(np.exp(1j * (vehicle.heading - ego.heading))))
        lon, lat = cos * dx + sin * dy, -sin * dx + cos * dy
        rows[i] = (1.0, lon / 50.0, lat / 10.0, (vehicle.speed - ego.speed) / 10.0, heading)
    return np.concatenate([np.array(state, np.float32), rows.ravel()])


def _route_ahead(ego: Any, road: Any) -> list[float]:
    """The rest of the ego's lane (/ 50 m, at most 2), then its route's points ``ROUTE_AHEAD_M`` ahead in the ego
    frame (longitudinal / 50 m, lateral / 10 m): straight ahead on a highway, bending where the route turns."""
    lane = ego.target_lane_index
    along = longitudinal(road, lane, ego.position)
    rest = min(max(road.network.get_lane(lane).length - along, 0.0) / 50.0, 2.0)
    path = along_route(road, lane, ego.route, along + np.array(ROUTE_AHEAD_M))
    cos, sin = np.cos(ego.heading), np.sin(ego.heading)
    offsets = path[0] - ego.position if path is not None else np.outer(ROUTE_AHEAD_M, [cos, sin])
    ahead = [((cos * dx + sin * dy) / 50.0, (-sin * dx + cos * dy) / 10.0) for dx, dy in offsets]
    return [rest, *[value for point in ahead for value in point]]


LANE_WIDTH_M = 4.0  # highway-env's default lane width
FAR = 1.0  # an empty slot's gap (/ 50 m): as far as the state reaches
# per lane (left, own, right) and side (ahead, behind): present, gap / 50 m, speed difference / 10 m/s, time to close
# the gap / 10 s (at most 1)
SLOT_FEATURES = 3 * 2 * 4


def lane_slots(states: torch.Tensor) -> torch.Tensor:
    """``(N, SLOT_FEATURES)``: the nearest car ahead and behind in the lane left of the ego, its own and the one right
    of it, read off the distance-sorted neighbour rows of ``states``.

    The expert decides from exactly these (is the car ahead closing in, is there room in the next lane?), but the
    state lists cars by distance, so which slot a car occupies changes as traffic moves; an MLP has to learn lane
    membership from lateral offsets before it can learn the rule. A car's lane is its lateral offset from the ego's
    lane centre in lane widths (approximate where lanes curve)."""
    ego_offset_m = states[:, EGO_OFFSET : EGO_OFFSET + 1] * 4.0
    rows = states[:, EGO_FEATURES:].reshape(len(states), NEIGHBOURS, NEIGHBOUR_FEATURES)
    present, lon, lat, speed_diff = rows[..., 0] > 0.5, rows[..., 1], rows[..., 2] * 10.0, rows[..., 3]
    lane = torch.round((lat + ego_offset_m) / LANE_WIDTH_M)
    slots = []
    for delta in (-1.0, 0.0, 1.0):
        for ahead in (True, False):
            member = present & (lane == delta) & ((lon > 0) if ahead else (lon <= 0))
            gap = torch.where(member, lon.abs(), torch.full_like(lon, 2 * FAR))
            nearest = gap.argmin(dim=1, keepdim=True)
            found = member.gather(1, nearest).float()
            gap = torch.where(found > 0, gap.gather(1, nearest), torch.full_like(found, FAR))
            diff = speed_diff.gather(1, nearest) * found
            closing = (-diff if ahead else diff) * 10.0  # m/s at which the gap shrinks
            seconds = (gap * 50.0 / closing.clamp_min(1e-3)).clamp(max=10.0) / 10.0
            slots.append(torch.cat([found, gap, diff, torch.where(closing > 0, seconds, torch.ones_like(seconds))], 1))
    return torch.cat(slots, dim=1)


class StateCloner(nn.Module):
    """Privileged state -> action logits: the gate's student (an MLP on standardised features; no pixels, no
    reasoning). The training set's feature mean and spread are buffers, so they travel with the weights. With
    ``slots`` it also reads :func:`lane_slots` of the state."""

    def __init__(self, hidden: int = 128, num_actions: int = len(sim.ACTIONS), slots: bool = False):
        super().__init__()
        self.slots = slots
        width = STATE_DIM + SLOT_FEATURES * slots
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("scale", torch.ones(width))
        self.net = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, num_actions))  # fmt: skip

    def features(self, state: torch.Tensor) -> torch.Tensor:
        return torch.cat([state, lane_slots(state)], dim=1) if self.slots else state

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.net((self.features(state) - self.mean) / self.scale)


def train_state_cloner(states: torch.Tensor, actions: torch.Tensor, epochs: int = 200, seed: int = 0,
                       batch_size: int = 64, lr: float = 2e-3, class_weight_power: float = 0.0,
                       slots: bool = False) -> StateCloner:  # fmt: skip
    """Behaviour cloning with cross-entropy; seconds on a CPU (a few thousand rows of ``STATE_DIM`` numbers).

    Without standardised features and with 40 epochs of 256-row batches the clone stayed at the majority action
    (IDLE, 86% of the decisive expert's highway and merge frames) even where a gradient-boosted classifier on the same
    vectors did far better: it was under-trained, not short of information.

    ``class_weight_power`` weighs each action's cross-entropy ∝ its frequency^-power (0: plain CE), as the pixel
    planners' imitation does (:func:`~domains.driving.data.class_weights`).
    """
    from domains.driving.data import class_weights  # data -> collect -> this module: imported here

    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = StateCloner(slots=slots)
    features = model.features(states)
    model.mean.copy_(features.mean(0))
    model.scale.copy_(features.std(0).clamp_min(1e-3))  # constant features (absent neighbours) stay at zero
    weights = class_weights(actions, model.net[-1].out_features, class_weight_power)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(states), generator=generator).split(batch_size):
            loss = nn.functional.cross_entropy(model(states[batch]), actions[batch], weight=weights)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
    return model.eval()


def save_cloner(model: StateCloner, path: Path) -> Path:
    from safetensors.torch import save_model

    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, str(path))
    return path


def load_cloner(path: str | Path) -> StateCloner:
    from safetensors import safe_open
    from safetensors.torch import load_model

    with safe_open(str(path), "pt") as weights:  # a clone with lane slots has wider feature statistics
        slots = weights.get_slice("mean").get_shape()[0] > STATE_DIM
    model = StateCloner(slots=slots)
    load_model(model, str(path))
    return model.eval()


class StatePolicy:
    """The gate's clone driving: reads the privileged state, takes the best legal action."""

    def __init__(self, model: StateCloner):
        self.model = model

    def reset(self) -> None:
        pass

    def act(self, frame: np.ndarray, env: Any, scenario: str) -> tuple[str, dict]:
        from domains.driving.policies import best_legal_action

        with torch.inference_mode():
            logits = self.model(torch.from_numpy(privileged_state(env))[None])[0].numpy()
        return best_legal_action(logits, scenario), {}
