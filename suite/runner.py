"""The run stages every pack shares: variants x seeds -> evaluate -> export (parity, gated int8) -> benchmark ->
one results table. A pack declares what is specific to it by implementing :class:`Pack`; this module runs it.

Stages go through a :class:`~suite.stages.StageLedger`, so a rerun reuses every trained student whose recipe,
seed and upstream stages (the teacher) are unchanged, and retrains the ones that changed.

A pack supplies (see :class:`Pack`):

- ``variants()``: the students, each a :class:`Variant` (student name, named loss terms with weights, seeds);
- ``train`` / ``load``: build one trained student into a directory, or read it back;
- ``evaluate``: ``{split: {metric: value}}`` for each trained student (all at once, so a pack that evaluates in
  worker processes can batch);
- ``export``: export one student with ``suite.export`` (parity, gated int8), or skip it;
- ``baselines``: trivial baselines (majority class, constant policy) every table carries.
"""

from __future__ import annotations

import shutil
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from suite.stages import StageBusy, StageLedger

Metrics = dict[str, dict[str, float]]  # split -> metric -> value


@dataclass
class Variant:
    """One student recipe: which student, which loss terms with which weights, trained with which seeds."""

    name: str
    student: str
    terms: dict[str, float]
    seeds: list[int]
    kd: bool  # a weighted term learns from the teacher (False for the hard-label and teacher-free baselines)


@dataclass
class Trained:
    variant: Variant
    seed: int
    model: nn.Module
    directory: Path


@dataclass
class RunOutputs:
    """Where a pack's run writes: everything under ``output_dir`` unless a directory is named; ``distill run
    --publish`` names the repository's (``docs/results``, ``models/<pack>``). Pack recipes inherit these fields."""

    output_dir: str = field(default="runs/run", metadata={"help": "run directory: stages, store, students, exports"})
    report_dir: str = field(
        default="", metadata={"help": "where the report goes (empty: OUTPUT_DIR/report; --publish: docs/results)"}
    )
    model_card_dir: str = field(
        default="",
        metadata={"help": "model card and released students (empty: OUTPUT_DIR/model_card; --publish: models/PACK)"},
    )

    @property
    def report_path(self) -> Path:
        return Path(self.report_dir or f"{self.output_dir}/report")

    @property
    def model_card_path(self) -> Path:
        return Path(self.model_card_dir or f"{self.output_dir}/model_card")


class Pack:
    """The hooks a pack implements; the shared stages call them in order."""

    def variants(self) -> list[Variant]:
        raise NotImplementedError

    def student_settings(self, variant: Variant) -> Any:
        """What shapes a variant's training besides its terms and seed (architecture, trainer config): a change
        here retrains it."""
        raise NotImplementedError

    def train(self, variant: Variant, seed: int, directory: Path) -> nn.Module:
        raise NotImplementedError

    def load(self, variant: Variant, seed: int, directory: Path) -> nn.Module:
        raise NotImplementedError

    def evaluate(self, trained: list[Trained]) -> list[Metrics]:
        raise NotImplementedError

    def export(self, trained: Trained, target: Path) -> Path | None:
        """Export one student to the new directory ``target`` with ``suite.export`` (parity, and
        ``drop_failing_variants=True`` so a variant that fails its metric gate is left out); None: not exported."""
        return None

    def shipped(self, model: nn.Module) -> nn.Module:
        """The part of a trained student that is exported and counted in the results (default: all of it)."""
        return model

    def baselines(self) -> dict[str, Metrics]:
        return {}


@dataclass
class ModelResult:
    """A model's row in the results: metrics averaged over seeds, with their spread.

    ``role`` is ``"student"``, ``"teacher"`` or ``"baseline"`` (a trivial predictor every table carries)."""

    role: str
    params: int
    kd: bool
    seeds: list[int]
    per_seed: dict[int, Metrics]
    metrics: Metrics
    std: Metrics

    @classmethod
    def single(cls, role: str, metrics: Metrics, params: int = 0) -> ModelResult:
        """A model measured once (a teacher, a baseline): no seeds, no spread."""
        return cls(role, params, False, [], {}, metrics, {s: dict.fromkeys(m, 0.0) for s, m in metrics.items()})


@dataclass
class TaskResult:
    """What one task of a pack contributes to its summary and report: the pack (for its data and outputs), every
    model's result, the exports and the latency benchmark."""

    task: str
    pack: Pack
    results: dict[str, ModelResult]
    exports: dict[str, Path]
    bench: dict[str, Any]


def train_variants(pack: Pack, ledger: StageLedger, after: Sequence[str] = ()) -> list[Trained]:
    """Every variant x seed, each a stage ``students/<variant>-s<seed>`` depending on ``after``, returned in that
    order. A student another sitting is training is left for the end (and then waited for and reused), so sittings
    that run the same list share its students instead of one idling until the other finishes each one."""
    jobs = [(variant, seed) for variant in pack.variants() for seed in variant.seeds]
    models: dict[int, nn.Module] = {}
    busy = []
    for index, (variant, seed) in enumerate(jobs):
        try:
            models[index] = _train_student(pack, ledger, variant, seed, after, wait=False)
        except StageBusy:
            ledger.log(f"[{_student_stage(variant, seed)}] another sitting is training it: coming back to it last")
            busy.append(index)
    for index in busy:
        models[index] = _train_student(pack, ledger, *jobs[index], after, wait=True)
    return [Trained(variant, seed, models[index], ledger.root / _student_stage(variant, seed))
            for index, (variant, seed) in enumerate(jobs)]  # fmt: skip


def _student_stage(variant: Variant, seed: int) -> str:
    return f"students/{variant.name}-s{seed}"


def _train_student(pack: Pack, ledger: StageLedger, variant: Variant, seed: int, after: Sequence[str],
                   wait: bool) -> nn.Module:  # fmt: skip
    inputs = {"terms": variant.terms, "student": variant.student, "seed": seed,
              "settings": pack.student_settings(variant)}  # fmt: skip
    return ledger.run(
        _student_stage(variant, seed),
        inputs,
        build=lambda out: pack.train(variant, seed, out),
        load=lambda out: pack.load(variant, seed, out),
        after=after,
        wait=wait,
    )


def _mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None and v == v]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(per_seed: Mapping[int, Metrics]) -> tuple[Metrics, Metrics]:
    """Mean and sample std over seeds of every split's metrics (std 0 with one seed)."""
    first = next(iter(per_seed.values()))
    mean: Metrics = {split: {} for split in first}
    std: Metrics = {split: {} for split in first}
    for split, metrics in first.items():
        for metric in metrics:
            mean[split][metric], std[split][metric] = _mean_std([run[split][metric] for run in per_seed.values()])
    return mean, std


def evaluate_variants(pack: Pack, trained: list[Trained]) -> dict[str, ModelResult]:
    """One :class:`ModelResult` per variant (first the pack's baselines, with 0 parameters and no KD)."""
    from suite.eval import parameter_count

    evaluated = pack.evaluate(trained)  # first: a pack may evaluate its baselines in the same batch
    results = {name: ModelResult.single("baseline", metrics) for name, metrics in pack.baselines().items()}
    grouped: dict[str, list[tuple[Trained, Metrics]]] = {}
    for run, metrics in zip(trained, evaluated, strict=True):
        grouped.setdefault(run.variant.name, []).append((run, metrics))
    for name, runs in grouped.items():
        per_seed = {run.seed: metrics for run, metrics in runs}
        mean, std = aggregate(per_seed)
        first = runs[0][0]
        params = parameter_count(pack.shipped(first.model))
        results[name] = ModelResult("student", params, first.variant.kd, list(per_seed), per_seed, mean, std)
    return results


def fresh_export_dir(target: Path) -> Path:
    """``target``, emptied of this run's own earlier export (suite.export refuses to write over anything)."""
    if target.is_dir():
        shutil.rmtree(target)
    return target


def export_first_seeds(pack: Pack, trained: list[Trained], out_dir: Path) -> dict[str, Path]:
    """The first seed of every variant to ``out_dir/<variant>``, through the pack's ``export``."""
    exports, done = {}, set()
    for run in trained:
        if run.variant.name in done:
            continue
        done.add(run.variant.name)
        exported = pack.export(run, fresh_export_dir(out_dir / run.variant.name))
        if exported is not None:
            exports[run.variant.name] = exported
    return exports


def latency(bench: Mapping[str, Any], model: str, runtime: str = "onnxruntime", variant: str = "fp32",
            batch: int = 1, threads: int | None = None) -> dict[str, Any] | None:  # fmt: skip
    """The benchmark row of one model / runtime / variant / batch size, or None when it was not measured. Several
    thread counts: the first row measured, unless ``threads`` picks one."""
    for row in latency_rows(bench, model, runtime, variant, batch):
        if threads is None or row.get("intra_op_threads") == threads:
            return row
    return None


def latency_rows(bench: Mapping[str, Any], model: str, runtime: str = "onnxruntime", variant: str = "fp32",
                 batch: int = 1) -> list[dict[str, Any]]:  # fmt: skip
    """Every benchmark row of one model / runtime / variant / batch size (one per thread count measured)."""
    return [row for row in bench.get("results", [])
            if (row["model"], row["runtime"], row["batch_size"]) == (model, runtime, batch)
            and (runtime != "onnxruntime" or row["variant"] == variant)]  # fmt: skip


def fastest_latency(bench: Mapping[str, Any], model: str) -> dict[str, Any] | None:
    """The batch-1 ORT fp32 row with the lowest p50 over the thread counts measured: what a deployment that sets
    the model's threads well gets (a sub-millisecond student can lose more to the thread pool than it gains)."""
    rows = latency_rows(bench, model)
    return min(rows, key=lambda row: row["p50_ms"]) if rows else None


def rejected_variants(export_dir: Path) -> dict[str, str]:
    import json

    return json.loads((export_dir / "spec.json").read_text()).get("rejected", {})


def beats_baselines(results: Mapping[str, ModelResult], name: str, split: str, metric: str,
                    higher_is_better: bool = True, margin: float = 0.0) -> bool:  # fmt: skip
    """Whether ``name`` does strictly better than every baseline on ``split``/``metric``, by at least ``margin``."""
    value = results[name].metrics[split][metric]
    for other, entry in results.items():
        if other != name and entry.role == "baseline" and metric in entry.metrics.get(split, {}):
            base = entry.metrics[split][metric]
            if (value <= base + margin) if higher_is_better else (value >= base - margin):
                return False
    return True


def summary_models(results: Mapping[str, ModelResult], bench: Mapping[str, Any]) -> dict[str, Any]:
    """The ``models`` mapping of the run summary (:mod:`suite.results`): metrics are means over seeds, with their
    std and the first (exported) seed's own values beside them."""
    from suite.results import finite_metrics, model_entry

    models = {}
    for name, entry in results.items():
        models[name] = model_entry(entry.params, entry.kd, latency(bench, name), entry.metrics)
        models[name]["seeds"] = entry.seeds
        models[name]["metrics_std"] = finite_metrics(entry.std)
        # The first seed is the exported one: its own numbers, for model cards and export checks.
        first = entry.per_seed[entry.seeds[0]] if entry.seeds else entry.metrics
        models[name]["metrics_first_seed"] = finite_metrics(first)
    return models
