"""The driving pack's export path: a pixel planner -> ONNX (logits, waypoints, reasoning) that onnxruntime loads and
that matches PyTorch on new frames and batch sizes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from domains.driving import scenarios as sim
from domains.driving.collect import CollectPlan, collect
from domains.driving.data import load
from domains.driving.pipeline import export_planner
from domains.driving.policies import PolicySpec
from domains.driving.recipe import DrivingRecipe, planner_kwargs
from suite.students.planner import PixelPlanner, token_grid

OUTPUTS = ("logits", "waypoints", "reasoning")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions on a busy 2-core machine: threads only contend
    yield
    torch.set_num_threads(threads)


# the first planners' square view at stride 8, and the ego-centred 128x64 view at stride 4 (a 16 x 32 token grid)
@pytest.fixture(scope="module", params=[("square64", 8), ("ego", 4)], ids=["square64", "ego"])
def exported(tmp_path_factory, request):
    camera, stride = request.param
    root = tmp_path_factory.mktemp("driving-export")
    plan = CollectPlan(("intersection",), episodes=1, seed=3, camera=camera)
    grid = token_grid(sim.camera(camera).shape, stride)
    val = load(collect(plan, root / "data", progress=False), camera=camera, grid=grid)
    assert len(val) >= 6  # the export traces rows 0-1 and checks parity on rows 2-4 and 5
    recipe = DrivingRecipe(output_dir=str(root), seeds=[0], variants=["imitation"], extra_backbone="", camera=camera,
                           token_stride=stride)  # fmt: skip
    torch.manual_seed(0)
    # The recipe's own planner size: export_planners records planner_kwargs(recipe) as the way to rebuild it.
    planner = PixelPlanner(**planner_kwargs(recipe, "tiny"), pretrained=False)
    with torch.no_grad():  # non-trivial batch-norm statistics, as after training
        for module in planner.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    exports = {"tiny-imitation": export_planner(recipe, planner, "tiny", val, root / "export" / "tiny-imitation")}
    return exports, planner.eval(), val


def _torch(planner: torch.nn.Module, images: np.ndarray, speed: np.ndarray) -> dict[str, np.ndarray]:
    with torch.no_grad():
        out = planner(torch.from_numpy(images), torch.from_numpy(speed))
    return {name: out[name].numpy() for name in OUTPUTS}


def test_export_writes_the_planner_with_a_passed_parity_check(exported):
    exports, _, val = exported
    assert set(exports) == {"tiny-imitation"}
    folder = exports["tiny-imitation"]
    spec = json.loads((folder / "spec.json").read_text())
    assert [o["name"] for o in spec["outputs"]] == list(OUTPUTS)
    assert spec["inputs"][0]["shape"] == ["batch", 6, *val.images.shape[-2:]]
    assert spec["inputs"][1]["name"] == "ego_speed" and spec["inputs"][1]["shape"] == ["batch", 1]
    assert spec["labels"] == list(sim.ACTIONS)
    parity = spec["parity"]["fp32"]
    assert parity["max_abs_diff"] <= parity["tolerance"] <= 1e-3
    assert spec["torch"]["student"] == "pixel-planner" and not spec["torch"]["kwargs"]["pretrained"]


@pytest.mark.parametrize("batch", [1, 3])
def test_onnxruntime_matches_pytorch_on_new_frames(exported, batch):
    import onnx
    import onnxruntime as ort

    exports, planner, val = exported
    path = exports["tiny-imitation"] / "model.onnx"
    model = onnx.load(str(path))
    assert model.ir_version == json.loads((path.parent / "spec.json").read_text())["ir_version"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # the IR version is accepted
    assert [o.name for o in session.get_outputs()] == list(OUTPUTS)
    rng = np.random.default_rng(batch)
    frames = val.images[-batch:].float().numpy() / 255.0  # real frames the trace did not see
    noise = rng.random((batch, *frames.shape[1:]), dtype=np.float32)
    speed = (30 * rng.random((batch, 1))).astype(np.float32)
    for images in (frames.astype(np.float32), noise):
        expected = _torch(planner, images, speed)
        feeds = {"pixel_values": images, "ego_speed": speed}
        got = dict(zip(OUTPUTS, session.run(list(OUTPUTS), feeds), strict=True))
        for name in OUTPUTS:
            assert got[name].shape == expected[name].shape
            np.testing.assert_allclose(got[name], expected[name], atol=1e-4, rtol=0, err_msg=name)


def test_the_exported_weights_rebuild_the_planner(exported):
    from suite.export import load_torch_student

    exports, planner, val = exported
    rebuilt = load_torch_student(exports["tiny-imitation"])
    images, speed = val.images[:4].float().numpy() / 255.0, val.speed[:4].numpy()
    for name, value in _torch(rebuilt, images, speed).items():
        np.testing.assert_array_equal(value, _torch(planner, images, speed)[name], err_msg=name)


def test_the_exported_planner_names_its_camera(exported):
    from domains.driving.release import planner_camera

    exports, planner, val = exported
    kwargs = json.loads((exports["tiny-imitation"] / "spec.json").read_text())["torch"]["kwargs"]
    camera = planner_camera(kwargs)
    assert sim.camera(camera).shape == tuple(val.images.shape[-2:])
    assert planner.grid == token_grid(sim.camera(camera).shape, kwargs["token_stride"])


@pytest.mark.parametrize("argv", [[], ["runs/driving/full", "--recheck"]], ids=["neither", "both"])
def test_release_wants_a_run_or_recheck_not_both(argv, capsys):
    from domains.driving.release import main

    with pytest.raises(SystemExit):
        main(argv)
    assert "RUN_DIR" in capsys.readouterr().err


def test_the_exported_planner_drives_in_closed_loop_like_its_pytorch_twin(exported):
    from domains.driving.evaluate import closed_loop
    from domains.driving.release import planner_camera

    exports, planner, val = exported
    folder = exports["tiny-imitation"]
    kwargs = json.loads((folder / "spec.json").read_text())["torch"]["kwargs"]
    from safetensors.torch import save_model

    weights = folder.parent / "twin.safetensors"
    save_model(planner, str(weights))
    specs = {"onnx": PolicySpec("onnx", str(folder)),
             "torch": PolicySpec("planner", str(weights), tuple(sorted(kwargs.items())))}  # fmt: skip
    episodes = closed_loop(specs, ("merge",), 2, seed=0, workers=1, progress=False, camera=planner_camera(kwargs))
    assert [r["actions"] for r in episodes["onnx"]["merge"]] == [r["actions"] for r in episodes["torch"]["merge"]]
