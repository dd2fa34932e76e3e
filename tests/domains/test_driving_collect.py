"""The expert-episode collector: seeded episodes, real frames, ego-frame waypoints, resumable shards."""

from __future__ import annotations

import io

import numpy as np
import pytest

from domains.driving.collect import (
    CLEARANCE_RANGE,
    WAYPOINT_STEPS,
    CollectPlan,
    clearance_row,
    collect,
    load_shard,
    record_episode,
)
from domains.driving.expert import ExpertConfig
from domains.driving.scenarios import ACTION_INDEX, ACTIONS, FRAME_SIZE

ARRAYS = ("frames", "actions", "clearances", "speed", "waypoints", "waypoint_mask", "boxes", "agent_mask", "relevant")


@pytest.fixture(scope="module")
def merge_episode():
    return record_episode("merge", seed=0, episode=0)


@pytest.fixture(scope="module")
def highway_episode():
    # Seed 0, episode 0 of highway changes lanes (LANE_LEFT) and changes speed: it exercises the lateral waypoints.
    return record_episode("highway", seed=0, episode=0)


def test_an_episode_depends_on_its_seed_only(merge_episode):
    again = record_episode("merge", seed=0, episode=0)
    for key in ARRAYS:
        np.testing.assert_array_equal(again["arrays"][key], merge_episode["arrays"][key], err_msg=key)
    assert again["texts"] == merge_episode["texts"]
    other = record_episode("merge", seed=1, episode=0)
    first = min(len(other["arrays"]["frames"]), len(merge_episode["arrays"]["frames"]))
    assert not np.array_equal(other["arrays"]["frames"][:first], merge_episode["arrays"]["frames"][:first])


@pytest.mark.parametrize("name", ["merge", "highway"])
def test_frames_are_real_renders(name, merge_episode, highway_episode):
    frames = {"merge": merge_episode, "highway": highway_episode}[name]["arrays"]["frames"]
    assert frames.dtype == np.uint8 and frames.shape[1:] == (FRAME_SIZE, FRAME_SIZE, 3) and len(frames) >= 5
    for frame in frames:
        # The dummy SDL driver renders black frames; a real one shows grey road, white lines and dark cars.
        assert frame.mean() > 50
        assert len(np.unique(frame.reshape(-1, 3), axis=0)) >= 3
    assert not all(np.array_equal(frames[0], f) for f in frames[1:])  # the view moves


@pytest.mark.parametrize("name", ["merge", "highway"])
def test_waypoints_are_ego_frame_metres_and_masked_only_at_the_end(name, merge_episode, highway_episode):
    arrays = {"merge": merge_episode, "highway": highway_episode}[name]["arrays"]
    waypoints, mask, speed = arrays["waypoints"], arrays["waypoint_mask"], arrays["speed"]
    n = len(arrays["actions"])
    expected = np.array([[t + ahead <= n for ahead in WAYPOINT_STEPS] for t in range(n)])
    np.testing.assert_array_equal(mask, expected)  # False only for futures beyond the last recorded position
    assert (waypoints[~mask] == 0).all()
    moving = mask[:, 0] & (speed > 1.0)
    assert moving.any()
    assert (waypoints[moving, 0, 0] > 0).all()  # ahead of the car
    # One decision per second: the 1 s waypoint is about one second of travel ahead, and they keep their order.
    np.testing.assert_allclose(waypoints[moving, 0, 0], speed[moving], atol=5.0)
    later = mask[:, 2] & moving
    assert (np.diff(waypoints[later, :, 0], axis=1) > 0).all()


def test_lane_changes_move_the_waypoints_to_that_side(highway_episode):
    arrays = highway_episode["arrays"]
    lateral = arrays["waypoints"][:, 0, 1]  # metres to the right, 1 s ahead
    left = arrays["actions"] == ACTION_INDEX["LANE_LEFT"]
    right = arrays["actions"] == ACTION_INDEX["LANE_RIGHT"]
    assert left.any()
    assert (lateral[left] < -1.0).all()
    assert (lateral[right] > 1.0).all()


def test_texts_line_up_with_the_agents(merge_episode):
    arrays, texts = merge_episode["arrays"], merge_episode["texts"]
    assert len(texts) == len(arrays["actions"])
    for row, mask in zip(texts, arrays["agent_mask"], strict=True):
        assert len(row["agents"]) == mask.sum()
        assert all(row[stage] for stage in ("perception", "prediction", "planning"))


def test_collection_resumes_only_the_missing_shard(tmp_path):
    plan = CollectPlan(("merge",), episodes=2, seed=0, shard_episodes=1)
    paths = collect(plan, tmp_path, progress=False)
    assert [p.name for p in paths] == ["merge-0000.npz", "merge-0001.npz"]
    assert all(p.exists() and p.with_suffix(".json").exists() for p in paths)
    before = [load_shard(p) for p in paths]
    assert set(before[0][0]["episode"]) == {0} and set(before[1][0]["episode"]) == {1}
    kept_mtime = paths[0].stat().st_mtime_ns

    paths[1].unlink()
    assert collect(plan, tmp_path, progress=False) == paths
    assert paths[0].stat().st_mtime_ns == kept_mtime  # the complete shard was not rewritten
    rebuilt = load_shard(paths[1])
    for key, value in before[1][0].items():
        np.testing.assert_array_equal(rebuilt[0][key], value, err_msg=key)
    assert rebuilt[1:] == before[1][1:]

    with pytest.raises(ValueError, match="another collection"):
        collect(CollectPlan(("merge",), episodes=2, seed=1, shard_episodes=1), tmp_path, progress=False)


@pytest.fixture(scope="module")
def shard_bytes(tmp_path_factory):
    [path] = collect(CollectPlan(("intersection",), episodes=1, seed=0), tmp_path_factory.mktemp("shard"), False)
    return path.read_bytes(), path.with_suffix(".json").read_bytes()


def _flip_middle(data: bytes) -> bytes:
    middle = len(data) // 2  # inside the compressed frames, the largest member
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :]


@pytest.mark.parametrize(
    "damage",
    [lambda data: b"not a shard" * 10, lambda data: data[: len(data) // 2], _flip_middle],
    ids=["garbage", "truncated", "corrupted"],
)
def test_a_damaged_shard_names_its_file(tmp_path, shard_bytes, damage):
    npz, texts = shard_bytes
    path = tmp_path / "intersection-0000.npz"
    path.with_suffix(".json").write_bytes(texts)
    path.write_bytes(npz)
    assert load_shard(path)[2] == "intersection"
    path.write_bytes(damage(npz))
    with pytest.raises(ValueError, match=path.name):
        load_shard(path)


def test_the_privileged_state_is_recorded_per_frame_nearest_car_first(highway_episode):
    from domains.driving.state import EGO_FEATURES, NEIGHBOUR_FEATURES, NEIGHBOURS, STATE_DIM

    arrays = highway_episode["arrays"]
    state = arrays["state"]
    assert state.shape == (len(arrays["actions"]), STATE_DIM) and state.dtype == np.float32
    np.testing.assert_allclose(state[:, 0] * 30.0, arrays["speed"], rtol=1e-5)  # the ego's speed, scaled
    assert set(np.unique(state[:, 1])) <= {0.0, 1.0, 2.0}  # highway's three speed levels
    neighbours = state[:, EGO_FEATURES:].reshape(len(state), NEIGHBOURS, NEIGHBOUR_FEATURES)
    present = neighbours[..., 0] == 1.0
    assert present[:, 0].all()  # highway always has a car within the expert's 60 m
    distance = np.hypot(neighbours[..., 1] * 50.0, neighbours[..., 2] * 10.0)
    assert (np.diff(np.where(present, distance, 1e9), axis=1) >= -1e-4).all()  # nearest first, absent ones last
    assert (neighbours[~present] == 0).all()


def test_a_clearance_row_keeps_the_scored_actions_within_range():
    row = clearance_row({"IDLE": 3.5, "FASTER": -np.inf, "SLOWER": 80.0, "LANE_LEFT": -25.0})
    assert row[ACTION_INDEX["IDLE"]] == 3.5 and row[ACTION_INDEX["SLOWER"]] == CLEARANCE_RANGE[1]
    assert row[ACTION_INDEX["LANE_LEFT"]] == CLEARANCE_RANGE[0]
    assert np.isnan(row[[ACTION_INDEX["FASTER"], ACTION_INDEX["LANE_RIGHT"]]]).all()  # infeasible, not scored


@pytest.mark.parametrize("name", ["merge", "highway", "intersection", "roundabout"])
def test_the_expert_decides_by_the_clearances_it_records(name, merge_episode, highway_episode):
    episode = {"merge": merge_episode, "highway": highway_episode}.get(name) or record_episode(name, 0, 0)
    arrays = episode["arrays"]
    clearances, actions = arrays["clearances"], arrays["actions"]
    assert clearances.shape == (len(actions), len(ACTIONS)) and clearances.dtype == np.float32
    scored = np.isfinite(clearances)
    assert scored[:, ACTION_INDEX["IDLE"]].all()  # keeping on is always possible
    if name == "intersection":  # no lanes to change to: those actions are never scored
        assert not scored[:, [ACTION_INDEX["LANE_LEFT"], ACTION_INDEX["LANE_RIGHT"]]].any()
    low, high = CLEARANCE_RANGE
    assert ((clearances[scored] >= low) & (clearances[scored] <= high)).all()
    # the expert's own rule: it speeds up only with speed_up_margin of room
    faster = actions == ACTION_INDEX["FASTER"]
    assert (clearances[faster, ACTION_INDEX["FASTER"]] >= ExpertConfig().speed_up_margin).all()
    assert faster.any() or name != "roundabout"  # this roundabout episode speeds up twice: the check above bites


def test_shards_without_clearances_load_with_none_scored(tmp_path, shard_bytes):
    npz, texts = shard_bytes
    with np.load(io.BytesIO(npz)) as data:
        arrays = {key: data[key] for key in data.files if key != "clearances"}
    path = tmp_path / "intersection-0000.npz"
    path.with_suffix(".json").write_bytes(texts)
    np.savez_compressed(path, **arrays)
    loaded, _, _ = load_shard(path)
    assert loaded["clearances"].shape == (len(arrays["actions"]), len(ACTIONS))
    assert np.isnan(loaded["clearances"]).all()


# -- DAgger: a learned policy drives, the expert labels ---------------------------------------------------------------
def _slower_driver():
    from domains.driving.policies import ConstantPolicy

    return ConstantPolicy("SLOWER")


def test_a_driver_with_beta_one_changes_nothing(merge_episode):
    again = record_episode("merge", seed=0, episode=0, driver=_slower_driver(), beta=1.0)
    for key in ARRAYS:
        np.testing.assert_array_equal(again["arrays"][key], merge_episode["arrays"][key], err_msg=key)


def test_with_beta_zero_the_driver_drives_and_the_expert_still_labels(highway_episode):
    dagger = record_episode("highway", seed=0, episode=0, driver=_slower_driver(), beta=0.0)
    arrays, expert = dagger["arrays"], highway_episode["arrays"]
    # The same first frame (same seed), then the states a braking car visits: slower than the expert's.
    np.testing.assert_array_equal(arrays["frames"][0], expert["frames"][0])
    assert arrays["speed"].mean() < expert["speed"].mean() - 1.0 and arrays["speed"][-1] == pytest.approx(20, abs=0.1)
    # Labels are the expert's decisions in those states, not the driver's SLOWER everywhere.
    assert (arrays["actions"] != ACTION_INDEX["SLOWER"]).any()
    # A waypoint is kept only while the expert's own actions were taken: never once a SLOWER it did not pick ran.
    took_other = arrays["actions"] != ACTION_INDEX["SLOWER"]
    assert not arrays["waypoint_mask"][took_other, 0].any()


def test_an_intersection_does_not_change_the_next_scenario_in_the_same_process(merge_episode):
    # intersection-v0 sets IDMVehicle class attributes at reset; they must not leak into other scenarios' episodes
    record_episode("intersection", seed=0, episode=0)
    again = record_episode("merge", seed=0, episode=0)
    for key in ARRAYS:
        np.testing.assert_array_equal(again["arrays"][key], merge_episode["arrays"][key], err_msg=key)


def test_a_plan_refuses_beta_without_a_driver():
    with pytest.raises(ValueError, match="beta"):
        CollectPlan(("merge",), episodes=1, seed=0, beta=0.5)


def test_a_plan_collects_more_episodes_of_the_scenarios_it_names(tmp_path, monkeypatch):
    from domains.driving import collect as collect_module

    written = {}  # shard path -> the episodes recorded into it
    monkeypatch.setattr(collect_module, "record_episode", lambda scenario, seed, episode, *_: episode)
    monkeypatch.setattr(collect_module, "_write_shard", lambda out, s, i, rows: written.update({f"{s}-{i}": rows}))
    plan = CollectPlan(("merge", "highway"), episodes=2, seed=0, shard_episodes=2, scenario_episodes=(("merge", 5),))
    assert (plan.episodes_of("merge"), plan.episodes_of("highway")) == (5, 2)
    paths = collect(plan, tmp_path, progress=False)
    assert [p.name for p in paths] == ["merge-0000.npz", "merge-0001.npz", "merge-0002.npz", "highway-0000.npz"]
    assert written == {"merge-0": [0, 1], "merge-1": [2, 3], "merge-2": [4], "highway-0": [0, 1]}
    assert "scenario_episodes" not in repr(plan)  # plans without any print as before (stage fingerprints)


def test_a_plan_without_more_episodes_writes_the_manifest_it_always_did(tmp_path, monkeypatch):
    # Run directories collected before plans had scenario_episodes must resume without "another collection".
    import json

    from domains.driving import collect as collect_module

    monkeypatch.setattr(collect_module, "_collect_shard", lambda task: None)
    collect(CollectPlan(("merge",), episodes=1, seed=0), tmp_path / "plain", progress=False)
    assert "scenario_episodes" not in json.loads((tmp_path / "plain" / "manifest.json").read_text())
    collect(CollectPlan(("merge",), episodes=1, seed=0, scenario_episodes=(("merge", 3),)), tmp_path / "more", False)
    assert json.loads((tmp_path / "more" / "manifest.json").read_text())["scenario_episodes"] == [["merge", 3]]
    with pytest.raises(ValueError, match="another collection"):
        collect(CollectPlan(("merge",), episodes=1, seed=0), tmp_path / "more", progress=False)


@pytest.mark.parametrize("more", [(("highway", 3),), (("merge", 0),)])
def test_a_plan_refuses_more_episodes_of_another_scenario_or_none(more):
    with pytest.raises(ValueError, match="scenario_episodes"):
        CollectPlan(("merge",), episodes=1, seed=0, scenario_episodes=more)
