"""Train on 2 CPU processes (run under ``accelerate launch --num_processes 2``) and record what each process saw.

Usage: python _ddp_script.py OUTPUT_DIR [--max-steps N] [--resume]
Writes ``OUTPUT_DIR/rank-R-seen.json`` (appending across a stop and a resume) with the example ids this process
trained on, its optimizer steps, the scheduler's length and position, and the loop's view of an epoch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn

from suite.distiller import Distiller
from suite.losses import TaskLoss
from suite.trainer import Trainer, TrainerConfig

EXAMPLES = 40  # 10 batches of 4: 5 per process per epoch, accumulated in groups of 2, 2 and 1


class TinyNet(nn.Module):
    """Records the ids it trains on (in forward: the loader may fetch a batch ahead of a stop)."""

    def __init__(self, seen: list[int]):
        super().__init__()
        self.body, self.seen = nn.Linear(3, 2), seen

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        self.seen.extend(ids.tolist())
        return {"logits": self.body(x)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("output_dir")
    parser.add_argument("--max-steps", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(EXAMPLES, 3, generator=torch.Generator().manual_seed(1))
    data = [(i, x[i], int(x[i, 0] > 0)) for i in range(EXAMPLES)]
    seen: list[int] = []

    def collate(items):
        inputs = {"x": torch.stack([v for _, v, _ in items]), "ids": torch.tensor([i for i, _, _ in items])}
        return {"inputs": inputs, "labels": torch.tensor([y for *_, y in items])}

    config = TrainerConfig(output_dir=args.output_dir, epochs=2, batch_size=4, grad_accum_steps=2,
                           max_steps=args.max_steps, progress=False, tensorboard=False)  # fmt: skip
    trainer = Trainer(Distiller(TinyNet(seen), {"task": TaskLoss()}, {"task": 1.0}), config, data, collate)
    state = trainer.fit(resume=args.resume)
    rank = trainer.accelerator.process_index
    path = Path(args.output_dir) / f"rank-{rank}-seen.json"
    runs = json.loads(path.read_text()) if path.is_file() else []
    runs.append({
        "seen": seen,
        "global_step": state.global_step,
        "steps_per_epoch": trainer.steps_per_epoch,
        "total_steps": trainer.total_steps,
        "scheduler_position": trainer.scheduler.last_epoch,
        "processes": trainer.accelerator.num_processes,
    })  # fmt: skip
    path.write_text(json.dumps(runs))


if __name__ == "__main__":
    main()
