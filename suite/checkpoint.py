"""Atomic training checkpoints and exact resume.

A checkpoint is a directory ``checkpoints/step-00000042/`` holding
- ``student.safetensors`` and ``terms.safetensors``: trainable weights (never the teacher),
- ``optimizer.pt`` and ``scheduler.pt``: plain state dicts, read back with ``torch.load(weights_only=True)``,
- ``rng.pt`` (torch RNG) and ``rng.json`` (Python and NumPy RNG),
- ``trainer_state.json``: step, epoch, position in the epoch, early-stopping state.

It is written to a temporary directory, fsynced and renamed into place, and only then is ``latest`` updated (also by
rename). A crash at any moment leaves the previous checkpoint intact and ``latest`` pointing at a complete one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from suite.errors import SuiteError

if TYPE_CHECKING:
    from suite.trainer import Trainer

LATEST = "latest"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(tmp, path)


def _rng_state() -> dict:
    version, keys, position, has_gauss, cached = np.random.get_state()
    python_state = random.getstate()
    return {
        "python": [python_state[0], list(python_state[1]), python_state[2]],
        "numpy": [version, keys.tolist(), position, has_gauss, cached],
    }


def _set_rng_state(state: dict) -> None:
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    version, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((version, np.array(keys, dtype=np.uint32), position, has_gauss, cached))


def _save_trainable(trainer: Trainer, directory: Path) -> None:
    """The student (unwrapped) and the loss terms' parameters: never the teacher."""
    save_model(trainer.accelerator.unwrap_model(trainer.distiller.student), str(directory / "student.safetensors"))
    save_model(trainer.distiller.terms, str(directory / "terms.safetensors"))


def _load_trainable(trainer: Trainer, directory: Path) -> None:
    load_model(trainer.accelerator.unwrap_model(trainer.distiller.student), str(directory / "student.safetensors"))
    load_model(trainer.distiller.terms, str(directory / "terms.safetensors"))


def save_checkpoint(trainer: Trainer, root: Path, keep: int = 2) -> Path | None:
    """Write a checkpoint of ``trainer`` under ``root``; returns its path (None on non-main processes)."""
    accelerator = trainer.accelerator
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return None
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{trainer.state.global_step:08d}"
    final, tmp = root / name, root / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    _save_trainable(trainer, tmp)
    torch.save(trainer.optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(trainer.scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save({"torch": torch.get_rng_state()}, tmp / "rng.pt")
    (tmp / "rng.json").write_text(json.dumps(_rng_state()))
    (tmp / "trainer_state.json").write_text(json.dumps(trainer.state.to_json(), indent=2))
    for path in tmp.iterdir():
        with path.open("rb") as stream:
            os.fsync(stream.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    _write_text_atomic(root / LATEST, name)
    _prune(root, keep)
    return final


def save_weights(trainer: Trainer, directory: Path) -> None:
    """Write the trainable weights (student and loss terms) to ``directory``, replacing it atomically."""
    accelerator = trainer.accelerator
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return
    tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _save_trainable(trainer, tmp)
    (tmp / "step.json").write_text(json.dumps({"step": trainer.state.global_step}))
    shutil.rmtree(directory, ignore_errors=True)
    os.replace(tmp, directory)


def load_weights(trainer: Trainer, directory: Path) -> None:
    """Load what :func:`save_weights` wrote back into the trainer's student and loss terms (every process)."""
    trainer.accelerator.wait_for_everyone()
    _load_trainable(trainer, directory)


def _prune(root: Path, keep: int) -> None:
    steps = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in steps[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def clear_run(output_dir: str | Path) -> None:
    """Remove an earlier run's checkpoints, best weights, metric log and TensorBoard events from ``output_dir``."""
    root = Path(output_dir)
    shutil.rmtree(root / "checkpoints", ignore_errors=True)
    shutil.rmtree(root / "best", ignore_errors=True)
    shutil.rmtree(root / "tb", ignore_errors=True)
    (root / "metrics.jsonl").unlink(missing_ok=True)


def find_latest_checkpoint(output_dir: str | Path) -> Path | None:
    root = Path(output_dir) / "checkpoints"
    pointer = root / LATEST
    if pointer.is_file():
        path = root / pointer.read_text().strip()
        if (path / "trainer_state.json").is_file():
            return path
    complete = sorted(p for p in root.glob("step-*") if (p / "trainer_state.json").is_file())
    return complete[-1] if complete else None


def load_checkpoint(path: Path, trainer: Trainer) -> None:
    """Restore weights, optimizer, scheduler, RNG and loop position from ``path`` into ``trainer``."""
    from suite.callbacks import TrainState

    if not (path / "trainer_state.json").is_file():
        raise SuiteError(f"{path}: not a complete checkpoint (no trainer_state.json)")
    _load_trainable(trainer, path)
    trainer.optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    trainer.scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    torch.set_rng_state(torch.load(path / "rng.pt", weights_only=True)["torch"])
    _set_rng_state(json.loads((path / "rng.json").read_text()))
    state = json.loads((path / "trainer_state.json").read_text())
    trainer.state = TrainState(**state)
