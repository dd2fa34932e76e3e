"""The policies that drive a scenario: the privileged expert, a constant action, the gate's state clone, and a pixel
planner behind its frame stack; each rebuilt in a worker process from a picklable :class:`PolicySpec`."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from domains.driving import scenarios as sim
from domains.driving.expert import ExpertConfig, PrivilegedExpert


@dataclass(frozen=True)
class PolicySpec:
    """What a worker needs to rebuild a policy: the expert (``kwargs``: its margins), a constant action (``kwargs``
    = (("action", A),)), the gate's state clone from its weights file, or a planner from its kwargs and weights."""

    kind: str  # "expert" | "constant" | "state" | "planner" | "onnx" (``weights``: an exported planner's folder)
    weights: str = ""
    kwargs: tuple[tuple[str, Any], ...] = ()


def constant_spec(action: str) -> PolicySpec:
    """The trivial baseline that takes ``action`` at every step."""
    return PolicySpec("constant", kwargs=(("action", action),))


class FrameStack:
    """The planner's view: the last ``frames`` frames, oldest first; the first decision of an episode sees its frame
    repeated, as in training."""

    def __init__(self, frames: int):
        self.frames = frames
        self.history: deque[np.ndarray] = deque(maxlen=frames)

    def reset(self) -> None:
        self.history.clear()

    def push(self, frame: np.ndarray) -> np.ndarray:
        """Add an (H, W, 3) uint8 frame; returns the stack as pixel values (1, 3F, H, W) float32 in [0, 1]."""
        self.history.append(frame)
        while len(self.history) < self.frames:
            self.history.appendleft(frame)
        return np.concatenate([f.transpose(2, 0, 1) for f in self.history])[None].astype(np.float32) / 255.0


Forward = Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]  # (pixel_values, ego_speed) -> outputs


def torch_forward(planner: torch.nn.Module) -> Forward:
    """A PyTorch planner as a :data:`Forward` (eval mode, no grad); the exported ONNX planner is the other kind."""
    planner.eval()

    def forward(pixel_values: np.ndarray, ego_speed: np.ndarray) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            out = planner(torch.from_numpy(pixel_values), torch.from_numpy(ego_speed))
        return {k: out[k].numpy() for k in ("logits", "waypoints", "reasoning")}

    return forward


class PlannerPolicy:
    """Drives from its camera frames and speedometer: stacks the last ``frames`` frames, takes the best legal
    action of ``forward`` (a PyTorch planner through :func:`torch_forward`, or the exported ONNX planner)."""

    def __init__(self, forward: Forward, frames: int):
        self.forward, self.stack = forward, FrameStack(frames)

    def reset(self) -> None:
        self.stack.reset()

    def act(self, frame: np.ndarray, env: Any, scenario: str) -> tuple[str, dict[str, np.ndarray]]:
        """The action and the planner's outputs for this frame (batch axis dropped)."""
        speed = np.array([[env.unwrapped.vehicle.speed]], np.float32)  # the ego's own speedometer
        outputs = {k: v[0] for k, v in self.forward(self.stack.push(frame), speed).items()}
        return best_legal_action(outputs["logits"], scenario), outputs


def best_legal_action(logits: np.ndarray, scenario: str) -> str:
    # argmax over the legal entries only: masking with -inf would pick index 0 (LANE_LEFT) when every legal logit is
    # -inf too.
    legal = np.flatnonzero(sim.SCENARIOS[scenario].legal_mask())
    return sim.ACTIONS[int(legal[np.argmax(logits[legal])])]


class ExpertPolicy:
    def __init__(self, config: ExpertConfig | None = None):
        self.expert = PrivilegedExpert(config)

    def reset(self) -> None:
        pass

    def act(self, frame: np.ndarray, env: Any, scenario: str) -> tuple[str, dict]:
        return self.expert.decide(env, scenario).action, {}


class ConstantPolicy:
    """The trivial baseline: the same action at every step (the best legal one when the scenario lacks it)."""

    def __init__(self, action: str):
        self.action = action

    def reset(self) -> None:
        pass

    def act(self, frame: np.ndarray, env: Any, scenario: str) -> tuple[str, dict]:
        if self.action in sim.SCENARIOS[scenario].actions:
            return self.action, {}
        return best_legal_action(np.eye(len(sim.ACTIONS))[sim.ACTIONS.index(self.action)], scenario), {}


def build_policy(spec: PolicySpec) -> Any:
    if spec.kind == "expert":
        return ExpertPolicy(ExpertConfig(**dict(spec.kwargs)))
    if spec.kind == "constant":
        return ConstantPolicy(dict(spec.kwargs)["action"])
    if spec.kind == "state":
        from domains.driving.state import StatePolicy, load_cloner

        return StatePolicy(load_cloner(spec.weights))
    if spec.kind == "onnx":
        return onnx_policy(spec.weights)
    from safetensors.torch import load_model

    from suite.students.planner import PixelPlanner

    kwargs = dict(spec.kwargs)
    planner = PixelPlanner(**{**kwargs, "pretrained": False})
    load_model(planner, str(spec.weights))
    return PlannerPolicy(torch_forward(planner), kwargs.get("frames", 2))


def onnx_policy(export_dir: str) -> PlannerPolicy:
    """An exported planner (ONNX on onnxruntime CPU, one thread) behind its frame stack: how a released planner
    drives."""
    import onnxruntime as ort

    from suite.export.runtime import read_spec, verified

    spec = read_spec(export_dir)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    model = verified(export_dir, spec, "model.onnx")  # the sha256 spec.json records
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    names = [output["name"] for output in spec["outputs"]]

    def forward(pixel_values: np.ndarray, ego_speed: np.ndarray) -> dict[str, np.ndarray]:
        outputs = session.run(names, {"pixel_values": pixel_values, "ego_speed": ego_speed})
        return dict(zip(names, outputs, strict=True))

    return PlannerPolicy(forward, spec["image_size"][0] // 3)
