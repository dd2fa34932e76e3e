"""The four highway-env scenarios the driving pack trains and drives in, and the one action space they share.

Every scenario renders a small square RGB frame around the ego car (the student's only input) at one decision per
second. Frames come from pygame's offscreen surface; SDL_VIDEODRIVER is left alone (the dummy driver renders black).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# One action space for every scenario: highway-env's DiscreteMetaAction order.
ACTIONS = ("LANE_LEFT", "IDLE", "LANE_RIGHT", "FASTER", "SLOWER")
ACTION_INDEX = {name: i for i, name in enumerate(ACTIONS)}
FRAME_SIZE = 64  # pixels, square
# highway-env outlines every car with a 1-pixel black border, which at 64 px covers the whole 2-pixel-wide car; the
# scene is drawn at twice the size and averaged down, so cars keep their colours (ego green, others blue, crashed red).
RENDER_SCALE = 2
POLICY_HZ = 1  # decisions per second, so waypoints at 1/2/3 s are the positions 1/2/3 steps ahead


@dataclass(frozen=True)
class Scenario:
    name: str
    env_id: str
    actions: tuple[str, ...]  # the scenario's own action order (what env.step expects)
    config: dict[str, Any] = field(default_factory=dict)

    def env_action(self, action: str) -> int:
        return self.actions.index(action)

    def legal_mask(self) -> np.ndarray:
        """(5,) bool over :data:`ACTIONS`: which shared actions this scenario accepts."""
        return np.array([name in self.actions for name in ACTIONS])


_FULL = ("LANE_LEFT", "IDLE", "LANE_RIGHT", "FASTER", "SLOWER")
_COMMON = {
    "screen_width": FRAME_SIZE * RENDER_SCALE,
    "screen_height": FRAME_SIZE * RENDER_SCALE,
    "offscreen_rendering": True,
    "policy_frequency": POLICY_HZ,
    # 5 Hz physics (highway-env's own "fast" setting) keeps closed-loop evaluation affordable on 2 cores.
    "simulation_frequency": 5,
    "render_agent": False,
    "show_trajectories": False,
}

SCENARIOS: dict[str, Scenario] = {
    "highway": Scenario(
        "highway",
        "highway-v0",
        _FULL,
        {"lanes_count": 3, "vehicles_count": 15, "duration": 20, "scaling": 1.25, "centering_position": [0.25, 0.5]},
    ),
    "merge": Scenario("merge", "merge-v0", _FULL, {"scaling": 1.25, "centering_position": [0.25, 0.5]}),
    "intersection": Scenario(
        "intersection",
        "intersection-v0",
        ("SLOWER", "IDLE", "FASTER"),
        {"duration": 13, "scaling": 1.6, "centering_position": [0.5, 0.7]},
    ),
    "roundabout": Scenario(
        "roundabout", "roundabout-v0", _FULL, {"duration": 12, "scaling": 1.2, "centering_position": [0.5, 0.6]}
    ),
}


def make_env(name: str) -> Any:
    """A highway-env environment for scenario ``name`` that renders ``FRAME_SIZE`` RGB frames."""
    import gymnasium as gym
    import highway_env  # noqa: F401  (registers the environments)

    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario '{name}'; choose from {sorted(SCENARIOS)}")
    _quiet_sdl()
    scenario = SCENARIOS[name]
    config = {**_COMMON, **scenario.config, "scaling": scenario.config["scaling"] * RENDER_SCALE}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "merge-v0 is out of date": we pin the version we test
        return gym.make(
            scenario.env_id,
            render_mode="rgb_array",
            config=config,
            disable_env_checker=True,  # the checker warns about the observation we skip (see _skip_observations)
        )


def _quiet_sdl() -> None:
    # SDL turns SIGINT / SIGTERM into a quit event nobody reads, so once the camera has drawn a frame Ctrl-C does
    # nothing and a worker pool's terminate() waits forever on its workers; keep the default handlers.
    os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")
    # SDL prints "XDG_RUNTIME_DIR is invalid" on headless machines; give it a private runtime dir instead.
    if not os.environ.get("XDG_RUNTIME_DIR"):
        os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="sdl-runtime-")


def reset(env: Any, seed: int) -> np.ndarray:
    """Reset to the episode of ``seed`` and return its first frame ``(H, W, 3)`` uint8."""
    env.reset(seed=seed)
    _skip_observations(env)
    return render(env)


def step(env: Any, scenario: str, action: str) -> tuple[np.ndarray, float, bool, dict]:
    """Apply a shared action; returns ``(frame, reward, done, info)``."""
    _, reward, terminated, truncated, info = env.step(SCENARIOS[scenario].env_action(action))
    return render(env), float(reward), bool(terminated or truncated), info


def render(env: Any) -> np.ndarray:
    """The current ``(FRAME_SIZE, FRAME_SIZE, 3)`` uint8 frame."""
    frame = env.render()
    # render() switches on highway-env's intermediate-frame rendering, which the pack never looks at and which
    # costs a render per physics step; switch it off again.
    env.unwrapped.enable_auto_render = False
    k = RENDER_SCALE
    pooled = frame.reshape(FRAME_SIZE, k, FRAME_SIZE, k, 3).mean((1, 3))  # k x k average pooling
    return np.ascontiguousarray(pooled.round().astype(np.uint8))


def _skip_observations(env: Any) -> None:
    # The Kinematics observation (a pandas table per step) costs a large share of each step and nobody reads it:
    # the student sees frames and the expert reads the simulator state directly.
    env.unwrapped.observation_type.observe = lambda: np.zeros(1, dtype=np.float32)


def world_to_pixel(env: Any, xy: np.ndarray) -> np.ndarray:
    """World coordinates ``(..., 2)`` -> pixel coordinates ``(..., 2)`` (column, row) in the last rendered frame."""
    surface = env.unwrapped.viewer.sim_surface
    return (np.asarray(xy, dtype=np.float64) - surface.origin) * surface.scaling / RENDER_SCALE
