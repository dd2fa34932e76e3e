"""The driving app: served and driven through gradio_client, its helpers, and its screenshot.

The run directory is built here from an untrained tiny planner exported with the pipeline's own spec, and a
three-entry rationale bank of random unit vectors; nothing is trained and no real run is read.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from gradio_client import Client
from PIL import Image

from apps.driving import (
    DRIVERS,
    MAX_SEED,
    STUDENT,
    UPSCALE,
    WAYPOINT_COLOUR,
    InputError,
    RationaleBank,
    Student,
    build_app,
    check_request,
    drive,
    waypoint_pixels,
)
from apps.screenshot import WINDOW, screenshot
from domains.driving import scenarios as sim
from suite.errors import SuiteError
from suite.export import export_student
from suite.students.planner import PixelPlanner, planner_export_spec

BANK = ["Speed up: our lane is clear ahead.", "Slow down: the car ahead is too close.", "Keep speed and lane."]
STEPS = 3


@pytest.fixture(scope="module")
def driving_run(tmp_path_factory):
    """``<tmp>/export/tiny-all`` (an untrained 2-frame planner) and ``<tmp>/rationale_bank.json``."""
    run = tmp_path_factory.mktemp("driving-run")
    torch.manual_seed(0)
    planner = PixelPlanner(backbone="tiny", width=4, hidden=8, pretrained=False).eval()
    images, speed = torch.rand(6, 6, sim.FRAME_SIZE, sim.FRAME_SIZE), 30 * torch.rand(6, 1)

    def feeds(rows: slice) -> dict[str, torch.Tensor]:
        return {"pixel_values": images[rows], "ego_speed": speed[rows]}

    heldout = [feeds(slice(2, 5)), feeds(slice(5, 6))]
    spec = planner_export_spec(2, (sim.FRAME_SIZE, sim.FRAME_SIZE), list(sim.ACTIONS))
    export_student(planner, spec, feeds(slice(0, 2)), heldout, run / "export" / STUDENT)
    vectors = np.random.default_rng(0).normal(size=(len(BANK), 384))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    bank = {"encoder": "minilm-l6", "texts": BANK, "embeddings": vectors.tolist()}
    (run / "rationale_bank.json").write_text(json.dumps(bank))
    return run


@pytest.fixture(scope="module")
def client(driving_run, tmp_path_factory):
    from apps.screenshot import served

    with served(build_app(driving_run)) as url:
        yield Client(url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


def drive_via_api(client: Client, scenario: str, seed: int, driver: str, steps: int = STEPS) -> list[tuple]:
    """Every update the page receives for one Drive press, in order."""
    job = client.submit(scenario, seed, driver, steps, api_name="/drive")
    job.result(timeout=120)
    return job.outputs()


def magenta_pixels(path: str) -> int:
    with Image.open(path) as image:
        assert image.size == (sim.FRAME_SIZE * UPSCALE, sim.FRAME_SIZE * UPSCALE)
        pixels = np.asarray(image.convert("RGB"))
    return int((pixels == WAYPOINT_COLOUR).all(-1).sum())


def test_the_student_drive_streams_each_decision(client, driving_run):
    updates = drive_via_api(client, "highway", 7, DRIVERS[0])
    # The same episode through the library, without gradio: the page must show exactly these decisions.
    student, bank = Student(driving_run / "export" / STUDENT), RationaleBank.load(driving_run / "rationale_bank.json")
    expected = list(drive(student, bank, "highway", 7, DRIVERS[0], max_steps=STEPS))
    assert len(updates) == len(expected) == STEPS
    for number, (update, step) in enumerate(zip(updates, expected, strict=True), start=1):
        image, action, waypoints, rationale, latency, summary = update
        assert magenta_pixels(image) > 0, "the predicted waypoints are not drawn"
        assert action == step.action and action in sim.ACTIONS
        assert waypoints.startswith("1 s: ") and waypoints.count(" m ahead") == 3
        assert rationale == step.rationale and rationale.split("\n")[0] in BANK
        assert f"nearest of {len(BANK)} teacher rationales, cosine " in rationale
        assert re.fullmatch(r"\d+\.\d\d ms", latency)
        assert summary.startswith(f"Decision {number} of at most {STEPS} · ") and "m/s" in summary


def test_the_expert_drive_shows_its_own_rationale(client):
    updates = drive_via_api(client, "intersection", 3, DRIVERS[1])
    assert 1 <= len(updates) <= STEPS
    for image, action, _, rationale, latency, _ in updates:
        assert magenta_pixels(image) == 0, "the expert predicts no waypoints"
        assert action in sim.SCENARIOS["intersection"].actions
        assert [line.split(":")[0] for line in rationale.splitlines()] == ["Perception", "Prediction", "Planning"]
        assert latency == "—"


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (("parking", 0, DRIVERS[0], 2), "Value: parking is not in the list of choices"),
        (("highway", MAX_SEED + 1, DRIVERS[0], 2), f"Value {MAX_SEED + 1} is greater than maximum value {MAX_SEED}"),
        (("highway", -1, DRIVERS[0], 2), "Value -1 is less than minimum value 0"),
        (("highway", 0, "a human", 2), "'a human' (type: <class 'str'>) is not in the list of choices"),
        (("highway", 0, DRIVERS[0], 2.5), "decisions must be a whole number from 1 to 40, got 2.5"),  # the app's own
    ],
)
def test_bad_inputs_are_refused_by_the_page(client, inputs, message):
    with pytest.raises(Exception, match=re.escape(message)):
        client.predict(*inputs, api_name="/drive")


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (("parking", 0, DRIVERS[0], 2), "unknown scenario 'parking'; choose one of highway, merge"),
        (("highway", 0, "a human", 2), "unknown driver 'a human'"),
        (("highway", MAX_SEED + 1, DRIVERS[0], 2), "seed must be from 0 to 10,000, got 10,001"),
        (("highway", 2.5, DRIVERS[0], 2), "seed must be a whole number from 0 to 10,000, got 2.5"),
        (("highway", True, DRIVERS[0], 2), "seed must be a whole number"),
        (("highway", 0, DRIVERS[0], 41), "decisions must be from 1 to 40, got 41"),
        (("highway", 0, DRIVERS[0], 0), "decisions must be from 1 to 40, got 0"),
    ],
)
def test_check_request_names_the_bad_input(inputs, message):
    with pytest.raises(InputError, match=re.escape(message)):
        check_request(*inputs)


def test_check_request_accepts_the_bounds():
    assert check_request("roundabout", 10_000.0, DRIVERS[1], 40) == ("roundabout", 10_000, DRIVERS[1], 40)
    assert check_request("merge", 0, DRIVERS[0], 1) == ("merge", 0, DRIVERS[0], 1)


def test_the_nearest_rationale_is_the_highest_cosine():
    embeddings = np.eye(3, 4) * [[2.0], [0.5], [1.0]]  # the lengths must not matter
    bank = RationaleBank(BANK, embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True))
    text, cosine = bank.nearest(np.array([0.1, 3.0, 0.0, 0.0]))
    assert text == BANK[1] and cosine == pytest.approx(3.0 / np.hypot(0.1, 3.0))


@pytest.mark.parametrize("camera", sorted(sim.CAMERAS))
@pytest.mark.parametrize(("scenario", "direction"), [("highway", (1.0, 0.0)), ("intersection", (0.0, -1.0))])
def test_waypoints_land_ahead_of_the_ego_car(scenario, direction, camera):
    # highway's ego heads east (+x in pixels), intersection's north (up: -y); 1 m forward is `px_per_m` pixels.
    env = sim.make_env(scenario, camera)
    try:
        sim.reset(env, 0)
        pixels = waypoint_pixels(env, np.array([[0.0, 0.0], [10.0, 0.0]]))
    finally:
        env.close()
    ego, origin, ahead = pixels
    np.testing.assert_allclose(ego, origin, atol=1e-9)
    cam = sim.camera(camera)
    view = cam.views[scenario]
    np.testing.assert_allclose(ahead - origin, 10.0 * view.px_per_m * np.array(direction), atol=1e-6)
    np.testing.assert_allclose(ego, np.array(view.ego_at) * [cam.width, cam.height])


def test_missing_runs_raise_a_clear_error(tmp_path, monkeypatch):
    from apps import driving

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(driving, "RELEASED", tmp_path / "models" / "driving")
    message = (f"no exported driving planners in runs/driving/full/export or runs/driving/quick/export or "
               f"{tmp_path}/models/driving/export; run `distill")  # fmt: skip
    with pytest.raises(SuiteError, match=re.escape(message)):
        build_app()
    (tmp_path / "run" / "export").mkdir(parents=True)
    with pytest.raises(SuiteError, match=re.escape(f"{tmp_path / 'run' / 'export' / STUDENT}: no exported planner")):
        build_app(tmp_path / "run")


def test_with_no_run_the_released_planner_drives(driving_run, tmp_path, monkeypatch):
    import shutil

    from apps import driving

    monkeypatch.chdir(tmp_path)
    released = tmp_path / "models" / "driving"
    shutil.copytree(driving_run, released)  # what domains/driving/release.py lays out: export/ + rationale_bank.json
    monkeypatch.setattr(driving, "RELEASED", released)
    assert driving.resolve_run_dir(None) == released
    app = build_app()
    app.close()


def test_screenshot_shows_a_rendered_page(driving_run, tmp_path):
    # Needs Debian's chromium (make installs it); a missing browser fails here with the install command.
    path = screenshot(build_app(driving_run), tmp_path / "shots" / "app.png")
    with Image.open(path) as image:
        assert image.size == WINDOW
        pixels = np.asarray(image.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50, "the screenshot is blank or nearly uniform"
    assert (pixels == WAYPOINT_COLOUR).all(-1).sum() > 0, "the start-up frame with its waypoints is not on the page"
