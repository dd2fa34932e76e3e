"""The teacher's side of the driving data: expert episodes collected and loaded, a VLM's rationales in place of the
expert's when one is the teacher, every rationale embedded with MiniLM (all through the teacher-output store), and
what the report and the app show of them (the rationale bank, sample frames)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from domains.driving import scenarios as sim
from domains.driving.collect import CollectPlan, collect
from domains.driving.data import DrivingData, embed_texts, load
from domains.driving.recipe import DrivingRecipe, scaled_episodes
from domains.driving.vlm import DRIVING_TASK
from suite.students.planner import token_grid

TEXT_ENCODER = "minilm-l6"


def load_splits(recipe: DrivingRecipe, out: Path, encoder_path: Path | None = None) -> tuple[DrivingData, DrivingData]:
    """The expert's training and validation frames with the teacher's targets, the rationales embedded by
    ``encoder_path`` (default: MiniLM-L6 as packaged)."""
    train_plan = collect_plan(recipe, recipe.train_episodes, recipe.seed, scaled=True)
    val_plan = collect_plan(recipe, recipe.val_episodes, recipe.seed + 1)  # other seeds: unseen episodes
    print(f"[driving] collecting {recipe.train_episodes}+{recipe.val_episodes} expert episodes per scenario"
          + more_words(train_plan))  # fmt: skip
    encoder = text_encoder(encoder_path)
    train, val = (labelled_frames(recipe, plan, out / "data" / split, out, encoder)
                  for plan, split in ((train_plan, "train"), (val_plan, "val")))  # fmt: skip
    print(f"[driving] {len(train)} training frames, {len(val)} validation frames")
    return train, val


def collect_plan(recipe: DrivingRecipe, episodes: int, seed: int, scaled: bool = False, **dagger: Any) -> CollectPlan:
    """The recipe's scenarios, camera and expert; ``scaled``: with ``episode_scale``'s multiples of ``episodes``;
    ``dagger``: a ``driver`` and its ``beta``."""
    more = scaled_episodes(recipe, episodes) if scaled else ()
    return CollectPlan(tuple(recipe.scenarios), episodes, seed, camera=recipe.camera, expert=recipe.expert,
                       scenario_episodes=more, **dagger)  # fmt: skip


def more_words(plan: CollectPlan) -> str:
    """' (intersection: 600)' for a plan with more episodes of some scenarios ('' without)."""
    return f" ({', '.join(f'{s}: {n}' for s, n in plan.scenario_episodes)})" if plan.scenario_episodes else ""


def labelled_frames(
    recipe: DrivingRecipe, plan: CollectPlan, shards_dir: Path, out: Path, encoder: Any
) -> DrivingData:
    """Collect ``plan`` into ``shards_dir`` and load it with the teacher's targets: a VLM's rationales when it is the
    teacher, and every rationale's embedding (both through the teacher-output store under ``out``)."""
    grid = token_grid(sim.camera(recipe.camera).shape, recipe.token_stride)
    data = load(collect(plan, shards_dir, recipe.progress, recipe.workers), recipe.frames, recipe.camera, grid)
    if recipe.teacher != "expert":
        vlm_rationales(recipe, data, out / "store")
    embed_texts(data, encoder, out / "store", recipe.progress)
    return data


def text_encoder(path: Path | None = None) -> Any:
    """The encoder of every rationale: ``path`` (an adapted copy), else MiniLM-L6 as packaged."""
    from suite import hub
    from suite.teachers import HFTeacher

    return HFTeacher(path or hub.resolve_model_path(TEXT_ENCODER), task="encoder", max_length=96)


RETRIEVAL_PAIRS = 500  # BDD-X test pairs the adaptation is checked on (distinct justifications)


def adapt_on_bddx(recipe: DrivingRecipe, out: Path) -> Path:
    """MiniLM-L6 adapted to driving explanations: in-batch contrastive training on BDD-X's training (action,
    justification) pairs (:func:`suite.adapt.adapt_encoder`), saved to ``out/encoder``; ``out/retrieval.json`` holds
    action -> justification retrieval R@1 on BDD-X test pairs before and after, the check that says whether it
    helped."""
    from transformers import AutoModel, AutoTokenizer

    from suite import hub
    from suite.adapt import adapt_encoder, retrieval_at_1
    from suite.data import load_dataset

    splits = load_dataset("bdd-x", path=recipe.bddx_path or None)
    pairs = [(r["action"], r["justification"]) for r in splits["train"]]
    test = list({r["justification"]: (r["action"], r["justification"]) for r in splits["test"]}.values())
    queries, keys = zip(*test[:RETRIEVAL_PAIRS], strict=True)
    base = hub.resolve_model_path(TEXT_ENCODER)

    def r1(path: Path) -> float:
        return retrieval_at_1(AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path), queries, keys)

    print(f"[driving] adapting {TEXT_ENCODER} on {len(pairs)} BDD-X pairs for {recipe.encoder_adapt_steps} steps")
    before = r1(base)
    adapted = adapt_encoder(base, pairs, out / "encoder", steps=recipe.encoder_adapt_steps, progress=recipe.progress)
    check = {"train_pairs": len(pairs), "test_pairs": len(queries), "steps": recipe.encoder_adapt_steps,
             "retrieval_at_1_before": before, "retrieval_at_1_after": r1(adapted)}  # fmt: skip
    (out / "retrieval.json").write_text(json.dumps(check, indent=1))
    return out


def vlm_rationales(recipe: DrivingRecipe, data: DrivingData, store_dir: Path) -> None:
    """Replace the expert's texts with a VLM's, asked about each frame (answers kept in the teacher-output store).

    The expert still supplies the actions; a frame whose answer does not parse keeps the expert's rationale, and the
    count of those is printed.
    """
    from suite.teachers import TeacherOutputStore
    from suite.teachers.vision_language import HFVisionLanguageTeacher, OpenAICompatibleVLMTeacher, vlm_inputs

    if recipe.teacher == "openai-vlm":
        teacher = OpenAICompatibleVLMTeacher(
            base_url=recipe.teacher_url, model=recipe.teacher_model, task=DRIVING_TASK
        )
    else:
        teacher = HFVisionLanguageTeacher(recipe.teacher_model, task=DRIVING_TASK)
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
        if answer.meta.get("sections"):
            row.update(answer.meta["sections"])
        else:
            kept += 1
    print(f"[driving] VLM rationales: {len(answers) - kept} parsed, {kept} kept the expert's text")


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
    scale = 4
    height, width = (scale * side for side in val.images.shape[-2:])
    sheet = Image.new("RGB", (len(picks) * (width + 8), height), "white")
    for n, pick in enumerate(picks):
        frame = val.images[pick["index"]][-3:].permute(1, 2, 0).numpy()
        image = Image.fromarray(frame).resize((width, height), Image.NEAREST)
        draw = ImageDraw.Draw(image)
        for box in pick_boxes(val, pick["index"]):
            draw.rectangle([v * scale for v in box], outline=(255, 220, 0), width=2)
        sheet.paste(image, (n * (width + 8), 0))
    sheet.save(png)
    return picks


def pick_boxes(val: DrivingData, index: int) -> list[list[float]]:
    return [b.tolist() for b, keep in zip(val.boxes[index], val.relevant[index], strict=True) if keep]
