"""``distill run driving``: collect -> teacher rationales and embeddings -> train the ablation -> open and closed
loop -> export (+ parity) -> latency -> report. Every stage keeps its output under ``output_dir`` and a rerun skips
what exists (shards, stored embeddings, trained weights)."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from domains.driving import scenarios as sim
from domains.driving.collect import CollectPlan, collect
from domains.driving.data import DrivingData, action_prototypes, action_weights, embed_texts, load, make_collate
from domains.driving.evaluate import PolicySpec, closed_loop, open_loop_metrics
from domains.driving.recipe import LOSS_WEIGHTS, VARIANTS, DrivingRecipe
from domains.driving.terms import build_terms
from suite.trainer import TrainerConfig

if TYPE_CHECKING:
    from suite.export.spec import ExportSpec

TEXT_ENCODER = "minilm-l6"


def load_splits(recipe: DrivingRecipe, out: Path) -> tuple[DrivingData, DrivingData]:
    scenarios = tuple(recipe.scenarios)
    train_plan = CollectPlan(scenarios, recipe.train_episodes, recipe.seed)
    val_plan = CollectPlan(scenarios, recipe.val_episodes, recipe.seed + 1)  # other seeds: unseen episodes
    print(f"[driving] collecting {recipe.train_episodes}+{recipe.val_episodes} expert episodes per scenario")
    train = load(collect(train_plan, out / "data" / "train", recipe.progress, recipe.workers), recipe.frames)
    val = load(collect(val_plan, out / "data" / "val", recipe.progress, recipe.workers), recipe.frames)
    if recipe.teacher != "expert":
        for data in (train, val):
            vlm_rationales(recipe, data, out / "store")
    encoder = text_encoder()
    for data in (train, val):
        embed_texts(data, encoder, out / "store", recipe.progress)
    print(f"[driving] {len(train)} training frames, {len(val)} validation frames")
    return train, val


def text_encoder() -> Any:
    from suite import hub
    from suite.teachers import HFTeacher

    return HFTeacher(hub.resolve_model_path(TEXT_ENCODER), task="encoder", max_length=96)


def vlm_rationales(recipe: DrivingRecipe, data: DrivingData, store_dir: Path) -> None:
    """Replace the expert's texts with a VLM's, asked about each frame (answers kept in the teacher-output store).

    The expert still supplies the actions; a frame whose answer does not parse keeps the expert's rationale, and the
    count of those is printed.
    """
    from suite.teachers import TeacherOutputStore
    from suite.teachers.vision_language import HFVisionLanguageTeacher, OpenAICompatibleVLMTeacher, vlm_inputs

    if recipe.teacher == "openai-vlm":
        teacher = OpenAICompatibleVLMTeacher(base_url=recipe.teacher_url, model=recipe.teacher_model)
    else:
        teacher = HFVisionLanguageTeacher(recipe.teacher_model)
    frames = [img[-3:].permute(1, 2, 0).numpy() for img in data.images]
    contexts = [
        f"Scenario: {name}. Allowed actions: {', '.join(sim.SCENARIOS[name].actions)}." for name in data.scenario
    ]
    store = TeacherOutputStore(store_dir)
    try:
        answers = store.run(teacher, vlm_inputs(frames, contexts), batch_size=8, progress=recipe.progress)
    finally:
        store.close()
    kept = 0
    for row, answer in zip(data.texts, answers, strict=True):
        if answer.meta.get("rationale"):
            row.update(answer.meta["rationale"])
        else:
            kept += 1
    print(f"[driving] VLM rationales: {len(answers) - kept} parsed, {kept} kept the expert's text")


# -- training ----------------------------------------------------------------------------------------------------


def planner_kwargs(recipe: DrivingRecipe, backbone: str) -> dict[str, Any]:
    return {"backbone": backbone, "frames": recipe.frames, "num_actions": len(sim.ACTIONS)}


def train_planner(
    recipe: DrivingRecipe,
    train: DrivingData,
    backbone: str,
    variant: str,
    seed: int,
    run_dir: Path,
    resume: bool = False,
) -> torch.nn.Module:
    """Train one planner, or load it when ``run_dir`` already holds its final weights; ``resume`` continues an
    interrupted training from its last epoch checkpoint."""
    from safetensors.torch import load_file, save_file

    from suite.distiller import Distiller
    from suite.students.planner import PixelPlanner
    from suite.trainer import Trainer, seed_everything

    weights = run_dir / "model.safetensors"
    seed_everything(seed)
    planner = PixelPlanner(**planner_kwargs(recipe, backbone), pretrained=not weights.exists())
    if weights.exists():
        planner.load_state_dict(load_file(weights))
        return planner.eval()
    num_actions = len(sim.ACTIONS)
    terms = build_terms(
        VARIANTS[variant], planner, action_prototypes(train, num_actions), action_weights(train, num_actions)
    )
    distiller = Distiller(planner, terms, {name: LOSS_WEIGHTS[name] for name in terms})
    epochs = recipe.epochs if backbone == recipe.backbone else recipe.extra_epochs
    config = TrainerConfig(
        output_dir=str(run_dir), epochs=epochs, batch_size=recipe.batch_size, lr=recipe.lr, seed=seed,
        warmup_ratio=0.05, schedule="cosine", log_every=50, progress=recipe.progress, tensorboard=False,
    )  # fmt: skip
    Trainer(distiller, config, train, make_collate(train)).fit(resume)
    save_file({k: v.contiguous() for k, v in planner.state_dict().items()}, str(weights))
    return planner.eval()


def runs(recipe: DrivingRecipe) -> list[tuple[str, str, int]]:
    """(backbone, variant, seed) of every planner the recipe trains."""
    plan = [(recipe.backbone, v, s) for v in recipe.variants for s in recipe.seeds]
    if recipe.extra_backbone:
        plan += [(recipe.extra_backbone, v, recipe.seeds[0]) for v in ("imitation", "all") if v in recipe.variants]
    return plan


def model_name(backbone: str, variant: str) -> str:
    return f"{backbone}-{variant}"


# -- the run -----------------------------------------------------------------------------------------------------


def run(recipe: DrivingRecipe, resume: bool = False) -> dict[str, Any]:
    from domains.driving.report import write_model_card, write_report

    started = time.perf_counter()
    out = Path(recipe.output_dir)
    train, val = load_splits(recipe, out)
    planners, open_loop, specs = {}, {}, {"expert|0": PolicySpec("expert")}
    for backbone, variant, seed in runs(recipe):
        name, run_dir = model_name(backbone, variant), out / "students" / f"{model_name(backbone, variant)}-s{seed}"
        print(f"[driving] training {name} seed {seed}")
        planner = train_planner(recipe, train, backbone, variant, seed, run_dir, resume)
        planners[(name, seed)] = planner
        open_loop[(name, seed)] = open_loop_metrics(planner, val)
        kwargs = tuple(sorted(planner_kwargs(recipe, backbone).items()))
        specs[f"{name}|{seed}"] = PolicySpec("planner", str(run_dir / "model.safetensors"), kwargs)
    print(f"[driving] closed loop: {recipe.eval_episodes} episodes per scenario for each of {len(specs)} policies")
    driving = closed_loop(specs, tuple(recipe.scenarios), recipe.eval_episodes, recipe.seed, recipe.workers,
                          progress=recipe.progress)  # fmt: skip
    exports = export_planners(recipe, planners, val, out)
    save_rationale_bank([train, val], out / "rationale_bank.json")
    bench = benchmark(recipe, exports, out)
    results = {
        "recipe": asdict(recipe), "train_frames": len(train), "val_frames": len(val), "open_loop": _keyed(open_loop),
        "closed_loop": driving, "exports": {k: str(v) for k, v in exports.items()}, "bench": bench,
        "params": {name: _params(p) for (name, _), p in planners.items()},
        "samples": sample_frames(val, out / "samples.png"),
    }  # fmt: skip
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    doc = write_report(recipe, results, seconds=time.perf_counter() - started)
    write_model_card(recipe, results, doc)
    return doc


def _keyed(table: dict[tuple[str, int], Any]) -> dict[str, Any]:
    return {f"{name}|{seed}": value for (name, seed), value in table.items()}


def _params(planner: torch.nn.Module) -> int:
    from suite.eval.efficiency import parameter_count

    return int(parameter_count(planner))


def save_rationale_bank(splits: list[DrivingData], path: Path) -> None:
    """The teacher's distinct planning rationales and their embeddings: what the reasoning head is compared with."""
    bank: dict[str, list[float]] = {}
    for data in splits:
        for row, vector in zip(data.texts, data.teacher["planning"], strict=True):
            bank.setdefault(row["planning"], [round(float(x), 6) for x in vector])
    path.write_text(json.dumps({"encoder": TEXT_ENCODER, "texts": list(bank), "embeddings": list(bank.values())}))


def sample_frames(val: DrivingData, png: Path, count: int = 4) -> list[dict[str, Any]]:
    """One validation frame per scenario with the teacher's rationale, for the report; the frames go to ``png``
    (4x upscaled, boxes of the agents the rationale names in yellow)."""
    from PIL import Image, ImageDraw

    picks, seen = [], set()
    for i, name in enumerate(val.scenario):
        if name not in seen and val.relevant[i].any():
            seen.add(name)
            picks.append(
                {
                    "index": i,
                    "scenario": name,
                    **{k: val.texts[i][k] for k in ("perception", "prediction", "planning")},
                }
            )
        if len(picks) == count:
            break
    if not picks:
        return picks
    scale, size = 4, sim.FRAME_SIZE * 4
    sheet = Image.new("RGB", (len(picks) * (size + 8), size), "white")
    for n, pick in enumerate(picks):
        frame = val.images[pick["index"]][-3:].permute(1, 2, 0).numpy()
        image = Image.fromarray(frame).resize((size, size), Image.NEAREST)
        draw = ImageDraw.Draw(image)
        for box in pick_boxes(val, pick["index"]):
            draw.rectangle([v * scale for v in box], outline=(255, 220, 0), width=2)
        sheet.paste(image, (n * (size + 8), 0))
    sheet.save(png)
    return picks


def pick_boxes(val: DrivingData, index: int) -> list[list[float]]:
    return [b.tolist() for b, keep in zip(val.boxes[index], val.relevant[index], strict=True) if keep]


# -- export and latency ------------------------------------------------------------------------------------------


def planner_spec(frames: int) -> ExportSpec:
    """The exported planner's contract: ``pixel_values`` (B, 3 * frames, 64, 64) in [0, 1] and ``ego_speed`` (B, 1)
    in m/s -> ``logits`` (B, 5), ``waypoints`` (B, 3, 2) and ``reasoning`` (B, 384)."""
    import dataclasses

    from suite.export.spec import vision_spec

    return dataclasses.replace(
        vision_spec((3 * frames, sim.FRAME_SIZE, sim.FRAME_SIZE), labels=list(sim.ACTIONS), task="driving-plan"),
        input_names=["pixel_values", "ego_speed"],
        output_names=["logits", "waypoints", "reasoning"],
        dynamic_axes={
            name: {0: "batch"} for name in ("pixel_values", "ego_speed", "logits", "waypoints", "reasoning")
        },
        tolerance=1e-3,
    )


def export_planners(recipe: DrivingRecipe, planners: dict, val: DrivingData, out: Path) -> dict[str, Path]:
    """First-seed planner of every variant -> ONNX (logits, waypoints, reasoning) with the parity check."""
    from suite.export import export_student
    from suite.export.package import ModelCardInfo

    first = recipe.seeds[0]
    spec = planner_spec(recipe.frames)

    def inputs(start: int, count: int) -> dict[str, torch.Tensor]:
        rows = slice(start, start + count)
        return {"pixel_values": val.images[rows].float() / 255.0, "ego_speed": val.speed[rows]}

    example, heldout = inputs(0, 2), [inputs(2, 3), inputs(5, 1)]
    exports = {}
    for (name, seed), planner in planners.items():
        if seed != first:
            continue
        target = out / "export" / name
        if target.is_dir():  # this run's own earlier export; export_student refuses to write over anything else
            shutil.rmtree(target)
        card = ModelCardInfo(name=f"driving planner {name}", license="MIT (highway-env data, generated)")
        exports[name] = export_student(
            planner.eval(), spec, example, heldout, target, card=card, student_name="pixel-planner",
            student_kwargs={**planner_kwargs(recipe, _backbone_of(name, recipe)), "pretrained": False},
        )  # fmt: skip
    return exports


def _backbone_of(name: str, recipe: DrivingRecipe) -> str:
    return next(b for b in (recipe.backbone, recipe.extra_backbone) if b and name.startswith(b + "-"))


def benchmark(recipe: DrivingRecipe, exports: dict[str, Path], out: Path) -> dict[str, Any]:
    """Batch-1 onnxruntime CPU latency of every exported planner, plus eager PyTorch for comparison."""
    from suite.bench import run_benchmark

    if not exports:
        return {}
    result = run_benchmark(
        list(exports.values()), batch_sizes=(1,), providers=("cpu",), variants=("fp32",), out_dir=out / "bench",
        warmup=20, repeats=recipe.bench_repeats, progress=recipe.progress,
    )  # fmt: skip
    return {"machine": result["machine"], "results": result["results"]}
