"""Record expert episodes into shards: frames, ego and agent states, expert actions, future waypoints, agent boxes
and the teacher's texts.

A shard holds ``shard_episodes`` consecutive episodes of one scenario: ``{scenario}-{index:04d}.npz`` (arrays) and a
``.json`` twin (texts). Both are written to a temporary name and renamed, npz last, so a shard exists completely or
not at all and an interrupted collection resumes at the first missing shard. Episode seeds derive from
``(seed, scenario, episode)`` only, so the same settings give the same data on any machine and in any shard order.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from domains.driving import scenarios as sim
from domains.driving.expert import MAX_AGENTS, ExpertConfig, PrivilegedExpert
from domains.driving.policies import PolicySpec, build_policy
from domains.driving.state import STATE_DIM, privileged_state

WAYPOINT_STEPS = (1, 2, 3)  # seconds ahead at one decision per second
MAX_EPISODE_STEPS = 40
# The expert's clearances are kept within [-10, 30] m: 30 m is what it scores an empty road, and below -10 m a car is
# inside our box either way.
CLEARANCE_RANGE = (-10.0, 30.0)


@dataclass(frozen=True)
class CollectPlan:
    scenarios: tuple[str, ...]
    episodes: int  # per scenario
    seed: int
    shard_episodes: int = 10
    camera: str = sim.DEFAULT_CAMERA  # what the frames show (sim.CAMERAS)
    expert: ExpertConfig = field(default_factory=ExpertConfig)
    # DAgger: a learned policy drives (each step with probability 1 - beta) while the expert labels every frame
    driver: PolicySpec | None = None
    beta: float = 1.0
    # (scenario, episodes) pairs in place of ``episodes`` for those scenarios: the first ``episodes`` of them are the
    # same episodes either way. Not in the repr: plans without any print as they did (stage fingerprints).
    scenario_episodes: tuple[tuple[str, int], ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.scenarios) - set(sim.SCENARIOS))
        if unknown:
            raise ValueError(f"unknown scenarios {unknown}; choose from {sorted(sim.SCENARIOS)}")
        sim.camera(self.camera)  # an unknown camera fails here, not in a worker
        if self.episodes < 1 or self.shard_episodes < 1:
            raise ValueError("episodes and shard_episodes must be >= 1")
        stray = sorted({s for s, _ in self.scenario_episodes} - set(self.scenarios))
        if stray or any(n < 1 for _, n in self.scenario_episodes):
            raise ValueError(f"scenario_episodes must give >= 1 episodes of the plan's own scenarios (got "
                             f"{dict(self.scenario_episodes)})")  # fmt: skip
        if not 0 <= self.beta <= 1 or (self.driver is None and self.beta != 1):
            raise ValueError(f"beta must be in [0, 1], and below 1 only with a driver (got {self.beta})")

    def episodes_of(self, scenario: str) -> int:
        """How many episodes of ``scenario`` the plan collects."""
        return dict(self.scenario_episodes).get(scenario, self.episodes)


def episode_seed(seed: int, scenario: str, episode: int) -> int:
    digest = hashlib.sha256(f"{seed}:{scenario}:{episode}".encode()).hexdigest()
    return int(digest[:8], 16)


def collect(plan: CollectPlan, out_dir: str | Path, progress: bool = True, workers: int = 1) -> list[Path]:
    """Collect every missing shard of ``plan`` under ``out_dir`` (``workers`` processes, one shard per task);
    returns all shard paths (npz), in order. Shards are independent, so the order they finish in changes nothing."""
    from suite.progress import progress_bar

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_manifest(out, plan)
    shards = [
        (scenario, index)
        for scenario in plan.scenarios
        for index in range((plan.episodes_of(scenario) + plan.shard_episodes - 1) // plan.shard_episodes)
    ]
    todo = [
        (plan, out, scenario, index) for scenario, index in shards if not _shard_path(out, scenario, index).exists()
    ]
    bar = progress_bar(len(todo), "collect shards", "shard", enabled=progress and bool(todo))
    with bar:
        if workers > 1 and len(todo) > 1:
            # spawn: a forked child would inherit pygame and torch state from the parent.
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for _ in pool.imap_unordered(_collect_shard, todo):
                    bar.update(1)
                pool.close()  # the workers finish on their own; the context's terminate() is then a no-op
                pool.join()
        else:
            for task in todo:
                _collect_shard(task)
                bar.update(1)
    return [_shard_path(out, *s) for s in shards]


def _collect_shard(task: tuple[CollectPlan, Path, str, int]) -> None:
    plan, out, scenario, index = task
    expert = PrivilegedExpert(plan.expert)
    driver = None
    if plan.driver is not None:
        import torch

        torch.set_num_threads(1)  # one small planner per worker process: threads would only contend
        driver = build_policy(plan.driver)
    first = index * plan.shard_episodes
    episodes = range(first, min(first + plan.shard_episodes, plan.episodes_of(scenario)))
    recorded = [record_episode(scenario, plan.seed, e, expert, plan.camera, driver, plan.beta) for e in episodes]
    _write_shard(out, scenario, index, recorded)


def _check_manifest(out: Path, plan: CollectPlan) -> None:
    """Refuse to mix shards of different plans in one directory (a resumed run must ask for the same data)."""
    manifest = out / "manifest.json"
    wanted = {**json.loads(json.dumps(asdict(plan))), "frame_shape": list(sim.camera(plan.camera).shape),
              "state_dim": STATE_DIM}  # fmt: skip
    if not plan.scenario_episodes:  # as manifests were written before plans had them: those shards stay usable
        del wanted["scenario_episodes"]
    if manifest.exists():
        found = json.loads(manifest.read_text())
        if found != wanted:
            raise ValueError(f"{out} holds shards of another collection ({found}); use a new directory")
        return
    manifest.write_text(json.dumps(wanted, indent=1))


def _shard_path(out: Path, scenario: str, index: int) -> Path:
    return out / f"{scenario}-{index:04d}.npz"


def record_episode(
    scenario: str, seed: int, episode: int, expert: PrivilegedExpert | None = None, camera: str = sim.DEFAULT_CAMERA,
    driver: Any = None, beta: float = 1.0,
) -> dict[str, Any]:  # fmt: skip
    """One episode as arrays (one row per decision) and texts, its frames seen through ``camera``. The expert labels
    every frame; it also drives, except that with a ``driver`` (DAgger) each step is the driver's with probability
    ``1 - beta`` (a coin seeded by the episode), so the frames are the states the learner visits."""
    expert = expert or PrivilegedExpert()
    env = sim.make_env(scenario, camera)
    coin = np.random.default_rng(episode_seed(seed + 1, scenario, episode))
    if driver is not None:
        driver.reset()
    try:
        frame = sim.reset(env, episode_seed(seed, scenario, episode))
        rows, positions, states, followed, done, info = [], [], [], [], False, {}
        while not done and len(rows) < MAX_EPISODE_STEPS:
            ego = env.unwrapped.vehicle
            positions.append((ego.position.copy(), float(ego.heading)))
            states.append(privileged_state(env))  # what the gate's clone reads (the expert reads the same world)
            decision = expert.decide(env, scenario)
            action = decision.action
            if driver is not None:
                driven, _ = driver.act(frame, env, scenario)  # every step: the driver's frame stack stays current
                action = driven if coin.random() >= beta else action
            rows.append((frame, float(ego.speed), decision))
            followed.append(action == decision.action)
            frame, _, done, info = sim.step(env, scenario, action)
        ego = env.unwrapped.vehicle
        positions.append((ego.position.copy(), float(ego.heading)))
    finally:
        env.close()
    return _episode_arrays(scenario, episode, rows, positions, states, followed, bool(info.get("crashed", False)))


def _episode_arrays(scenario, episode, rows, positions, states, followed, crashed) -> dict[str, Any]:
    n = len(rows)
    waypoints = np.zeros((n, len(WAYPOINT_STEPS), 2), np.float32)
    waypoint_mask = np.zeros((n, len(WAYPOINT_STEPS)), bool)
    for t in range(n):
        origin, heading = positions[t]
        rotation = np.array([[np.cos(heading), -np.sin(heading)], [np.sin(heading), np.cos(heading)]])
        for k, ahead in enumerate(WAYPOINT_STEPS):
            # a waypoint is the expert's plan only while the expert's actions were the ones taken
            if t + ahead < len(positions) and all(followed[t : t + ahead]):
                waypoints[t, k] = (positions[t + ahead][0] - origin) @ rotation  # (forward, right) in metres
                waypoint_mask[t, k] = True
    boxes = np.zeros((n, MAX_AGENTS, 4), np.float32)
    agent_state = np.zeros((n, MAX_AGENTS, 4), np.float32)
    agent_mask = np.zeros((n, MAX_AGENTS), bool)
    relevant = np.zeros((n, MAX_AGENTS), bool)
    for t, (_, _, decision) in enumerate(rows):
        for a, agent in enumerate(decision.agents):
            boxes[t, a], agent_state[t, a] = agent.box, agent.state
            agent_mask[t, a], relevant[t, a] = True, agent.relevant
    arrays = {
        "frames": np.stack([frame for frame, _, _ in rows]),  # (N, H, W, 3) uint8
        "actions": np.array([sim.ACTION_INDEX[d.action] for _, _, d in rows], np.int64),
        "clearances": np.stack([clearance_row(d.clearances) for _, _, d in rows]),
        "speed": np.array([speed for _, speed, _ in rows], np.float32),
        "state": np.stack(states),  # (N, STATE_DIM) privileged state
        "waypoints": waypoints,
        "waypoint_mask": waypoint_mask,
        "boxes": boxes,
        "agent_state": agent_state,
        "agent_mask": agent_mask,
        "relevant": relevant,
        "step": np.arange(n, dtype=np.int64),
        "episode": np.full(n, episode, np.int64),
        "crashed": np.full(n, crashed),
    }
    texts = [{**d.rationale, "agents": [a.description for a in d.agents]} for _, _, d in rows]
    return {"arrays": arrays, "texts": texts, "scenario": scenario}


def clearance_row(clearances: dict[str, float]) -> np.ndarray:
    """(len(ACTIONS),) float32: the expert's clearance of each action within :data:`CLEARANCE_RANGE`; NaN where the
    action is illegal in the scenario or infeasible (no lane there)."""
    row = np.full(len(sim.ACTIONS), np.nan, np.float32)
    for action, metres in clearances.items():
        if np.isfinite(metres):
            row[sim.ACTION_INDEX[action]] = np.clip(metres, *CLEARANCE_RANGE)
    return row


def _write_shard(out: Path, scenario: str, index: int, episodes: list[dict[str, Any]]) -> None:
    arrays = {key: np.concatenate([e["arrays"][key] for e in episodes]) for key in episodes[0]["arrays"]}
    texts = [row for e in episodes for row in e["texts"]]
    path = _shard_path(out, scenario, index)
    tmp_json, tmp_npz = path.with_suffix(".json.tmp"), path.with_suffix(".tmp.npz")
    tmp_json.write_text(json.dumps({"scenario": scenario, "texts": texts}))
    np.savez_compressed(tmp_npz, **arrays)
    os.replace(tmp_json, path.with_suffix(".json"))
    os.replace(tmp_npz, path)  # last: the npz marks the shard complete


def load_shard(path: str | Path) -> tuple[dict[str, np.ndarray], list[dict[str, Any]], str]:
    """``(arrays, texts, scenario)`` of one shard; a damaged shard names its file."""
    path = Path(path)
    # A truncated npz raises BadZipFile and a corrupted member zlib.error; neither is an OSError or ValueError.
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        meta = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise ValueError(f"{path}: damaged shard ({error}); delete it and collect again to rebuild it") from None
    if len(meta["texts"]) != len(arrays["actions"]):
        raise ValueError(f"{path}: {len(meta['texts'])} text rows for {len(arrays['actions'])} frames")
    # shards collected before the expert's clearances were recorded: no clearance targets (NaN) for their frames
    arrays.setdefault("clearances", np.full((len(arrays["actions"]), len(sim.ACTIONS)), np.nan, np.float32))
    return arrays, meta["texts"], meta["scenario"]
