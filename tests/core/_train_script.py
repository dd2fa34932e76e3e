"""A tiny distillation run used by the kill-and-resume test (executed in a subprocess).

Usage: python _train_script.py OUTPUT_DIR [--kill-at-step N] [--resume]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import torch
from torch import nn

from suite.callbacks import Callback
from suite.distiller import Distiller
from suite.losses import SoftLabelKD, SoftLabelKDConfig, TaskLoss
from suite.trainer import Trainer, TrainerConfig


class TinyNet(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, width), nn.ReLU(), nn.Dropout(0.3), nn.Linear(width, 3))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.body(x)}


def make_data(n: int = 72) -> list[tuple[torch.Tensor, int]]:
    generator = torch.Generator().manual_seed(123)
    x = torch.randn(n, 8, generator=generator)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 1).long()
    return [(x[i], int(y[i])) for i in range(n)]


def collate(items: list[tuple[torch.Tensor, int]]) -> dict:
    return {"inputs": {"x": torch.stack([x for x, _ in items])}, "labels": torch.tensor([y for _, y in items])}


class KillAt(Callback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, trainer, logs):
        if trainer.state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("output_dir")
    parser.add_argument("--kill-at-step", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    teacher, student = TinyNet(32), TinyNet(8)
    distiller = Distiller(
        student,
        {"task": TaskLoss(), "kd": SoftLabelKD(SoftLabelKDConfig(2.0))},
        {"task": 0.5, "kd": 0.5},
        teacher=teacher,
    )
    config = TrainerConfig(
        output_dir=args.output_dir,
        epochs=3,
        batch_size=8,
        lr=1e-2,
        checkpoint_every=3,
        progress=False,
        tensorboard=False,
        log_every=1,
    )
    callbacks = [KillAt(args.kill_at_step)] if args.kill_at_step else []
    trainer = Trainer(distiller, config, make_data(), collate, callbacks=callbacks)
    trainer.fit(resume=args.resume)
    torch.save({k: v.clone() for k, v in student.state_dict().items()}, os.path.join(args.output_dir, "final.pt"))
    sys.exit(0)


if __name__ == "__main__":
    main()
