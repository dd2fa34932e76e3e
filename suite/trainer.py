"""The one training loop, on Hugging Face Accelerate.

One CPU process here; ``accelerate launch`` runs the same code on several GPUs or nodes (DDP, FSDP, DeepSpeed).
New behaviour arrives as a :class:`~suite.callbacks.Callback` (progress, logging, evaluation, early stopping,
checkpoints), never as a flag on the loop.

Resuming is exact on CPU: a checkpoint holds the trainable weights (safetensors), optimizer and scheduler state, the
RNG states and the position in the epoch; the data order of every epoch is a pure function of ``(seed, epoch)``, so a
run killed at any point and resumed ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from suite.callbacks import (
    Callback,
    CheckpointCallback,
    EarlyStopping,
    EvaluationCallback,
    KeepBestWeights,
    MetricsLogger,
    ProgressBar,
    TrainState,
)
from suite.checkpoint import clear_run, find_latest_checkpoint, load_checkpoint
from suite.config import check
from suite.distiller import Distiller

# [(indices, count), ...]: an epoch draws ``count`` of each group's ``indices`` (see EpochSampler)
EpochDraws = Sequence[tuple[Sequence[int], int]]


@dataclass
class TrainerConfig:
    """Settings of the training loop. Defaults suit fine-tuning small encoders on CPU."""

    output_dir: str = field(default="runs/default", metadata={"help": "where logs and checkpoints go"})
    epochs: int = field(default=3, metadata={"help": "passes over the training set"})
    max_steps: int = field(default=0, metadata={"help": "stop after this many optimizer steps (0: use epochs)"})
    batch_size: int = field(default=32, metadata={"help": "examples per step and process"})
    grad_accum_steps: int = field(default=1, metadata={"help": "micro-batches accumulated per optimizer step"})
    lr: float = field(default=5e-4, metadata={"help": "peak learning rate (AdamW)"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW decoupled weight decay"})
    warmup_ratio: float = field(default=0.1, metadata={"help": "fraction of steps with linear warm-up"})
    schedule: str = field(default="linear", metadata={"help": "decay after warm-up: linear | cosine | constant"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping (0: off)"})
    seed: int = field(default=0, metadata={"help": "seed for weights init, data order and dropout"})
    log_every: int = field(default=10, metadata={"help": "steps between metric log lines"})
    eval_every: int = field(default=0, metadata={"help": "steps between evaluations (0: at each epoch end)"})
    checkpoint_every: int = field(default=0, metadata={"help": "steps between checkpoints (0: at each epoch end)"})
    keep_checkpoints: int = field(default=2, metadata={"help": "how many recent checkpoints to keep"})
    watch_metric: str = field(
        default="accuracy",
        metadata={"help": "evaluation metric that picks the best weights and drives early stopping"},
    )
    watch_mode: str = field(default="max", metadata={"help": "max or min: which way watch_metric improves"})
    restore_best: bool = field(
        default=True, metadata={"help": "end with the weights of the best evaluation, not the last (needs evaluation)"}
    )
    early_stopping_patience: int = field(default=0, metadata={"help": "evaluations without improvement (0: off)"})
    mixed_precision: str = field(
        default="no",
        metadata={
            "help": "no | fp16 (GPU) | bf16 (GPU, or CPU autocast) | auto (bf16 where the GPU or CPU runs it "
            "natively, else no)"
        },
    )
    group_by_length: bool = field(
        default=False,
        metadata={"help": "batch examples of similar length (less padding); items need 'input_ids'"},
    )
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})
    tensorboard: bool = field(default=True, metadata={"help": "also write TensorBoard event files"})

    def __post_init__(self) -> None:
        check(self.epochs >= 1 or self.max_steps > 0, "epochs", f"must be >= 1, got {self.epochs}")
        check(self.max_steps >= 0, "max_steps", f"must be >= 0, got {self.max_steps}")
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        check(self.grad_accum_steps >= 1, "grad_accum_steps", f"must be >= 1, got {self.grad_accum_steps}")
        check(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        check(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        check(0 <= self.warmup_ratio < 1, "warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}")
        check(self.schedule in ("linear", "cosine", "constant"), "schedule", f"unknown schedule '{self.schedule}'")
        check(self.max_grad_norm >= 0, "max_grad_norm", f"must be >= 0, got {self.max_grad_norm}")
        check(self.log_every >= 1, "log_every", f"must be >= 1, got {self.log_every}")
        check(self.eval_every >= 0, "eval_every", f"must be >= 0, got {self.eval_every}")
        check(self.checkpoint_every >= 0, "checkpoint_every", f"must be >= 0, got {self.checkpoint_every}")
        check(self.keep_checkpoints >= 1, "keep_checkpoints", f"must be >= 1, got {self.keep_checkpoints}")
        check(self.watch_mode in ("max", "min"), "watch_mode", "must be max or min")
        check(self.mixed_precision in MIXED_PRECISIONS, "mixed_precision", f"must be one of {MIXED_PRECISIONS}")


class EpochSampler(Sampler[int]):
    """Shuffles with a generator seeded by ``(seed, epoch)`` and can start mid-epoch, so resuming replays nothing.

    With ``lengths`` (one per example) batches are grouped by length: the shuffled order is cut into chunks of 50
    batches, each chunk is sorted by length and cut into batches, and the full batches are shuffled (the one short
    batch goes last so every later batch stays aligned). Transformers on CPU cost roughly length x batch, so
    this cuts the padding a random batch carries, while each epoch still sees a new random order.

    With ``draws`` (``[(indices, count), ...]``) an epoch is not every example once: it is ``count`` examples of
    each group's ``indices``, a fresh random choice each epoch (examples in no group are never drawn). A group with
    many similar examples can then add variety without adding steps.
    """

    CHUNK_BATCHES = 50

    def __init__(
        self,
        size: int,
        seed: int,
        shuffle: bool = True,
        lengths: Sequence[int] | None = None,
        batch_size: int = 1,
        draws: EpochDraws | None = None,
    ):
        if lengths is not None and len(lengths) != size:
            raise ValueError(f"lengths: {len(lengths)} values for {size} examples")
        for indices, count in draws or []:
            if not 0 <= count <= len(indices) or any(not 0 <= i < size for i in indices):
                raise ValueError(f"draws: {count} of {len(indices)} indices, each in [0, {size})")
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.lengths, self.batch_size, self.draws = lengths, batch_size, draws
        self.epoch_size = size if draws is None else sum(count for _, count in draws)
        if draws is not None and not self.epoch_size:
            raise ValueError("draws: an epoch must draw at least one example")
        grouped = [i for indices, _ in draws or [] for i in indices]
        if len(set(grouped)) != len(grouped):
            raise ValueError("draws: an example in two groups could be drawn twice in one epoch")
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def order(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.draws is not None:
            drawn = [indices[k] for indices, count in self.draws
                     for k in torch.randperm(len(indices), generator=generator)[:count].tolist()]  # fmt: skip
            return self._shuffled(drawn, generator) if self.shuffle else sorted(drawn)
        if not self.shuffle:
            return list(range(self.size))
        return self._shuffled(list(range(self.size)), generator)

    def _shuffled(self, examples: list[int], generator: torch.Generator) -> list[int]:
        order = [examples[k] for k in torch.randperm(len(examples), generator=generator).tolist()]
        return order if self.lengths is None else self._grouped(order, generator)

    def _grouped(self, order: list[int], generator: torch.Generator) -> list[int]:
        chunk = self.batch_size * self.CHUNK_BATCHES
        batches: list[list[int]] = []
        for start in range(0, len(order), chunk):
            part = sorted(order[start : start + chunk], key=lambda i: self.lengths[i])
            batches += [part[j : j + self.batch_size] for j in range(0, len(part), self.batch_size)]
        short = [b for b in batches if len(b) < self.batch_size]
        full = [b for b in batches if len(b) == self.batch_size]
        shuffled = [full[k] for k in torch.randperm(len(full), generator=generator).tolist()]
        return [i for batch in shuffled + short for i in batch]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.start :])

    def __len__(self) -> int:
        return self.epoch_size - self.start


def example_lengths(train_data: Sequence[Any]) -> list[int]:
    """Token counts of dict items with ``input_ids`` (what ``group_by_length`` sorts by)."""
    try:
        return [len(item["input_ids"]) for item in train_data]
    except (TypeError, KeyError, IndexError):
        raise ValueError("group_by_length: training items must be dicts with 'input_ids'") from None


MIXED_PRECISIONS = ("no", "fp16", "bf16", "auto")


def resolve_mixed_precision(value: str) -> str:
    """``auto`` -> ``bf16`` where this machine runs bf16 natively (:func:`suite.bench.machine.native_bf16`), else
    ``no``; any other value as given."""
    if value != "auto":
        return value
    from suite.bench.machine import native_bf16

    return "bf16" if native_bf16() else "no"


def make_accelerator(mixed_precision: str) -> Any:
    """An Accelerator at ``mixed_precision``. Accelerate keeps one precision per process, but a single-process run
    may train models at different ones (a text encoder in fp32, then planners in bf16): its state is rebuilt then.
    A launched multi-process run keeps the precision it was launched with."""
    from accelerate import Accelerator, PartialState
    from accelerate.state import AcceleratorState

    shared = AcceleratorState._shared_state
    if shared and shared.get("_mixed_precision") != mixed_precision and PartialState().num_processes == 1:
        AcceleratorState._reset_state()
    return Accelerator(mixed_precision=mixed_precision)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _lr_lambda(schedule: str, warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return max(0.0, 1.0 - progress)

    return factor


def build_callbacks(config: TrainerConfig, extra: list[Callback], with_evaluation: bool) -> list[Callback]:
    """Callbacks run in list order: evaluate and early-stop before a checkpoint is written at the same step."""
    callbacks: list[Callback] = [
        MetricsLogger(config.output_dir, every=config.log_every, tensorboard=config.tensorboard)
    ]
    if with_evaluation:
        callbacks.append(EvaluationCallback(every=config.eval_every))
        if config.restore_best:
            callbacks.append(KeepBestWeights(config.output_dir, config.watch_metric, config.watch_mode))
    if config.early_stopping_patience:
        callbacks.append(EarlyStopping(config.watch_metric, config.watch_mode, config.early_stopping_patience))
    callbacks += extra
    callbacks.append(
        CheckpointCallback(config.output_dir, every=config.checkpoint_every, keep=config.keep_checkpoints)
    )
    if config.progress:
        callbacks.append(ProgressBar())
    return callbacks


class Trainer:
    """Trains ``distiller`` (its student and loss-term parameters) on ``train_data``.

    ``collate`` turns a list of dataset items into a batch (see :mod:`suite.distiller` for the batch format).
    ``evaluate`` is called with the distiller and returns a dict of metrics; the evaluation callbacks use it.
    ``epoch_draws`` makes an epoch a fresh random draw from groups of examples instead of every example once (see
    :class:`EpochSampler`); steps per epoch follow the draw's size.
    """

    def __init__(
        self,
        distiller: Distiller,
        config: TrainerConfig,
        train_data: Sequence[Any],
        collate: Callable[[list[Any]], dict[str, Any]],
        callbacks: list[Callback] | None = None,
        evaluate: Callable[[Distiller], dict[str, float]] | None = None,
        epoch_draws: EpochDraws | None = None,
    ):
        self.config = config
        # Accumulation is done here, not by Accelerate: its ``backward`` would divide the loss by the group size a
        # second time, and it cannot know that an epoch's last group is short.
        self.accelerator = make_accelerator(resolve_mixed_precision(config.mixed_precision))
        seed_everything(config.seed)
        self.distiller = distiller
        self.evaluate_fn = evaluate
        self.callbacks = build_callbacks(config, list(callbacks or []), with_evaluation=evaluate is not None)
        lengths = example_lengths(train_data) if config.group_by_length else None
        self.sampler = EpochSampler(len(train_data), config.seed, lengths=lengths, batch_size=config.batch_size,
                                    draws=epoch_draws)  # fmt: skip
        # The loader gets its own generator: creating an iterator must not consume the global RNG that dropout uses,
        # or a resumed run would see different dropout masks than an uninterrupted one.
        loader = DataLoader(
            train_data,
            batch_size=config.batch_size,
            sampler=self.sampler,
            collate_fn=collate,
            generator=torch.Generator().manual_seed(config.seed),
        )
        # Accelerate deals batches out to the processes in turn (padding the last round), so each process sees
        # ceil(batches / processes) of them per epoch.
        self.processes = self.accelerator.num_processes
        self.batches_per_epoch = math.ceil(math.ceil(self.sampler.epoch_size / config.batch_size) / self.processes)
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / config.grad_accum_steps)
        self.total_steps = config.max_steps or self.steps_per_epoch * config.epochs
        self.optimizer = torch.optim.AdamW(
            distiller.trainable_parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        warmup = int(config.warmup_ratio * self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, _lr_lambda(config.schedule, warmup, self.total_steps)
        )
        # Only the student is wrapped for distributed training; the frozen teacher is never replicated for grads.
        distiller.student, self.optimizer, self.loader = self.accelerator.prepare(
            distiller.student, self.optimizer, loader
        )
        distiller.to(self.accelerator.device)
        self.state = TrainState(total_steps=self.total_steps, steps_per_epoch=self.steps_per_epoch)

    # -- hooks ---------------------------------------------------------------------------------------------------
    def _emit(self, event: str, **kwargs: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, event)(self, **kwargs)

    def run_evaluation(self) -> dict[str, float]:
        if self.evaluate_fn is None:
            return {}
        self.distiller.eval()
        metrics = self.evaluate_fn(self.distiller)
        self.distiller.train()
        self.state.last_metrics = metrics
        self._emit("on_evaluate", metrics=metrics)
        return metrics

    # -- the loop ------------------------------------------------------------------------------------------------
    def _sync_term_gradients(self) -> None:
        # Loss-term parameters (projectors) are outside the wrapped student; average their grads across processes.
        if self.accelerator.num_processes == 1:
            return
        for parameter in self.distiller.terms.parameters():
            if parameter.grad is not None:
                parameter.grad = self.accelerator.reduce(parameter.grad, reduction="mean")

    def _optimizer_step(self) -> None:
        self._sync_term_gradients()
        if self.config.max_grad_norm > 0:
            self.accelerator.clip_grad_norm_(self.distiller.trainable_parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _group_size(self, batch_in_epoch: int) -> int:
        """Micro-batches in the accumulation group holding batch ``batch_in_epoch`` (the epoch's last may be short)."""
        accum = self.config.grad_accum_steps
        start = batch_in_epoch - batch_in_epoch % accum
        return min(accum, self.batches_per_epoch - start)

    def _train_epoch(self, epoch: int) -> bool:
        """Run (the rest of) one epoch; True when the epoch ran to its end."""
        state, batches = self.state, self.batches_per_epoch
        # batch_in_epoch counts this process's batches; every process has taken as many, in turn.
        self.sampler.set_position(epoch, state.batch_in_epoch * self.config.batch_size * self.processes)
        for batch in self.loader:
            group = self._group_size(state.batch_in_epoch)
            closes_group = (state.batch_in_epoch + 1) % self.config.grad_accum_steps == 0 or (
                state.batch_in_epoch + 1 >= batches
            )
            # Gradients are averaged across processes only on the micro-batch that closes a group.
            with contextlib.nullcontext() if closes_group else self.accelerator.no_sync(self.distiller.student):
                outputs = self.distiller(batch)
                self.accelerator.backward(outputs["loss"] / group)
            state.batch_in_epoch += 1
            if not closes_group:
                continue
            self._optimizer_step()
            state.global_step += 1
            logs = {name: float(value.detach()) for name, value in outputs.items()}
            logs["lr"] = self.scheduler.get_last_lr()[0]
            self._emit("on_step_end", logs=logs)
            if state.should_stop or state.global_step >= self.total_steps:
                return state.batch_in_epoch >= batches
        return True

    def fit(self, resume: bool | str = False) -> TrainState:
        """Train to the end.

        ``resume=True`` continues from the latest checkpoint in ``output_dir`` (a fresh start when there is none);
        a path resumes from that checkpoint. Without it, an earlier run's checkpoints and metric log in
        ``output_dir`` are cleared first, so they cannot mix with this run's.
        """
        if resume:
            path = Path(resume) if isinstance(resume, str) else find_latest_checkpoint(self.config.output_dir)
            if path is not None:
                load_checkpoint(path, self)
        elif self.accelerator.is_main_process:
            clear_run(self.config.output_dir)
        self.distiller.train()
        self._emit("on_train_begin")
        while not self.state.should_stop and self.state.global_step < self.total_steps:
            if self._train_epoch(self.state.epoch):
                self.state.epoch += 1
                self.state.batch_in_epoch = 0
                self._emit("on_epoch_end")
        self._emit("on_train_end")
        # Mixed precision wraps the student's forward in autocast; evaluation and ONNX export afterwards must see
        # the model as it is, in fp32.
        self.distiller.student = self.accelerator.unwrap_model(self.distiller.student, keep_fp32_wrapper=False)
        return self.state
