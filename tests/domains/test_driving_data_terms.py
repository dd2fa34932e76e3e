"""Training tensors from shards (agent cells, relevance maps, frame stacks) and the driving Distiller terms on a tiny
planner: finite, differentiable into the planner, and zero in their identity cases."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from domains.driving import scenarios as sim
from domains.driving.collect import CollectPlan, collect
from domains.driving.data import STAGES, TokenCells, _stack_frames, budget_rows, concat, load, make_collate
from domains.driving.recipe import LOSS_WEIGHTS, VARIANTS
from domains.driving.terms import (
    AgentContrast,
    AttentionDistill,
    Imitation,
    MaskedTokens,
    ReasoningConsistency,
    StageAlignment,
    build_terms,
)
from suite.distiller import Distiller
from suite.losses import action_score_loss, cosine_alignment_loss, imitation_loss, waypoint_l2_loss
from suite.students.planner import GRID, PixelPlanner

TEXT_DIM = 16
CELL = sim.FRAME_SIZE // GRID  # 8 pixels
SQUARE = TokenCells(sim.camera("square64"), (GRID, GRID))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # A few-unit planner gains nothing from threads, and on a busy 2-core machine two threads are 50x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- data --------------------------------------------------------------------------------------------------------


def test_agent_cells_share_each_box_over_its_cells():
    boxes = np.array([[[10, 20, 30, 27], [4, 4, 12, 12], [0, 0, 64, 64], [8, 8, 16, 16]]], np.float32)
    mask = np.array([[True, True, True, False]])
    cells = SQUARE.agent_cells(boxes, mask)  # (1, 4, G, G)
    assert cells.shape == (1, 4, GRID, GRID)
    np.testing.assert_allclose(cells[0, :3].sum((-1, -2)), 1.0, rtol=1e-6)
    assert (cells[0, 3] == 0).all()  # a masked agent covers nothing
    # A box on the corner of four cells shares itself equally among them.
    expected = np.zeros((GRID, GRID))
    expected[0:2, 0:2] = 0.25
    np.testing.assert_allclose(cells[0, 1], expected, atol=1e-7)
    np.testing.assert_allclose(cells[0, 2], 1 / GRID**2, rtol=1e-6)  # the whole frame: uniform
    assert (cells[0, 0, :, 4:] == 0).all() and (cells[0, 0, :2] == 0).all()  # nothing outside the box


def test_relevance_is_one_under_named_agents_and_half_on_the_ego():
    named = [5 * CELL, 1 * CELL, 7 * CELL, 3 * CELL]  # rows 1-2, columns 5-6, far from the ego
    ignored = [0, 6 * CELL, 2 * CELL, 8 * CELL]
    car = [41.9, 30.75, 48.2, 33.25]  # a real merge car (6.3 x 2.5 pixels) on the corner of rows 3-4, columns 5-6
    boxes = np.array([[named, ignored, car]], np.float32)
    maps = SQUARE.relevance_maps(boxes, np.array([[True, False, True]]), ["merge"])[0]
    assert maps.shape == (GRID, GRID)
    expected = np.zeros((GRID, GRID), np.float32)
    expected[1:5, 5:7] = 1.0
    # The merge ego box (6.25 px square around pixel (16, 32)) overlaps the corner of four cells.
    x0, y0, x1, y1 = SQUARE.ego_box("merge")
    assert (x0 + x1) / 2 == 16 and (y0 + y1) / 2 == 32
    expected[3:5, 1:3] = 0.5
    np.testing.assert_array_equal(maps, expected)  # the unnamed agent leaves no trace
    # A named agent on the ego's cells wins over the ego.
    on_ego = SQUARE.relevance_maps(np.array([[[8, 24, 16, 32]]], np.float32), np.array([[True]]), ["merge"])[0]
    assert on_ego[3, 1] == 1.0 and on_ego[3, 2] == on_ego[4, 1] == 0.5


@pytest.mark.parametrize("camera", sorted(sim.CAMERAS))
def test_the_ego_box_marks_the_drawn_ego_car(camera):
    cells = TokenCells(sim.camera(camera), (8, 8))
    for name in sim.SCENARIOS:
        env = sim.make_env(name, camera)
        try:
            frame = sim.reset(env, 0)
        finally:
            env.close()
        assert frame.shape == (*sim.camera(camera).shape, 3)
        x0, y0, x1, y1 = cells.ego_box(name)
        region = frame[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))].reshape(-1, 3)
        road_or_line = (region == 100).all(1) | (region == 255).all(1)
        assert not road_or_line.all(), (camera, name)


def test_a_wide_frame_on_a_rectangular_grid_keeps_rows_and_columns_apart():
    wide = TokenCells(sim.camera("ego"), (16, 32))  # 128 x 64 frames, 4-pixel cells
    box = np.array([[[8, 4, 16, 8]]], np.float32)  # columns 2-3, row 1
    cells = wide.agent_cells(box, np.array([[True]]))[0, 0]
    assert cells.shape == (16, 32)
    expected = np.zeros((16, 32))
    expected[1, 2:4] = 0.5
    np.testing.assert_allclose(cells, expected, atol=1e-7)
    # the ego sits at 30% of the width and half the height on highway
    x0, y0, x1, y1 = wide.ego_box("highway")
    assert (x0 + x1) / 2 == pytest.approx(0.3 * 128) and (y0 + y1) / 2 == pytest.approx(32)


def test_stacked_frames_repeat_the_first_frame_at_episode_starts():
    frames = np.arange(5, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)  # frame i == i
    step = np.array([0, 1, 2, 0, 1])  # two episodes
    stacked = _stack_frames(frames, step, 3)
    assert stacked.shape == (5, 9, 2, 2)
    oldest_to_newest = stacked[:, ::3, 0, 0]  # the first channel of each stacked frame
    np.testing.assert_array_equal(oldest_to_newest, [[0, 0, 0], [0, 0, 1], [0, 1, 2], [3, 3, 3], [3, 3, 4]])
    np.testing.assert_array_equal(_stack_frames(frames, step, 1)[:, 0, 0, 0], np.arange(5))


# -- terms -------------------------------------------------------------------------------------------------------


def _unit(*shape: int) -> torch.Tensor:
    return F.normalize(torch.randn(*shape), dim=-1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    shards = collect(CollectPlan(("merge",), episodes=1, seed=0), tmp_path_factory.mktemp("shards"), progress=False)
    data = load(shards, frames=2)
    torch.manual_seed(0)
    data.teacher = {stage: _unit(len(data), TEXT_DIM) for stage in STAGES}
    data.teacher["agents"] = _unit(len(data), data.agent_mask.shape[1], TEXT_DIM) * data.agent_mask[..., None]
    assert data.agent_mask.sum() >= 2 and data.relevance.max() > 0
    return data


@pytest.fixture
def batch(data):
    return make_collate(data)(list(range(len(data))))


@pytest.fixture
def planner():
    torch.manual_seed(0)
    return PixelPlanner(backbone="tiny", width=4, hidden=8, text_dim=TEXT_DIM, pretrained=False)


def test_the_recipe_refuses_negative_weight_decay_and_critical_weight():
    from domains.driving.recipe import DrivingRecipe
    from suite.errors import ConfigError

    with pytest.raises(ConfigError, match="weight_decay"):
        DrivingRecipe(weight_decay=-0.1)
    with pytest.raises(ConfigError, match="critical_weight"):
        DrivingRecipe(critical_weight=-1.0)


@pytest.mark.parametrize(("scale", "wrong"), [({"highway-dense": 2}, "unknown"), ({"merge": 0.5}, ">= 1")])
def test_the_recipe_refuses_episode_scale_of_unknown_scenarios_or_below_one(scale, wrong):
    from domains.driving.recipe import DrivingRecipe
    from suite.errors import ConfigError

    with pytest.raises(ConfigError, match=f"episode_scale.*{wrong}"):
        DrivingRecipe(episode_scale=scale)


def test_episode_scale_gives_more_train_and_dagger_episodes_not_validation_ones():
    from domains.driving.recipe import DrivingRecipe
    from domains.driving.report import scale_words
    from domains.driving.teacher_data import collect_plan

    recipe = DrivingRecipe(train_episodes=60, dagger_episodes=30, episode_scale={"intersection": 10, "merge": 1})
    assert collect_plan(recipe, 60, 0, scaled=True).scenario_episodes == (("intersection", 600),)
    assert collect_plan(recipe, 30, 100, scaled=True).episodes_of("intersection") == 300
    assert collect_plan(recipe, 15, 1).scenario_episodes == ()  # validation: as many episodes of every scenario
    assert "600 of intersection" in scale_words(recipe) and scale_words(DrivingRecipe(episode_scale={})) == ""


@pytest.mark.parametrize(("share", "wrong"), [({"highway-dense": 0.5}, "unknown"), ({"merge": 0}, "(0, 1]"),
                                               ({"merge": 1.5}, "(0, 1]")])  # fmt: skip
def test_the_recipe_refuses_epoch_share_of_unknown_scenarios_or_beyond_zero_to_one(share, wrong):
    from domains.driving.recipe import DrivingRecipe
    from suite.errors import ConfigError

    with pytest.raises(ConfigError, match=f"epoch_share.*{re.escape(wrong)}"):
        DrivingRecipe(epoch_share=share)


def test_an_epoch_draws_its_share_of_the_named_scenarios_and_every_frame_of_the_others(data):
    import dataclasses

    from domains.driving.data import epoch_draws
    from domains.driving.recipe import DrivingRecipe
    from domains.driving.report import share_words

    many = concat([data] * 4)
    crossing = len(many) - 7
    mixed = dataclasses.replace(many, scenario=["intersection"] * crossing + ["merge"] * 7)
    draws = {mixed.scenario[group[0]]: (group, n) for group, n in epoch_draws(mixed, {"intersection": 0.25})}
    assert draws["intersection"] == (list(range(crossing)), round(crossing / 4))
    assert draws["merge"] == (list(range(crossing, crossing + 7)), 7)
    assert epoch_draws(mixed, {}) is None  # no share: every frame once, as before
    assert share_words(DrivingRecipe(epoch_share={"intersection": 0.25})).count("25% of intersection's") == 1
    assert share_words(DrivingRecipe(epoch_share={})) == ""


def test_the_intersections_extra_episodes_are_the_default_and_apply_only_to_a_run_that_trains_on_it():
    from domains.driving.recipe import PROFILES, DrivingRecipe
    from suite.config import load_config

    full = DrivingRecipe()
    assert full.episode_scale == {"intersection": 10} and full.epoch_share == {"intersection": 0.2}
    assert full.expert.other_routes == "any"  # the camera-knowable expert they were measured with
    elsewhere = DrivingRecipe(scenarios=["highway", "merge"])  # the default does not refuse a run without it
    assert elsewhere.episode_scale == {} and elsewhere.epoch_share == {}
    same_as_none = DrivingRecipe(episode_scale={"intersection": 1, "merge": 2}, epoch_share={"intersection": 1})
    assert same_as_none.episode_scale == {"merge": 2} and same_as_none.epoch_share == {}
    quick = load_config(DrivingRecipe, None, PROFILES["quick"])  # a few-minute smoke run: no extra episodes
    assert quick.episode_scale == {} and quick.epoch_share == {}


def test_a_data_budget_keeps_whole_nested_episodes(data):
    import dataclasses

    many = concat([data] * (40 // len(data) + 1))
    many = dataclasses.replace(many, episode=torch.arange(len(many)) % 40)  # pretend each row is its own episode
    kept = {b: set(many.episode[budget_rows(many, b)].tolist()) for b in (0.1, 0.25, 1.0)}
    assert kept[0.1] == {0, 1, 20, 21} and kept[0.25] == {0, 1, 2, 3, 4, 20, 21, 22, 23, 24}
    assert kept[0.1] <= kept[0.25] <= kept[1.0] == set(many.episode.tolist())
    subset = many.rows(budget_rows(many, 0.25))
    assert len(subset) == len(subset.texts) == len(subset.scenario) == subset.images.shape[0] == len(subset.boxes)
    assert torch.equal(subset.actions, many.actions[budget_rows(many, 0.25)])
    assert all(torch.equal(subset.teacher[k], v[budget_rows(many, 0.25)]) for k, v in many.teacher.items())


def test_concat_puts_rows_of_two_collections_one_after_another(data):
    both = concat([data, data])
    assert len(both) == 2 * len(data) and both.scenario == data.scenario * 2
    assert torch.equal(both.images[len(data) :], data.images) and torch.equal(both.episode[: len(data)], data.episode)
    assert both.teacher["agents"].shape[0] == 2 * len(data)


def test_collate_shapes(data, batch):
    n = len(data)
    assert batch["inputs"]["images"].shape == (n, 6, sim.FRAME_SIZE, sim.FRAME_SIZE)
    assert batch["inputs"]["images"].min() >= 0 and batch["inputs"]["images"].max() <= 1
    teacher = batch["teacher"]
    assert teacher["agents"].shape == (n, data.agent_mask.shape[1], TEXT_DIM)
    assert teacher["relevance"].shape == (n, GRID, GRID) and teacher["agent_cells"].shape[-2:] == (GRID, GRID)


@pytest.mark.parametrize("name", ["imitation", *VARIANTS["all"]])
def test_every_term_is_finite_and_trains_the_planner(name, planner, batch):
    terms = build_terms(VARIANTS["all"], planner, _unit(len(sim.ACTIONS), TEXT_DIM))
    term = terms[name]
    loss = term(planner(**batch["inputs"]), batch["teacher"], batch)
    assert loss.dim() == 0 and torch.isfinite(loss) and loss > 0
    loss.backward()
    grads = {n: p.grad for n, p in planner.named_parameters()}
    assert all(g is None or torch.isfinite(g).all() for g in grads.values())
    first_conv = grads["backbone.layers.0.0.weight"]
    assert first_conv is not None and first_conv.abs().sum() > 0, "no gradient reaches the backbone"
    head = {"imitation": "waypoint_head", "consistency": "reasoning_head", "attention": "attention_logits",
            "align": "planning.0", "agents": "backbone.layers.3", "recon": "backbone.layers.3"}[name]  # fmt: skip
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.startswith(head)), head
    for parameter in term.parameters():  # the term's own projectors / decoder learn too
        assert parameter.grad is not None


def test_all_terms_together_lower_the_loss(planner, batch):
    torch.manual_seed(0)
    terms = build_terms(VARIANTS["all"], planner, _unit(len(sim.ACTIONS), TEXT_DIM))
    distiller = Distiller(planner, terms, {name: LOSS_WEIGHTS[name] for name in terms})
    out = distiller(batch)
    assert set(out) == {"loss"} | {f"{name}_loss" for name in terms}
    optimizer = torch.optim.Adam(distiller.trainable_parameters(), lr=1e-2)
    first = None
    for _ in range(20):
        loss = distiller(batch)["loss"]
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert distiller(batch)["loss"].item() < 0.8 * first


def test_imitation_is_cross_entropy_when_the_waypoints_are_right(planner, batch):
    out = planner(**batch["inputs"])
    labels = dict(batch["labels"])
    assert waypoint_l2_loss(out["waypoints"], out["waypoints"].detach(), labels["waypoint_mask"]).item() == 0.0
    labels["waypoints"] = out["waypoints"].detach()
    loss = Imitation()(out, None, {**batch, "labels": labels})
    torch.testing.assert_close(loss, F.cross_entropy(out["logits"], labels["actions"]))
    # With the real targets the waypoint part is 0.1 x the mean displacement in metres.
    wrong = Imitation()(out, None, batch)
    expected = 0.1 * waypoint_l2_loss(out["waypoints"], batch["labels"]["waypoints"], batch["labels"]["waypoint_mask"])
    torch.testing.assert_close(wrong - loss, expected)


def test_imitation_with_the_expert_clearances_adds_their_regression_and_nothing_at_weight_zero(planner, batch):
    assert torch.isfinite(batch["labels"]["clearances"]).any()  # the collected frames carry the expert's scores
    out = planner(**batch["inputs"])
    plain = Imitation()(out, None, batch)
    off = Imitation(clearance_weight=0.0, hidden=planner.hidden, num_actions=len(sim.ACTIONS))
    assert off.clearance_head is None and list(off.parameters()) == []
    torch.testing.assert_close(off(out, None, batch), plain)
    on = build_terms((), planner, _unit(len(sim.ACTIONS), TEXT_DIM), settings={"clearance_weight": 0.5})["imitation"]
    predicted = on.clearance_head(out["planning"])
    expected = plain + 0.5 * action_score_loss(predicted, batch["labels"]["clearances"], scale=10.0)
    loss = on(out, None, batch)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert on.clearance_head.weight.grad.abs().sum() > 0
    assert planner.planning[0].weight.grad.abs().sum() > 0  # the scores shape the planning features
    with pytest.raises(ValueError, match="hidden size"):
        Imitation(clearance_weight=0.5)


def test_critical_frames_count_more_in_the_imitation_cross_entropy(planner, batch):
    out = planner(**batch["inputs"])
    clearances = batch["labels"]["clearances"].clone()
    idle, margin = sim.ACTIONS.index("IDLE"), 1.0
    clearances[:, idle] = 30.0  # room to keep going ...
    clearances[::2, idle] = -5.0  # ... except on every other frame, where keeping lane and speed would hit someone
    clearances[1, idle] = float("nan")  # no clearance recorded (an older shard): counts once
    labels = {**batch["labels"], "clearances": clearances}
    batch = {**batch, "labels": labels}
    unsafe = torch.arange(len(clearances)) % 2 == 0
    term = Imitation(critical_weight=3.0, keep_margin=margin)
    args = (out["logits"], labels["actions"], out["waypoints"], labels["waypoints"], labels["waypoint_mask"])
    expected = imitation_loss(*args, waypoint_weight=0.1, sample_weights=1.0 + 3.0 * unsafe.float())
    torch.testing.assert_close(term(out, None, batch), expected)
    assert not torch.allclose(expected, Imitation()(out, None, batch))
    # no frame below the margin (or none with a clearance): plain imitation
    torch.testing.assert_close(Imitation(critical_weight=3.0, keep_margin=-1e9)(out, None, batch),
                               Imitation()(out, None, batch))  # fmt: skip
    settings = {"critical_weight": 3.0, "keep_margin": margin}
    built = build_terms((), planner, _unit(len(sim.ACTIONS), TEXT_DIM), settings=settings)["imitation"]
    assert (built.critical_weight, built.keep_margin) == (3.0, margin)


def test_attention_distill_is_zero_when_the_teacher_attends_like_the_student(planner, batch):
    out = planner(**batch["inputs"])
    same = AttentionDistill()(out, {"relevance": out["attention"].detach()}, batch)
    assert abs(same.item()) < 1e-5
    assert AttentionDistill()(out, batch["teacher"], batch).item() > 0.01


def test_reasoning_consistency_kl_vanishes_when_the_heads_agree(planner, batch):
    term = ReasoningConsistency(_unit(len(sim.ACTIONS), TEXT_DIM))
    out = planner(**batch["inputs"])
    intent = F.normalize(out["reasoning"], dim=-1) @ term.prototypes.T / term.temperature
    agreeing = {**out, "logits": intent}
    loss = term(agreeing, batch["teacher"], batch)
    torch.testing.assert_close(loss, cosine_alignment_loss(out["reasoning"], batch["teacher"]["planning"]))
    # ... and the whole term is 0 when the reasoning vector is also the teacher's rationale.
    assert abs(term(agreeing, {"planning": out["reasoning"].detach()}, batch).item()) < 1e-5
    assert term(out, batch["teacher"], batch).item() > loss.item()


def test_stage_alignment_is_zero_on_its_own_projections(planner, batch):
    term = StageAlignment(planner.hidden, TEXT_DIM)
    out = planner(**batch["inputs"])
    target = {stage: term.align.projectors[stage](out[stage]).detach() for stage in STAGES}
    assert abs(term(out, target, batch).item()) < 1e-5


def test_agent_contrast_without_negatives_and_masked_tokens_without_masks_are_zero(planner, batch):
    out = planner(**batch["inputs"])
    teacher = {**batch["teacher"], "agent_mask": torch.zeros_like(batch["teacher"]["agent_mask"])}
    lone = AgentContrast(planner.token_dim, TEXT_DIM)(out, teacher, batch)
    assert lone.item() == 0.0 and lone.requires_grad
    assert MaskedTokens(planner.token_dim, ratio=0.0)(out, None, batch).item() == 0.0
    assert MaskedTokens(planner.token_dim, ratio=1.0)(out, None, batch).item() > 0


def test_agent_contrast_does_not_push_apart_agents_the_teacher_described_alike(planner, batch):
    from suite.losses import info_nce_loss

    out = planner(**batch["inputs"])
    mask = batch["teacher"]["agent_mask"].bool()
    agents = batch["teacher"]["agents"].clone()
    first, second = mask.nonzero()[:2].tolist()
    agents[second[0], second[1]] = agents[first[0], first[1]]  # two agents, one description
    teacher = {**batch["teacher"], "agents": agents}
    term = AgentContrast(planner.token_dim, TEXT_DIM)
    loss = term(out, teacher, batch)

    query = term.projector(torch.einsum("bagh,bcgh->bac", teacher["agent_cells"], out["tokens"])[mask])
    texts = agents[mask]
    losses = []
    for i in range(len(texts)):
        others = [j for j in range(len(texts)) if not torch.equal(texts[j], texts[i])]
        losses.append(info_nce_loss(query[i : i + 1], texts[i : i + 1], texts[others], temperature=term.temperature))
    torch.testing.assert_close(loss, torch.stack(losses).mean())


def test_build_terms_rejects_unknown_names(planner):
    with pytest.raises(ValueError, match="unknown loss terms"):
        build_terms(("align", "telepathy"), planner, _unit(len(sim.ACTIONS), TEXT_DIM))
    assert set(build_terms((), planner, _unit(len(sim.ACTIONS), TEXT_DIM))) == {"imitation"}


def test_only_variants_with_a_teacher_term_count_as_distillation():
    from domains.driving.terms import distils_from_teacher

    assert not distils_from_teacher(VARIANTS["imitation"])
    assert not distils_from_teacher(VARIANTS["recon"])  # DiMA reconstructs pixels: no teacher involved
    assert all(distils_from_teacher(VARIANTS[v]) for v in ("align", "agents", "attention", "consistency", "all"))
