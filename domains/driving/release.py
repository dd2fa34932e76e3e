"""Release the driving pack's shipped planner from a finished run, so a fresh clone can serve it.

    python -m domains.driving.release RUN_DIR [--target models/driving]

Copies ``RUN_DIR/export/<backbone>-all`` (ONNX, spec with parity and sha256s; no PyTorch weights) and the teacher's
rationale bank (what the app shows the reasoning head's nearest rationale from) to ``TARGET``, and writes
``release.json`` with the open-loop action accuracy of the released ONNX planner on one freshly collected expert
episode per scenario (a fixed seed, so ``tests/test_released_models.py`` collects the same frames and recomputes it).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

CHECK_SEED = 4242  # an episode seed no recipe profile trains or validates on
SHIPPED = "tiny-all"


def check_frames(scenarios: tuple[str, ...], frames: int, out_dir: Path) -> Any:
    """One expert episode per scenario, collected with ``CHECK_SEED`` into ``out_dir``."""
    from domains.driving.collect import CollectPlan, collect
    from domains.driving.data import load

    return load(collect(CollectPlan(scenarios, episodes=1, seed=CHECK_SEED), out_dir, progress=False), frames)


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
    recipe = json.loads((run_dir / "export" / name / "spec.json").read_text())["torch"]["kwargs"]

    def check(released: Path) -> dict[str, Any]:
        data = check_frames(scenarios, recipe["frames"], run_dir / "release_check")
        return {"scenarios": list(scenarios), "episode_seed": CHECK_SEED, "frames": len(data),
                "action_accuracy_fp32": action_accuracy(released, data)}  # fmt: skip

    command = command or summary.get("command", f"distill run driving (run directory {run_dir})")
    release_exports({name: run_dir / "export" / name}, target, command, check)
    shutil.copy(run_dir / "rationale_bank.json", target / "rationale_bank.json")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--target", type=Path, default=Path("models/driving"))
    args = parser.parse_args(argv)
    released = release_run(args.run_dir, args.target)
    print(json.dumps(json.loads((released / "release.json").read_text()), indent=2))
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    sys.exit(main())
