"""Vision students and the EfficientNet-Lite0 weight remap onto timm."""

from __future__ import annotations

import pytest
import torch
from efficientnet_lite_pytorch import EfficientNet

from suite import hub
from suite.errors import ModelNotFoundError
from suite.students import build_student
from suite.students.text import count_parameters
from suite.students.vision import TinyConvNet


@pytest.fixture(scope="module")
def source_weights():
    return torch.load(hub.resolve_model_path("efficientnet-lite0"), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def timm_lite0():
    return hub.load_efficientnet_lite0().eval()


def test_tiny_convnet_output_contract():
    model = TinyConvNet(num_classes=5, in_ch=1, width=8).eval()
    out = model(torch.randn(2, 1, 40, 56))
    assert out["logits"].shape == (2, 5) and out["features"].shape == (2, 32)
    torch.testing.assert_close(out["logits"], model.head(out["features"]))
    assert count_parameters(TinyConvNet(num_classes=10)) < 100_000


def test_remap_fills_every_timm_key_with_equal_shapes(source_weights, timm_lite0):
    remapped = hub.remap_efficientnet_lite_state_dict(source_weights, [len(stage) for stage in timm_lite0.blocks])
    expected = timm_lite0.state_dict()
    assert remapped.keys() == expected.keys()
    assert all(remapped[k].shape == expected[k].shape for k in expected)
    assert len(remapped) == len(source_weights)  # one-to-one: no source tensor dropped or duplicated


def test_remapped_timm_model_matches_the_original_logits(source_weights, timm_lite0):
    original = EfficientNet.from_name("efficientnet-lite0")
    original.load_state_dict(source_weights)
    original.eval()
    images = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, actual = original(images), timm_lite0(images)
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)


def test_new_head_keeps_pretrained_backbone(timm_lite0):
    torch.manual_seed(0)
    student = build_student("efficientnet-lite0", num_classes=7).eval()
    assert student.model.classifier.weight.shape == (7, 1280)
    torch.testing.assert_close(student.model.conv_head.weight, timm_lite0.conv_head.weight)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = student(images)
        expected_features = timm_lite0.forward_head(timm_lite0.forward_features(images), pre_logits=True)
    assert out["logits"].shape == (2, 7)
    torch.testing.assert_close(out["features"], expected_features)


def test_unknown_or_missing_source_weights_are_clear_errors(source_weights, monkeypatch):
    depths = [1, 2, 2, 3, 3, 4, 1]
    with pytest.raises(ModelNotFoundError, match="_se_reduce"):
        hub.remap_efficientnet_lite_state_dict({"_blocks.3._se_reduce.weight": torch.zeros(1)}, depths)
    truncated = {k: v for k, v in source_weights.items() if not k.startswith("_blocks.15.")}
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: truncated)
    with pytest.raises(ModelNotFoundError, match="unfilled.*blocks.6.0"):
        hub.load_efficientnet_lite0()
