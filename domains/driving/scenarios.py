"""The four highway-env scenarios the driving pack trains and drives in, the one action space they share, and the
cameras a planner can see them through.

Every scenario renders an RGB frame around the ego car (the student's only input) at one decision per second. A
camera fixes the frame's size for every scenario (one planner drives them all) and, per scenario, the scale and where
the ego car sits. Frames come from pygame's offscreen surface; SDL_VIDEODRIVER is left alone (the dummy driver
renders black).
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
FRAME_SIZE = 64  # pixels: the side of the square camera's frames
# highway-env outlines every car with a 1-pixel black border, which at 64 px covers the whole 2-pixel-wide car; the
# scene is drawn at twice the size and averaged down, so cars keep their colours (ego green, others blue, crashed red).
RENDER_SCALE = 2
POLICY_HZ = 1  # decisions per second, so waypoints at 1/2/3 s are the positions 1/2/3 steps ahead


@dataclass(frozen=True)
class Scenario:
    name: str
    env_id: str
    actions: tuple[str, ...]  # the scenario's own action order (what env.step expects)
    config: dict[str, Any] = field(default_factory=dict)  # highway-env settings besides the camera's
    family: str = ""  # a shifted scenario: the one it varies (its expert rules and camera view are that one's)

    @property
    def kind(self) -> str:
        return self.family or self.name

    def env_action(self, action: str) -> int:
        return self.actions.index(action)

    def legal_mask(self) -> np.ndarray:
        """(5,) bool over :data:`ACTIONS`: which shared actions this scenario accepts."""
        return np.array([name in self.actions for name in ACTIONS])


_FULL = ("LANE_LEFT", "IDLE", "LANE_RIGHT", "FASTER", "SLOWER")
_COMMON = {
    "offscreen_rendering": True,
    "policy_frequency": POLICY_HZ,
    # 5 Hz physics (highway-env's own "fast" setting) keeps closed-loop evaluation affordable on 2 cores.
    "simulation_frequency": 5,
    "render_agent": False,
    "show_trajectories": False,
}

_HIGHWAY = {"lanes_count": 3, "vehicles_count": 15, "duration": 20}
TRAINING_SCENARIOS: dict[str, Scenario] = {
    "highway": Scenario("highway", "highway-v0", _FULL, _HIGHWAY),
    "merge": Scenario("merge", "merge-v0", _FULL),
    "intersection": Scenario("intersection", "intersection-v0", ("SLOWER", "IDLE", "FASTER"), {"duration": 13}),
    "roundabout": Scenario("roundabout", "roundabout-v0", _FULL, {"duration": 12}),
}
# Distribution shift, for closed-loop evaluation only: planners trained at highway-env's default traffic density on
# three lanes drive denser traffic and a fourth lane.
SHIFTED_SCENARIOS: dict[str, Scenario] = {
    "highway-dense": Scenario("highway-dense", "highway-v0", _FULL, {**_HIGHWAY, "vehicles_density": 1.5}, "highway"),
    "highway-4lanes": Scenario("highway-4lanes", "highway-v0", _FULL, {**_HIGHWAY, "lanes_count": 4}, "highway"),
}
SCENARIOS: dict[str, Scenario] = {**TRAINING_SCENARIOS, **SHIFTED_SCENARIOS}


@dataclass(frozen=True)
class View:
    """How one scenario looks through a camera: pixels per metre, and where the ego car sits (fractions of the
    frame's width and height; highway-env keeps it there as it drives)."""

    px_per_m: float
    ego_at: tuple[float, float]


@dataclass(frozen=True)
class Camera:
    """A frame of ``width`` x ``height`` pixels for every scenario (one planner drives them all), seen per scenario
    through its :class:`View`."""

    name: str
    width: int
    height: int
    views: dict[str, View]

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of its frames."""
        return self.height, self.width


def _views(road_scale: float, road_ego: tuple[float, float], intersection: tuple, roundabout: tuple) -> dict:
    """Per-scenario views: highway and merge share one (straight roads); intersection and roundabout their own."""
    road = View(road_scale, road_ego)
    return {"highway": road, "merge": road, "intersection": View(*intersection), "roundabout": View(*roundabout)}


CAMERAS: dict[str, Camera] = {
    # The first planners' view: 64 x 64 over 51 m on highway, where a car is ~6 x 3 pixels and 75% is off-road.
    "square64": Camera(
        "square64", FRAME_SIZE, FRAME_SIZE, _views(1.25, (0.25, 0.5), (1.6, (0.5, 0.7)), (1.2, (0.5, 0.6)))
    ),
    # Ego-centred, in the spirit of highway-env's GrayscaleObservation (128 x 64 at 1.75 px/m, ego at [0.3, 0.5]):
    # 51 m ahead and the lanes on both sides on highway and merge. Intersection and roundabout traffic comes from the
    # sides: the ego (driving up the frame) sits low and the scale is smaller, so the crossing roads fit (116 m wide,
    # 49 m ahead).
    "ego": Camera("ego", 128, 64, _views(1.75, (0.3, 0.5), (1.1, (0.5, 0.85)), (1.1, (0.5, 0.85)))),
}
DEFAULT_CAMERA = "square64"  # the released planner's; the driving recipe chooses its own


def camera(name: str) -> Camera:
    if name not in CAMERAS:
        raise ValueError(f"unknown camera '{name}'; choose from {sorted(CAMERAS)}")
    return CAMERAS[name]


def camera_for_frame(height: int, width: int) -> Camera:
    """The camera whose frames are ``height`` x ``width`` (an exported planner records only its input's shape)."""
    for cam in CAMERAS.values():
        if cam.shape == (height, width):
            return cam
    raise ValueError(f"no camera renders {height}x{width} frames; cameras: {sorted(CAMERAS)}")


def make_env(name: str, camera_name: str = DEFAULT_CAMERA) -> Any:
    """A highway-env environment for scenario ``name`` that renders RGB frames through camera ``camera_name``."""
    import gymnasium as gym
    import highway_env  # noqa: F401  (registers the environments)

    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario '{name}'; choose from {sorted(SCENARIOS)}")
    _quiet_sdl()
    _restore_idm_defaults()  # the first call in a process captures them, before any environment was reset
    scenario, cam = SCENARIOS[name], camera(camera_name)
    view = cam.views[scenario.kind]
    config = {**_COMMON, **scenario.config, "screen_width": cam.width * RENDER_SCALE,
              "screen_height": cam.height * RENDER_SCALE, "scaling": view.px_per_m * RENDER_SCALE,
              "centering_position": list(view.ego_at)}  # fmt: skip
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


# intersection-v0 sets three class attributes of highway-env's IDMVehicle at every reset (jam distance, comfortable
# accelerations), and they then hold for every scenario the process drives next: a worker that had driven an
# intersection replayed a merge seed differently. Every reset starts from the defaults instead.
_IDM_ATTRIBUTES = ("DISTANCE_WANTED", "COMFORT_ACC_MAX", "COMFORT_ACC_MIN")
_idm_defaults: dict[str, float] = {}


def _restore_idm_defaults() -> None:
    from highway_env.vehicle.behavior import IDMVehicle

    if not _idm_defaults:
        _idm_defaults.update({name: getattr(IDMVehicle, name) for name in _IDM_ATTRIBUTES})
    for name, value in _idm_defaults.items():
        setattr(IDMVehicle, name, value)


def reset(env: Any, seed: int) -> np.ndarray:
    """Reset to the episode of ``seed`` and return its first frame ``(H, W, 3)`` uint8."""
    _restore_idm_defaults()
    env.reset(seed=seed)
    _skip_observations(env)
    return render(env)


def step(env: Any, scenario: str, action: str) -> tuple[np.ndarray, float, bool, dict]:
    """Apply a shared action; returns ``(frame, reward, done, info)``."""
    _, reward, terminated, truncated, info = env.step(SCENARIOS[scenario].env_action(action))
    return render(env), float(reward), bool(terminated or truncated), info


def render(env: Any) -> np.ndarray:
    """The current ``(height, width, 3)`` uint8 frame of the environment's camera."""
    frame = env.render()
    # render() switches on highway-env's intermediate-frame rendering, which the pack never looks at and which
    # costs a render per physics step; switch it off again.
    env.unwrapped.enable_auto_render = False
    k = RENDER_SCALE
    height, width = frame_shape(env)
    pooled = frame.reshape(height, k, width, k, 3).mean((1, 3))  # k x k average pooling
    return np.ascontiguousarray(pooled.round().astype(np.uint8))


def _skip_observations(env: Any) -> None:
    # The Kinematics observation (a pandas table per step) costs a large share of each step and nobody reads it:
    # the student sees frames and the expert reads the simulator state directly.
    env.unwrapped.observation_type.observe = lambda: np.zeros(1, dtype=np.float32)


def frame_shape(env: Any) -> tuple[int, int]:
    """(height, width) of the frames ``env`` renders (its camera's)."""
    config = env.unwrapped.config
    return config["screen_height"] // RENDER_SCALE, config["screen_width"] // RENDER_SCALE


def world_to_pixel(env: Any, xy: np.ndarray) -> np.ndarray:
    """World coordinates ``(..., 2)`` -> pixel coordinates ``(..., 2)`` (column, row) in the last rendered frame."""
    surface = env.unwrapped.viewer.sim_surface
    return (np.asarray(xy, dtype=np.float64) - surface.origin) * surface.scaling / RENDER_SCALE
