"""Gradio app of the driving pack: the distilled pixel planner drives one highway-env episode live, the privileged
expert beside it for comparison.

The student is the exported ``tiny-all`` planner (``suite.export``) on onnxruntime CPU, from
``runs/driving/{full,quick}/``; it sees only the last two rendered frames. Every decision is streamed to the page:
the frame with the predicted waypoints drawn on it, the action, the teacher rationale nearest to the reasoning head's
vector (cosine over the run's ``rationale_bank.json``) and the ONNX latency. The expert reads the simulator state
and says its own rationale. Inputs are bounded (a scenario from the list, seed 0..10,000, at most 40 decisions) and
each call simulates its own episode, so nothing is shared between visitors but the ONNX session.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw

from apps.common import InputError, find_run, shown_to_user
from domains.driving import scenarios as sim
from domains.driving.expert import PrivilegedExpert
from domains.driving.policies import PlannerPolicy
from suite.errors import SuiteError
from suite.export.runtime import ExportedVision, load_exported

if TYPE_CHECKING:
    import gradio as gr

RUNS = Path("runs/driving")
STUDENT = "tiny-all"
OUTPUTS = ("logits", "waypoints", "reasoning")
DRIVERS = ("student (ONNX)", "expert (privileged)")
MAX_SEED = 10_000
MAX_STEPS = 40
RELEASED = Path(__file__).resolve().parents[1] / "models" / "driving"
UPSCALE = 6  # 64 px high frames -> 384 px on the page, nearest neighbour so the pixels the student sees stay visible
FIRST = ("highway", 0)  # the episode whose first decision the page opens with
WAYPOINT_COLOUR = (255, 0, 200)
RELEVANT_COLOUR = (255, 90, 0)


def resolve_run_dir(run_dir: str | Path | None) -> Path:
    """The run the app serves: ``run_dir``, else the full profile's run, else the quick one's, else the released
    planner (``models/driving``: its export and the rationale bank)."""
    return find_run(run_dir, RUNS, "driving planners", "`distill run driving --profile quick`", released=RELEASED)


@dataclass(frozen=True)
class RationaleBank:
    """The teacher's distinct planning rationales and their unit-length text embeddings ``(R, D)``."""

    texts: list[str]
    unit: np.ndarray

    @classmethod
    def load(cls, path: Path) -> RationaleBank:
        if not path.is_file():
            raise SuiteError(f"{path}: no rationale bank; run `distill run driving --profile quick` to write it")
        bank = json.loads(path.read_text())
        texts, embeddings = bank["texts"], np.asarray(bank["embeddings"], dtype=np.float32)
        if not texts or embeddings.shape[0] != len(texts):
            raise SuiteError(f"{path}: {len(texts)} texts but {embeddings.shape[0]} embeddings; rerun the pipeline")
        return cls(texts, embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True).clip(1e-12))

    def nearest(self, vector: np.ndarray) -> tuple[str, float]:
        """The rationale closest in cosine to ``vector`` (D,), and that cosine."""
        cosines = self.unit @ (vector / max(float(np.linalg.norm(vector)), 1e-12))
        best = int(cosines.argmax())
        return self.texts[best], float(cosines[best])


class Student:
    """The exported planner on onnxruntime CPU: a frame stack in, the three outputs and the call's latency out."""

    def __init__(self, export_dir: Path):
        if not (export_dir / "spec.json").is_file():
            raise SuiteError(f"{export_dir}: no exported planner there; run `distill run driving --profile quick`")
        self.runtime = load_exported(export_dir, providers=["CPUExecutionProvider"])
        spec = self.runtime.spec
        if not isinstance(self.runtime, ExportedVision) or spec["task"] != "driving-plan":
            raise SuiteError(f"{export_dir}: not a driving planner (task {spec['task']!r})")
        if [output["name"] for output in spec["outputs"]] != list(OUTPUTS):
            raise SuiteError(f"{export_dir}: the planner's outputs are not {', '.join(OUTPUTS)}")
        self.frames = spec["image_size"][0] // 3
        self.camera = sim.camera_for_frame(*spec["image_size"][1:]).name  # the view it was trained on
        # the first call is slow; warm up before timing
        self.run(np.zeros((1, *spec["image_size"]), np.float32), np.zeros((1, 1), np.float32))

    def run(self, pixel_values: np.ndarray, ego_speed: np.ndarray) -> tuple[dict[str, np.ndarray], float]:
        """The outputs of one batch: frames ``(B, 3 * frames, H, W)`` in [0, 1] and the ego speed ``(B, 1)`` in
        m/s; and the milliseconds the call took."""
        start = time.perf_counter()
        outputs = self.runtime.model.run(None, {"pixel_values": pixel_values, "ego_speed": ego_speed})
        return dict(zip(OUTPUTS, outputs, strict=True)), 1000 * (time.perf_counter() - start)

    def forward(self, pixel_values: np.ndarray, ego_speed: np.ndarray) -> dict[str, np.ndarray]:
        """:meth:`run` as the pack's planner forward (``PlannerPolicy``); the call's latency goes to ``last_ms``."""
        outputs, self.last_ms = self.run(pixel_values, ego_speed)
        return outputs


@dataclass
class Step:
    """One decision and what followed it: what the page shows."""

    index: int  # 1-based
    image: Image.Image  # the frame the decision was taken on, upscaled and annotated
    action: str
    waypoints: np.ndarray | None  # (3, 2) forward, right [m]; None when the expert drives
    rationale: str
    latency_ms: float | None  # None when the expert drives
    crashed: bool
    done: bool
    mean_speed: float  # [m/s] over the steps so far


def check_request(scenario: Any, seed: Any, driver: Any, max_steps: Any) -> tuple[str, int, str, int]:
    """The inputs of one drive, or an InputError naming the one to change."""
    if scenario not in sim.SCENARIOS:
        raise InputError(f"unknown scenario {scenario!r}; choose one of {', '.join(sim.SCENARIOS)}")
    if driver not in DRIVERS:
        raise InputError(f"unknown driver {driver!r}; choose one of {', '.join(DRIVERS)}")
    for name, value, top in (("seed", seed, MAX_SEED), ("decisions", max_steps, MAX_STEPS)):
        low = 0 if name == "seed" else 1
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise InputError(f"{name} must be a whole number from {low} to {top:,}, got {value!r}")
        if not low <= value <= top:
            raise InputError(f"{name} must be from {low} to {top:,}, got {int(value):,}")
    return scenario, int(seed), driver, int(max_steps)


def waypoint_pixels(env: Any, waypoints: np.ndarray) -> np.ndarray:
    """``(K + 1, 2)`` pixel positions of the ego car and the waypoints ``(K, 2)`` (forward, right) in metres, in the
    last rendered frame (call it before stepping the environment)."""
    ego = env.unwrapped.vehicle
    cos, sin = np.cos(ego.heading), np.sin(ego.heading)
    rotation = np.array([[cos, -sin], [sin, cos]])  # ego frame -> world; the inverse of collect's waypoint rotation
    return sim.world_to_pixel(env, np.vstack([ego.position, ego.position + waypoints @ rotation.T]))


def annotate(frame: np.ndarray, path: np.ndarray | None = None, boxes: list[np.ndarray] = ()) -> Image.Image:
    """``frame`` (H, W, 3) upscaled UPSCALE times, with the planned ``path`` (pixels, ego first) and ``boxes``
    (x0, y0, x1, y1 pixels) drawn on it; what lies outside the frame is clipped."""
    image = Image.fromarray(frame).resize((frame.shape[1] * UPSCALE, frame.shape[0] * UPSCALE), Image.NEAREST)
    draw = ImageDraw.Draw(image)
    for box in boxes:
        draw.rectangle([float(v) * UPSCALE for v in box], outline=RELEVANT_COLOUR, width=3)
    if path is not None:
        points = [(float(x) * UPSCALE, float(y) * UPSCALE) for x, y in path]
        draw.line(points, fill=WAYPOINT_COLOUR, width=3)
        for x, y in points[1:]:
            draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=WAYPOINT_COLOUR, outline=(0, 0, 0))
    return image


def drive(
    student: Student, bank: RationaleBank, scenario: Any, seed: Any, driver: Any, max_steps: Any = MAX_STEPS
) -> Iterator[Step]:
    """Drive the episode ``seed`` of ``scenario`` for at most ``max_steps`` decisions, one Step per decision."""
    scenario, seed, driver, max_steps = check_request(scenario, seed, driver, max_steps)
    expert = PrivilegedExpert()
    planner = PlannerPolicy(student.forward, student.frames)  # the closed-loop evaluation's policy, on ONNX
    speeds = []
    env = sim.make_env(scenario, student.camera)
    try:
        frame = sim.reset(env, seed)
        for index in range(1, max_steps + 1):
            if driver == DRIVERS[0]:
                action, outputs = planner.act(frame, env, scenario)
                waypoints, latency = outputs["waypoints"], student.last_ms  # (3, 2)
                text, cosine = bank.nearest(outputs["reasoning"])
                rationale = f"{text}\n\n(nearest of {len(bank.texts)} teacher rationales, cosine {cosine:.2f})"
                image = annotate(frame, path=waypoint_pixels(env, waypoints))
            else:
                decision = expert.decide(env, scenario)
                action, waypoints, latency = decision.action, None, None
                rationale = "\n".join(f"{part.title()}: {text}" for part, text in decision.rationale.items())
                image = annotate(frame, boxes=[agent.box for agent in decision.agents if agent.relevant])
            frame, _, done, info = sim.step(env, scenario, action)
            speeds.append(float(env.unwrapped.vehicle.speed))
            crashed = bool(info.get("crashed", False))
            yield Step(index, image, action, waypoints, rationale, latency, crashed, done, float(np.mean(speeds)))
            if done:
                break
    finally:
        env.close()


def step_outputs(step: Step, max_steps: int) -> tuple[Image.Image, str, str, str, str, str]:
    """What the page's six output fields show for ``step``."""
    if step.waypoints is None:
        waypoints = "The expert plans from the simulator state; its relevant cars are boxed in orange."
    else:
        waypoints = " · ".join(
            f"{k + 1} s: {forward:.1f} m ahead, {right:+.1f} m right"
            for k, (forward, right) in enumerate(step.waypoints)
        )
    latency = "—" if step.latency_ms is None else f"{step.latency_ms:.2f} ms"
    status = "crashed" if step.crashed else "episode over, no crash" if step.done else "no crash so far"
    summary = f"Decision {step.index} of at most {max_steps} · {status} · mean speed {step.mean_speed:.1f} m/s"
    return step.image, step.action, waypoints, step.rationale, latency, summary


def header_markdown(run: Path, name: str, bank: RationaleBank) -> str:
    """What the page serves; the parameter count only when the run's report summary records it."""
    summary = run / "report" / "driving.json"
    params = json.loads(summary.read_text())["models"].get(name, {}).get("params") if summary.is_file() else None
    lines = [
        "# Driving planner",
        "A distilled pixel planner drives one highway-env episode from its camera frames alone; the privileged "
        "expert it learnt from can drive the same episode for comparison.",
        "",
        f"- **Student**: `{name}`" + (f", {params:,} parameters" if params else "") + ", onnxruntime (CPU), loaded "
        f"from `{run / 'export' / name}`",
        f"- **Rationale**: the nearest of the teacher's {len(bank.texts)} planning rationales to the student's "
        "reasoning vector",
        "- **Frame**: what the student sees, with its waypoints at 1, 2 and 3 s in magenta; when the expert drives, "
        "the cars its rationale names are boxed in orange",
    ]
    return "\n".join(lines)


def build_app(run_dir: str | Path | None = None, student: str = STUDENT) -> gr.Blocks:
    """The app over ``<run_dir>/export/<student>``; ``distill app driving`` calls it with no arguments."""
    import gradio as gr

    run = resolve_run_dir(run_dir)
    planner = Student(run / "export" / student)
    bank = RationaleBank.load(run / "rationale_bank.json")

    def on_drive(scenario: str, seed: float, driver: str, max_steps: float) -> Iterator[tuple]:
        with shown_to_user():  # drive checks the inputs before its first step
            for step in drive(planner, bank, scenario, seed, driver, max_steps):
                yield step_outputs(step, int(max_steps))

    # The first decision of the first episode is computed at start-up, so the page opens with a result.
    (initial,) = drive(planner, bank, *FIRST, DRIVERS[0], max_steps=1)
    initial_outputs = step_outputs(initial, MAX_STEPS)

    with gr.Blocks(title="Driving planner", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(header_markdown(run, student, bank))
        with gr.Row():
            scenario = gr.Dropdown(list(sim.SCENARIOS), value=FIRST[0], label="Scenario")
            seed = gr.Number(value=FIRST[1], label=f"Seed (0-{MAX_SEED:,})", precision=0, minimum=0, maximum=MAX_SEED)
            driver = gr.Radio(list(DRIVERS), value=DRIVERS[0], label="Driver")
            max_steps = gr.Slider(1, MAX_STEPS, value=MAX_STEPS, step=1, label="Decisions (at most)")
        run_button = gr.Button("Drive", variant="primary")
        with gr.Row():
            frame = gr.Image(
                value=initial_outputs[0], label="Frame (x6) and plan", type="pil", format="png", interactive=False
            )
            with gr.Column():
                action = gr.Textbox(value=initial_outputs[1], label="Action")
                waypoints = gr.Textbox(value=initial_outputs[2], label="Waypoints (ego frame)")
                rationale = gr.Textbox(value=initial_outputs[3], label="Rationale", lines=4)
                latency = gr.Textbox(value=initial_outputs[4], label="Student latency (one ONNX call)")
                summary = gr.Textbox(value=initial_outputs[5], label="Episode")
        outputs = [frame, action, waypoints, rationale, latency, summary]
        # One episode at a time: pygame's renderer is not thread-safe.
        run_button.click(on_drive, [scenario, seed, driver, max_steps], outputs, api_name="drive", concurrency_limit=1)
    return demo
