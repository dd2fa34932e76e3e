"""Callbacks extend the one training loop: progress bar, metric logs, evaluation, early stopping, checkpoints.

Each hook receives the :class:`~suite.trainer.Trainer`; state that must survive a resume lives in
:class:`TrainState`, which the checkpoint writes as JSON.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from suite.trainer import Trainer


@dataclass
class TrainState:
    total_steps: int = 0
    steps_per_epoch: int = 0
    global_step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    should_stop: bool = False
    best_metric: float | None = None
    evals_without_improvement: int = 0
    best_weights_metric: float | None = None
    best_weights_step: int = -1
    last_eval_step: int = -1
    last_metrics: dict[str, float] = field(default_factory=dict)
    # Evaluations before this step neither pick the best weights nor count toward early stopping: a curriculum
    # (KPOD's easy-to-hard steps) has not shown the model all of its task yet.
    select_from_step: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Callback:
    """Base class: override the hooks you need. All hooks are no-ops by default."""

    def on_train_begin(self, trainer: Trainer) -> None: ...

    def on_step_end(self, trainer: Trainer, logs: dict[str, float]) -> None: ...

    def on_evaluate(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...

    def on_epoch_end(self, trainer: Trainer) -> None: ...

    def on_train_end(self, trainer: Trainer) -> None: ...


class ProgressBar(Callback):
    """A bar over optimizer steps showing the running loss (plain lines when the output is not a terminal)."""

    def on_train_begin(self, trainer: Trainer) -> None:
        from suite.progress import progress_bar

        state = trainer.state
        self.bar = progress_bar(
            state.total_steps, "train", "step", enabled=trainer.accelerator.is_main_process, initial=state.global_step
        )

    def on_step_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)

    def on_evaluate(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        self.bar.write(f"step {trainer.state.global_step}: {shown}")

    def on_train_end(self, trainer: Trainer) -> None:
        self.bar.close()


class MetricsLogger(Callback):
    """Appends training and evaluation metrics to ``metrics.jsonl`` and, optionally, TensorBoard (``tb/``)."""

    def __init__(self, output_dir: str | Path, every: int = 10, tensorboard: bool = True):
        self.path = Path(output_dir) / "metrics.jsonl"
        self.every, self.tensorboard = every, tensorboard
        self.writer = None

    def on_train_begin(self, trainer: Trainer) -> None:
        if not trainer.accelerator.is_main_process:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        resumed_at = trainer.state.global_step
        if resumed_at:
            self._drop_records_after(resumed_at)
        if self.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step hides events a killed run wrote past the checkpoint it is resumed from.
            self.writer = SummaryWriter(
                str(self.path.parent / "tb"), purge_step=resumed_at + 1 if resumed_at else None
            )

    def _drop_records_after(self, step: int) -> None:
        """A resumed run replays the steps after its checkpoint: drop what the killed run logged for them."""
        if not self.path.is_file():
            return
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if _logged_step(line) <= step]
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(kept), encoding="utf-8")
        tmp.replace(self.path)

    def _write(self, trainer: Trainer, kind: str, values: dict[str, float]) -> None:
        if not trainer.accelerator.is_main_process:
            return
        step = trainer.state.global_step
        record = {"kind": kind, "step": step, "epoch": trainer.state.epoch, "time": time.time(), **values}
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for name, value in values.items():
                if isinstance(value, int | float):
                    self.writer.add_scalar(f"{kind}/{name}", value, step)

    def on_step_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        if trainer.state.global_step % self.every == 0:
            self._write(trainer, "train", logs)

    def on_evaluate(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self._write(trainer, "eval", metrics)

    def on_train_end(self, trainer: Trainer) -> None:
        if self.writer is not None:
            self.writer.close()


def _logged_step(line: str) -> float:
    """The step of one metrics.jsonl line; a line a kill cut short counts as after every checkpoint."""
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return float("inf")


class EvaluationCallback(Callback):
    """Evaluates every ``every`` steps, or at each epoch end when ``every`` is 0, and once more at the end."""

    def __init__(self, every: int = 0):
        self.every = every

    def _evaluate(self, trainer: Trainer) -> None:
        if trainer.state.last_eval_step != trainer.state.global_step:
            trainer.state.last_eval_step = trainer.state.global_step
            trainer.run_evaluation()

    def on_step_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        if self.every and trainer.state.global_step % self.every == 0:
            self._evaluate(trainer)

    def on_epoch_end(self, trainer: Trainer) -> None:
        if not self.every:
            self._evaluate(trainer)

    def on_train_end(self, trainer: Trainer) -> None:
        self._evaluate(trainer)


def _improves(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` in the ``mode`` direction (always, with no best)."""
    if best is None:
        return True
    return value > best + min_delta if mode == "max" else value < best - min_delta


class EarlyStopping(Callback):
    """Stops training after ``patience`` evaluations without improvement of ``metric``."""

    def __init__(self, metric: str, mode: str = "max", patience: int = 3, min_delta: float = 0.0):
        self.metric, self.mode, self.patience, self.min_delta = metric, mode, patience, min_delta

    def on_evaluate(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if self.metric not in metrics:
            raise KeyError(f"early stopping watches '{self.metric}', but evaluation returned {sorted(metrics)}")
        state = trainer.state
        if state.global_step < state.select_from_step:
            return
        if _improves(metrics[self.metric], state.best_metric, self.mode, self.min_delta):
            state.best_metric, state.evals_without_improvement = metrics[self.metric], 0
            return
        state.evals_without_improvement += 1
        if state.evals_without_improvement >= self.patience:
            state.should_stop = True


class KeepBestWeights(Callback):
    """Keeps the trainable weights of the best evaluation by ``metric`` in ``output_dir/best/`` and loads them back
    at the end of training, so a model that peaked before the last epoch ends at its peak.

    The copy lives beside the checkpoints and survives a resume; it is written atomically (safetensors).
    """

    def __init__(self, output_dir: str | Path, metric: str, mode: str = "max"):
        self.dir, self.metric, self.mode = Path(output_dir) / "best", metric, mode

    def on_evaluate(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if self.metric not in metrics:
            raise KeyError(
                f"the best weights are picked by '{self.metric}', but evaluation returned {sorted(metrics)}"
            )
        state = trainer.state
        if state.global_step < state.select_from_step or not _improves(
            metrics[self.metric], state.best_weights_metric, self.mode
        ):
            return
        state.best_weights_metric, state.best_weights_step = float(metrics[self.metric]), state.global_step
        from suite.checkpoint import save_weights

        save_weights(trainer, self.dir)

    def on_train_end(self, trainer: Trainer) -> None:
        state = trainer.state
        if state.best_weights_step < 0 or state.best_weights_step == state.global_step:
            return
        from suite.checkpoint import load_weights

        load_weights(trainer, self.dir)
        if trainer.accelerator.is_main_process:
            print(f"restored the best weights: step {state.best_weights_step}, "
                  f"{self.metric}={state.best_weights_metric:.4f}")  # fmt: skip


class CheckpointCallback(Callback):
    """Writes an atomic checkpoint every ``every`` steps (or at each epoch end when 0) and at the end of training."""

    def __init__(self, output_dir: str | Path, every: int = 0, keep: int = 2):
        self.output_dir, self.every, self.keep = Path(output_dir), every, keep
        self.last_saved_step = -1

    def _save(self, trainer: Trainer) -> None:
        from suite.checkpoint import save_checkpoint

        if self.last_saved_step != trainer.state.global_step:
            self.last_saved_step = trainer.state.global_step
            save_checkpoint(trainer, self.output_dir / "checkpoints", keep=self.keep)

    def on_step_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        if self.every and trainer.state.global_step % self.every == 0:
            self._save(trainer)

    def on_epoch_end(self, trainer: Trainer) -> None:
        if not self.every:
            self._save(trainer)

    def on_train_end(self, trainer: Trainer) -> None:
        self._save(trainer)
