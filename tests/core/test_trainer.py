from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from suite.distiller import Distiller
from suite.errors import ConfigError
from suite.losses import SoftLabelKD, TaskLoss
from suite.trainer import EpochSampler, Trainer, TrainerConfig


class Net(nn.Module):
    def __init__(self, width: int, dropout: float = 0.0):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, 2))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.body(x)}


def data(n: int = 32) -> list[tuple[torch.Tensor, int]]:
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(7))
    return [(x[i], int(x[i, 0] > 0)) for i in range(n)]


def collate(items):
    return {"inputs": {"x": torch.stack([x for x, _ in items])}, "labels": torch.tensor([y for _, y in items])}


def config(tmp_path: Path, **kwargs) -> TrainerConfig:
    base = dict(output_dir=str(tmp_path), epochs=2, batch_size=8, lr=1e-2, progress=False, log_every=1)
    return TrainerConfig(**{**base, **kwargs})


def test_logs_checkpoints_and_teacher_untouched(tmp_path: Path) -> None:
    torch.manual_seed(0)
    teacher = Net(16, dropout=0.5)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    distiller = Distiller(Net(4), {"task": TaskLoss(), "kd": SoftLabelKD()}, {"task": 0.5, "kd": 0.5}, teacher=teacher)
    trainer = Trainer(distiller, config(tmp_path, epochs=3, keep_checkpoints=2), data(), collate,
                      evaluate=lambda d: {"accuracy": 0.5})  # fmt: skip
    state = trainer.fit()
    assert state.global_step == 12 and state.epoch == 3
    assert not distiller.teacher.module.training
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(1, 13))
    assert {"loss", "task_loss", "kd_loss", "lr"} <= set(records[0])
    assert [r["step"] for r in records if r["kind"] == "eval"] == [4, 8, 12]
    assert list((tmp_path / "tb").iterdir()), "TensorBoard events written"
    steps = sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*"))
    assert steps == ["step-00000008", "step-00000012"]
    assert (tmp_path / "checkpoints" / "latest").read_text() == "step-00000012"
    assert not list((tmp_path / "checkpoints").glob(".*tmp*"))

    # A fresh start (no resume) clears the earlier run's checkpoints and log instead of mixing with them.
    Trainer(Distiller(Net(4), {"task": TaskLoss()}, {"task": 1.0}), config(tmp_path, epochs=1), data(), collate).fit()
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*")) == ["step-00000004"]
    assert max(json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()) == 4


def test_early_stopping_after_patience(tmp_path: Path) -> None:
    scores = iter([0.5, 0.6, 0.6, 0.55, 0.9, 0.9])
    distiller = Distiller(Net(4), {"task": TaskLoss()}, {"task": 1.0})
    cfg = config(tmp_path, epochs=6, early_stopping_patience=2, watch_metric="f1")
    state = Trainer(distiller, cfg, data(), collate, evaluate=lambda d: {"f1": next(scores)}).fit()
    assert state.should_stop and state.epoch == 4 and state.best_metric == 0.6


def test_training_ends_with_the_weights_of_the_best_evaluation(tmp_path: Path) -> None:
    scores, snapshots = iter([0.5, 0.9, 0.6]), []
    student = Net(4)

    def evaluate(distiller):
        snapshots.append({k: v.clone() for k, v in student.state_dict().items()})
        return {"accuracy": next(scores)}

    distiller = Distiller(student, {"task": TaskLoss()}, {"task": 1.0})
    state = Trainer(distiller, config(tmp_path, epochs=3), data(), collate, evaluate=evaluate).fit()
    assert state.best_weights_step == 8 and state.global_step == 12
    assert all(torch.equal(v, snapshots[1][k]) for k, v in student.state_dict().items()), "epoch 2's weights"
    assert not all(torch.equal(v, snapshots[2][k]) for k, v in student.state_dict().items())

    # restore_best=False keeps the last weights.
    scores, snapshots = iter([0.5, 0.9, 0.6]), []
    student = Net(4)
    distiller = Distiller(student, {"task": TaskLoss()}, {"task": 1.0})
    Trainer(distiller, config(tmp_path, epochs=3, restore_best=False), data(), collate, evaluate=evaluate).fit()
    assert all(torch.equal(v, snapshots[2][k]) for k, v in student.state_dict().items())


def step_gradients(tmp_path: Path, batch_size: int, accum: int, n: int = 32, lr: float = 1e-2) -> list[torch.Tensor]:
    """The flattened student gradient at every optimizer step of a one-epoch run."""
    torch.manual_seed(0)
    student = Net(4)
    cfg = config(tmp_path / f"{batch_size}x{accum}", epochs=1, batch_size=batch_size, grad_accum_steps=accum,
                 max_grad_norm=0, lr=lr)  # fmt: skip
    trainer = Trainer(Distiller(student, {"task": TaskLoss()}, {"task": 1.0}), cfg, data(n), collate)
    seen: list[torch.Tensor] = []
    trainer.optimizer.optimizer.register_step_pre_hook(
        lambda *_: seen.append(torch.cat([p.grad.flatten().clone() for p in student.parameters()]))
    )
    trainer.fit()
    return seen


def test_first_step_gradient_is_the_same_for_any_split_of_the_batch(tmp_path: Path) -> None:
    # 8x1, 4x2 and 2x4 see the same 8 examples before the first optimizer step: one mean gradient, not one divided
    # by the group size twice (once here, once more by Accelerate's backward).
    reference = step_gradients(tmp_path, 8, 1)[0]
    for batch_size, accum in [(4, 2), (2, 4)]:
        gradient = step_gradients(tmp_path, batch_size, accum)[0]
        assert torch.allclose(gradient, reference, atol=1e-6), (batch_size, accum)


def test_an_epochs_short_last_accumulation_group_is_a_mean_over_its_batches(tmp_path: Path) -> None:
    # 20 examples in batches of 4 with groups of 2: groups of 2, 2 and 1 batches. With a vanishing lr the weights
    # stay put, so the lone last batch must give the same gradient as when it is its own step (not half of it).
    lone = step_gradients(tmp_path, 4, 1, n=20, lr=1e-12)
    grouped = step_gradients(tmp_path, 4, 2, n=20, lr=1e-12)
    assert len(grouped) == 3
    assert torch.allclose(grouped[0], (lone[0] + lone[1]) / 2, atol=1e-6)
    assert torch.allclose(grouped[2], lone[4], atol=1e-6)


def test_epoch_order_depends_only_on_seed_and_epoch() -> None:
    sampler = EpochSampler(10, seed=3)
    sampler.set_position(epoch=1)
    order = sampler.order()
    assert sorted(order) == list(range(10))
    sampler.set_position(epoch=1, start=4)
    assert list(sampler) == order[4:]
    sampler.set_position(epoch=2)
    assert sampler.order() != order


def test_epoch_draws_take_a_fresh_share_of_each_group_every_epoch() -> None:
    many, few = list(range(0, 100)), list(range(100, 110))
    sampler = EpochSampler(120, seed=3, draws=[(many, 20), (few, 10)])  # 110..119 are in no group: never drawn
    epochs = []
    for epoch in range(3):
        sampler.set_position(epoch=epoch)
        order = sampler.order()
        assert len(order) == len(set(order)) == len(sampler) == 30  # without replacement
        assert sum(i in many for i in order) == 20 and sorted(i for i in order if i >= 100) == few
        epochs.append({i for i in order if i < 100})
    assert epochs[0] != epochs[1] != epochs[2]  # a new choice of the big group each epoch
    sampler.set_position(epoch=1, start=7)
    again = EpochSampler(120, seed=3, draws=[(many, 20), (few, 10)])
    again.set_position(epoch=1)
    assert list(sampler) == again.order()[7:]  # resumable mid-epoch like the plain order
    with pytest.raises(ValueError, match="draws"):
        EpochSampler(10, seed=0, draws=[([1, 2], 3)])
    with pytest.raises(ValueError, match="draws"):
        EpochSampler(10, seed=0, draws=[([9, 10], 1)])
    with pytest.raises(ValueError, match="at least one"):
        EpochSampler(10, seed=0, draws=[([1, 2], 0)])
    with pytest.raises(ValueError, match="two groups"):
        EpochSampler(10, seed=0, draws=[([1, 2], 1), ([2, 3], 1)])


def test_trainer_epochs_follow_the_draw(tmp_path: Path) -> None:
    items = data(32)
    draws = [(list(range(24)), 8), (list(range(24, 32)), 8)]  # 16 drawn of 32: 2 batches of 8 an epoch
    trainer = Trainer(Distiller(Net(4), {"task": TaskLoss()}, {"task": 1.0}), config(tmp_path, epochs=3), items,
                      collate, epoch_draws=draws)  # fmt: skip
    assert trainer.steps_per_epoch == 2
    assert trainer.fit().global_step == 6


def test_length_grouped_batches_are_homogeneous_and_cover_every_example() -> None:
    lengths = [(i * 37) % 101 for i in range(230)]  # 230 examples: 7 full batches of 32 and one of 6
    sampler = EpochSampler(230, seed=1, lengths=lengths, batch_size=32)
    order = sampler.order()
    assert sorted(order) == list(range(230))
    batches = [order[i : i + 32] for i in range(0, 230, 32)]
    assert len(batches[-1]) == 6  # the short batch goes last, so the full ones stay aligned
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches[:-1]]
    assert max(spread) < 30  # one sorted chunk of 230: neighbours in length; random batches span ~100
    sampler.set_position(epoch=1)
    assert sampler.order() != order  # still reshuffled every epoch
    random_order = EpochSampler(230, seed=1).order()
    random_spread = [
        max(lengths[i] for i in random_order[j : j + 32]) - min(lengths[i] for i in random_order[j : j + 32])
        for j in range(0, 224, 32)
    ]
    assert min(random_spread) > max(spread)


def test_group_by_length_needs_token_ids() -> None:
    with pytest.raises(ValueError, match="2 values for 3 examples"):
        EpochSampler(3, seed=0, lengths=[1, 2], batch_size=2)
    from suite.trainer import example_lengths

    with pytest.raises(ValueError, match="input_ids"):
        example_lengths([(torch.zeros(3), 1)])
    assert example_lengths([{"input_ids": [1, 2, 3]}, {"input_ids": [4]}]) == [3, 1]


def _dtypes_seen(module: nn.Module) -> list[torch.dtype]:
    """The output dtypes of ``module``'s calls from now on (a forward hook)."""
    seen: list[torch.dtype] = []
    module.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    return seen


def test_bf16_trains_in_autocast_and_leaves_an_fp32_model_in_one_process_with_fp32_runs(tmp_path: Path) -> None:
    # Accelerate keeps one precision per process: an fp32 run, then a bf16 one, then fp32 again must all work.
    for precision in ("no", "bf16", "no"):
        torch.manual_seed(0)
        student = Net(4)
        seen = _dtypes_seen(student.body[0])
        run = config(tmp_path / precision, epochs=1, mixed_precision=precision)
        trainer = Trainer(Distiller(student, {"task": TaskLoss()}, {"task": 1.0}), run, data(), collate)
        trainer.fit()
        expected = torch.bfloat16 if precision == "bf16" else torch.float32
        assert trainer.accelerator.mixed_precision == precision
        assert seen and set(seen) == {expected}, f"{precision}: the student's layers ran in {set(seen)}"
        assert torch.isfinite(student.body[0].weight).all() and student.body[0].weight.dtype == torch.float32
        seen.clear()
        with torch.no_grad():
            student(torch.randn(2, 4))
        assert seen == [torch.float32], "after training the student runs as it is, without autocast"


def test_auto_precision_is_bf16_only_where_the_machine_runs_it_natively(monkeypatch, tmp_path: Path) -> None:
    from suite.bench import machine
    from suite.trainer import resolve_mixed_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with_bf16, without = tmp_path / "zen4", tmp_path / "skylake"
    with_bf16.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n")
    without.write_text("processor\t: 0\nmodel name\t: Intel Xeon\nflags\t\t: fpu sse avx2 avx512f avx512bw\n")
    assert machine.native_bf16(with_bf16) and not machine.native_bf16(without)
    assert not machine.native_bf16(tmp_path / "no-such-file")
    monkeypatch.setattr(machine, "native_bf16", lambda: True)
    assert resolve_mixed_precision("auto") == "bf16"
    monkeypatch.setattr(machine, "native_bf16", lambda: False)
    assert resolve_mixed_precision("auto") == "no"
    assert resolve_mixed_precision("bf16") == "bf16" and resolve_mixed_precision("no") == "no"
    with pytest.raises(ConfigError, match="mixed_precision"):
        TrainerConfig(output_dir=str(tmp_path), mixed_precision="fp8")


def test_reports_say_whether_the_cpu_had_bf16_since_auto_precision_and_so_timings_depend_on_it(monkeypatch) -> None:
    from suite.bench import machine
    from suite.report import header

    for flags, said in ((set(), "no bf16 instructions"), ({"avx512_bf16"}, ", bf16 instructions")):
        monkeypatch.setattr(machine, "cpu_flags", lambda cpuinfo=None, flags=flags: flags)
        info = machine.machine_info()
        assert info["cpu_bf16"] == bool(flags)
        line = header("T", {"command": "c", "machine": info}, 60.0, "t.json")[2]
        assert said in line and line.count("bf16") == 1
    older = {"cpu_model": "AMD EPYC", "physical_cores": 2}  # a report of before the key: nothing claimed
    assert "bf16" not in header("T", {"command": "c", "machine": older}, 60.0, "t.json")[2]
