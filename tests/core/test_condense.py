"""Dataset distillation on a tiny seeded problem: every method returns a set of the promised shape, and each
optimizing method trains a network to a higher test accuracy than the random real images it started from (same
seed, same budget); plus the pieces' identities (gradient distance, Siamese augmentation, soft cross-entropy)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from suite.condense import CondenseConfig, ImageSet, TrainConfig, accuracy, condense, train_net
from suite.condense.augment import OPS, DSAConfig, augment, siamese
from suite.condense.methods import gradient_distance
from suite.condense.nets import NETS, build_net
from suite.condense.train import soft_cross_entropy
from suite.errors import ConfigError


@pytest.fixture(scope="module")
def digits():
    from suite.condense.data import load_digits_split

    train, test = load_digits_split()
    return train, test


def score(data: ImageSet, test: ImageSet, seeds=(0, 1)) -> float:
    """Mean test accuracy of fresh ConvNets trained on ``data`` (a short version of the benchmark's recipe)."""
    total = 0.0
    for seed in seeds:
        torch.manual_seed(seed)
        total += accuracy(train_net(build_net("convnet", 1, 8, 10), data, TrainConfig(epochs=60), seed), test)
    return total / len(seeds)


FAST = CondenseConfig(iterations=40, progress=False, experts=2, expert_epochs=4, max_start_epoch=2, teacher_epochs=8)


def test_digits_are_standardized_and_stratified(digits):
    train, test = digits
    assert train.images.shape[1:] == (1, 8, 8) and len(train) + len(test) == 1797
    assert abs(float(train.images.mean())) < 1e-4 and abs(float(train.images.std()) - 1) < 1e-3
    assert torch.bincount(test.labels).min() >= 50  # every digit is in the test set


@pytest.mark.parametrize("method", ["dc", "dsa", "dm", "bilevel", "mtt"])
def test_each_matching_method_beats_the_random_images_it_starts_from(digits, method):
    train, test = digits
    random = condense("random", train, 1, seed=0, config=FAST)
    distilled = condense(method, train, 1, seed=0, config=FAST)
    assert distilled.images.shape == (10, 1, 8, 8) and distilled.labels.tolist() == list(range(10))
    assert not torch.equal(distilled.images, random.images)  # the same start (init=real, same seed), then moved
    assert score(distilled, test) > score(random, test) + 0.02


def test_herding_picks_real_images_that_beat_random_ones(digits):
    train, test = digits
    herded = condense("herding", train, 1, seed=0, config=FAST)
    pool = {tuple(x.flatten().tolist()) for x in train.images}
    assert all(tuple(x.flatten().tolist()) in pool for x in herded.images)  # real images, not synthetic ones
    assert score(herded, test) > score(condense("random", train, 1, seed=0, config=FAST), test)


def test_sre2l_recovers_from_noise_images_its_teacher_assigns_to_their_class_and_relabels_them(digits):
    from suite.condense.methods import feature_net, recover, soft_labels

    train, test = digits
    config = CondenseConfig(iterations=150, progress=False, teacher_epochs=8)
    teacher = feature_net(train, config, seed=0, net="convnet-bn")
    recovered = recover(teacher, 2, 10, (1, 8), seed=0, config=config)
    with torch.no_grad():
        assert (teacher.eval()(recovered.images).argmax(-1) == recovered.labels).float().mean() >= 0.9
    soft = soft_labels(teacher, recovered.images, temperature=4.0)
    assert torch.allclose(soft.sum(-1), torch.ones(20)) and float(soft.max(-1).values.mean()) < 1.0
    full = condense("sre2l", train, 2, seed=0, config=config)
    assert full.soft_labels is not None and full.soft_labels.shape == (20, 10)
    assert score(full, test) > 0.3  # well above chance (0.1) from pure noise and a teacher


def test_learned_soft_labels_move_and_stay_distributions(digits):
    train, _ = digits
    config = CondenseConfig(iterations=20, progress=False, learn_labels=True, inner_steps=5)
    out = condense("bilevel", train, 1, seed=0, config=config)
    assert out.soft_labels is not None and torch.allclose(out.soft_labels.sum(-1), torch.ones(10), atol=1e-5)
    start = F.one_hot(out.labels, 10).float().mul(5).softmax(-1)
    assert not torch.allclose(out.soft_labels, start)


def test_gradient_distance_is_zero_for_parallel_gradients_and_ignores_biases():
    weight = torch.randn(4, 3, 3, 3)
    assert float(gradient_distance([weight, torch.randn(4)], [2 * weight, torch.randn(4)])) == pytest.approx(
        0, abs=1e-5
    )
    assert float(gradient_distance([weight], [-weight])) == pytest.approx(8.0, abs=1e-4)  # 4 rows, 1 - cos = 2


def test_siamese_augmentation_gives_both_batches_the_same_transform_and_gradients_flow():
    x = torch.randn(3, 1, 8, 8, requires_grad=True)
    for op in OPS:
        config = DSAConfig(ops=(op,))
        g1, g2 = siamese(7)
        a, b = augment(x, g1, config), augment(x.detach().clone(), g2, config)
        assert torch.allclose(a, b), op  # same seed, same transform
        a.sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all(), op
        x.grad = None


def test_soft_cross_entropy_equals_cross_entropy_on_one_hot_targets():
    logits, labels = torch.randn(5, 10), torch.randint(10, (5,))
    assert torch.allclose(soft_cross_entropy(logits, F.one_hot(labels, 10).float()), F.cross_entropy(logits, labels))


def test_every_network_maps_images_to_logits_and_embeddings():
    x = torch.randn(4, 1, 8, 8)
    for name in NETS:
        net = build_net(name, 1, 8, 10)
        assert net(x).shape == (4, 10) and net.embed(x).shape[0] == 4


def test_bad_settings_are_config_errors(digits):
    train, _ = digits
    with pytest.raises(ConfigError, match="method"):
        condense("nope", train, 1, 0, FAST)
    with pytest.raises(ConfigError, match="ipc"):
        condense("dc", train, 1000, 0, FAST)
    with pytest.raises(ConfigError, match="init"):
        CondenseConfig(init="zeros")
    with pytest.raises(ConfigError, match="net"):
        build_net("vit", 1, 8, 10)


def test_the_cli_writes_a_distilled_set_with_provenance_that_loads_back_and_refuses_a_changed_file(tmp_path, capsys):
    from suite.cli import main
    from suite.condense.files import load_distilled

    out = tmp_path / "dm1"
    assert main(["data", "distill", "dm", "--ipc", "1", "--iterations", "3", "--out", str(out)]) == 0
    assert "a ConvNet trained on them scores" in capsys.readouterr().out
    data, record = load_distilled(out)
    assert data.images.shape == (10, 1, 8, 8) and record["method"] == "dm" and record["settings"]["iterations"] == 3
    assert len(record["source_sha256"]) == 64 and 0.0 <= record["test_accuracy_convnet"] <= 1.0
    (out / "images.safetensors").write_bytes((out / "images.safetensors").read_bytes()[:-1] + b"\0")
    with pytest.raises(ConfigError, match="sha256 differs"):
        load_distilled(out)
    with pytest.raises(ConfigError, match="no distilled.json"):
        load_distilled(tmp_path)


def test_sre2l_relabels_through_the_teacher_output_store_once(digits, tmp_path):
    from suite.condense.methods import ImageTeacher, feature_net, soft_labels, stored_soft_labels
    from suite.teachers.store import TeacherOutputStore

    train, _ = digits
    teacher = feature_net(train, CondenseConfig(teacher_epochs=1, progress=False), seed=0, net="convnet-bn")
    images = train.images[:12]
    stored = stored_soft_labels(teacher, images, 4.0, str(tmp_path / "store"), progress=False)
    assert torch.allclose(stored, soft_labels(teacher, images, 4.0), atol=1e-6)
    store = TeacherOutputStore(tmp_path / "store")
    assert len(store) == 12

    class Refusing(ImageTeacher):  # the same weights, so the same teacher_id: every answer must come from the store
        def answer(self, inputs):
            raise AssertionError("the store should have answered")

    again = store.run(Refusing(teacher), list(images), progress=False)
    assert torch.allclose((torch.stack([o.logits for o in again]) / 4.0).softmax(-1), stored, atol=1e-6)
    assert len(store) == 12
