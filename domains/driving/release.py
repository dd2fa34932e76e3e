"""Release the driving pack's shipped planner from a finished run, so a fresh clone can serve it.

    python -m domains.driving.release RUN_DIR [--target models/driving]
    python -m domains.driving.release --recheck [--target models/driving]

Copies ``RUN_DIR/export/<backbone>-all`` (ONNX, spec with parity and sha256s; no PyTorch weights) and the teacher's
rationale bank (what the app shows the reasoning head's nearest rationale from) to ``TARGET``, and writes
``release.json`` with the open-loop action accuracy of the released ONNX planner on one freshly collected expert
episode per scenario (a fixed seed, so ``tests/test_released_models.py`` collects the same frames and recomputes it).
``--recheck`` recomputes that check for the planner already released (after a change to the simulator wrapper or the
expert changes what those episodes are), leaving the planner itself untouched.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from domains.driving.scenarios import DEFAULT_CAMERA, camera_for_frame

CHECK_SEED = 4242  # an episode seed no recipe profile trains or validates on
SHIPPED = "tiny-all"


def check_frames(scenarios: tuple[str, ...], frames: int, out_dir: Path, camera: str = DEFAULT_CAMERA) -> Any:
    """One expert episode per scenario, collected with ``CHECK_SEED`` into ``out_dir`` through ``camera``."""
    from domains.driving.collect import CollectPlan, collect
    from domains.driving.data import load

    plan = CollectPlan(scenarios, episodes=1, seed=CHECK_SEED, camera=camera)
    return load(collect(plan, out_dir, progress=False), frames, camera)


def planner_camera(kwargs: dict[str, Any]) -> str:
    """The camera a saved planner was trained through, from its frame shape (planners before cameras: square)."""
    return camera_for_frame(*kwargs.get("frame_shape", (64, 64))).name


def action_accuracy(export_dir: Path, data: Any) -> float:
    """Share of frames where the released ONNX planner's top action is the expert's."""
    from suite.export.runtime import load_exported

    model = load_exported(export_dir, providers=["CPUExecutionProvider"]).model
    pixels = data.images.float().numpy() / 255.0
    logits = model.run(["logits"], {"pixel_values": pixels, "ego_speed": data.speed.numpy()})[0]
    return float((logits.argmax(-1) == data.actions.numpy()).mean())


ALL_SCENARIOS = ("highway", "merge", "intersection", "roundabout")


def release_run(
    run_dir: Path, target: Path, name: str = SHIPPED, scenarios: tuple[str, ...] = ALL_SCENARIOS,
    command: str | None = None,
) -> Path:  # fmt: skip
    from suite.release import release_exports

    summary_path = run_dir / "report" / "driving.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    command = command or summary.get("command", f"distill run driving (run directory {run_dir})")
    check = lambda released: release_check(released, scenarios, run_dir / "release_check")  # noqa: E731
    release_exports({name: run_dir / "export" / name}, target, command, check)
    shutil.copy(run_dir / "rationale_bank.json", target / "rationale_bank.json")
    return target


def release_check(released: Path, scenarios: tuple[str, ...], work_dir: Path) -> dict[str, Any]:
    """The released planner's action accuracy on one fresh ``CHECK_SEED`` episode per scenario, seen through the
    camera it was trained on (the episodes are collected into ``work_dir``)."""
    kwargs = json.loads((released / "spec.json").read_text())["torch"]["kwargs"]
    data = check_frames(scenarios, kwargs["frames"], work_dir, planner_camera(kwargs))
    return {"scenarios": list(scenarios), "episode_seed": CHECK_SEED, "frames": len(data),
            "action_accuracy_fp32": action_accuracy(released, data)}  # fmt: skip


def recheck_release(target: Path) -> dict[str, Any]:
    """Recompute every released planner's check in ``target/release.json`` (its files and command stay)."""
    import tempfile

    from suite.release import RELEASE, read_release

    release = read_release(target)
    for name, entry in release["models"].items():
        with tempfile.TemporaryDirectory() as work:
            entry["check"] = release_check(target / "export" / name, tuple(entry["check"]["scenarios"]), Path(work))
    (target / RELEASE).write_text(json.dumps(release, indent=2) + "\n")
    return release


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, nargs="?", help="a finished driving run (not with --recheck)")
    parser.add_argument("--target", type=Path, default=Path("models/driving"))
    parser.add_argument("--recheck", action="store_true", help="recompute the released planner's check only")
    args = parser.parse_args(argv)
    if args.recheck == (args.run_dir is not None):
        parser.error("give a RUN_DIR to release, or --recheck for the planner already released")
    if args.recheck:
        recheck_release(args.target)
    else:
        release_run(args.run_dir, args.target)
    print(json.dumps(json.loads((args.target / "release.json").read_text()), indent=2))
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    sys.exit(main())
