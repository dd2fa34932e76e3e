"""Dataset distillation of image sets (survey section 2.2): a few synthetic images per class that train a network
almost as well as the whole set, and the real-sample baselines they must beat.

- ``random``: ``ipc`` real images per class, drawn at random.
- ``herding``: ``ipc`` real images per class whose running mean best tracks the class mean, in the feature space of
  a network trained on the real set (Welling 2009; the DC paper's strongest coreset baseline).
- ``bilevel``: Wang et al. 2018's meta-learning: unroll a few SGD steps of a freshly initialized network on the
  synthetic set, score the result on real images, and differentiate through the steps into the images (and the
  learned step size).
- ``dc``: gradient matching (survey Eq. 13): per class, the network's gradient on the synthetic images should point
  where its gradient on real images points, summed over layers as ``sum_rows (1 - cos(g_syn, g_real))``, along the
  training trajectory of networks trained on the synthetic set.
- ``dsa``: ``dc`` with differentiable Siamese augmentation (the same random transform on both sides).
- ``dm``: distribution matching: the mean embedding of each class's synthetic images should equal that of its real
  images (an MMD with a linear kernel) under randomly initialized networks, with DSA.
- ``mtt``: trajectory matching: from a checkpoint of an expert trained on real data, ``syn_steps`` SGD steps on the
  synthetic set should land where the expert was ``expert_epochs`` later: ``||theta_N - theta*_{t+M}||^2 /
  ||theta*_t - theta*_{t+M}||^2``; the experts' trajectories are trained once per call.
- ``sre2l``: squeeze (train a batch-norm teacher), recover (synthesize images from noise by inverting it: its
  cross-entropy on the target class plus the distance of each batch-norm layer's batch statistics to its running
  ones, survey Eq. 21-22), relabel (the teacher's soft labels, Eq. 23) for the student to learn from.

``bilevel`` and ``mtt`` can also learn soft labels with the images (``learn_labels``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from suite.condense.augment import DSAConfig, augment, siamese
from suite.condense.nets import build_net
from suite.condense.train import ImageSet, TrainConfig, set_loss, train_net
from suite.errors import ConfigError
from suite.progress import progress_bar

METHODS = ("random", "herding", "bilevel", "dc", "dsa", "dm", "mtt", "sre2l")
LR_IMAGES = {"bilevel": 0.01, "dc": 0.1, "dsa": 0.1, "dm": 1.0, "mtt": 10.0, "sre2l": 0.1}  # per-method defaults


@dataclass(frozen=True)
class CondenseConfig:
    """Settings of every method; each reads its own (``lr_images`` 0 means the method's default)."""

    iterations: int = 200  # updates of the synthetic set
    lr_images: float = 0.0
    batch_real: int = 128  # real images per class per update
    init: str = "real"  # real (random real images) or noise
    net: str = "convnet"  # the network the set is distilled with
    learn_labels: bool = False  # bilevel, mtt: learn soft labels with the images
    outer_loop: int = 0  # dc/dsa: synthetic-set updates per network (0: DC's choice for the ipc)
    inner_loop: int = 0  # dc/dsa: network steps on the synthetic set between them (0: DC's choice)
    inner_steps: int = 10  # bilevel: unrolled steps
    experts: int = 5  # mtt: expert trajectories
    expert_epochs: int = 15  # mtt: epochs each expert trains (a checkpoint per epoch)
    expert_lr: float = 0.01  # mtt: the experts' SGD rate, and the learned synthetic rate's start
    match_epochs: int = 2  # mtt: M, how many expert epochs the synthetic steps must cover
    max_start_epoch: int = 10  # mtt: latest expert checkpoint a match starts from
    syn_steps: int = 20  # mtt: N, synthetic SGD steps per match
    teacher_epochs: int = 30  # sre2l: squeeze; herding: the feature network
    # sre2l: weight of the batch-norm statistics term. 1.0, not ImageNet's 0.01: on digits a small probe (10 images
    # per class, one seed) trained better students from images recovered at 1.0 than at 0.01 or 10
    bn_weight: float = 1.0
    temperature: float = 4.0  # sre2l: relabel temperature
    store: str = ""  # sre2l: relabel through the teacher-output store in this folder ("" keeps the labels in memory)
    progress: bool = True

    def __post_init__(self) -> None:
        if self.init not in ("real", "noise"):
            raise ConfigError(f"init: real or noise, got '{self.init}'")
        if self.iterations < 1 or self.batch_real < 1:
            raise ConfigError("iterations and batch_real must be >= 1")
        if self.max_start_epoch + self.match_epochs > self.expert_epochs:
            raise ConfigError("max_start_epoch + match_epochs must be <= expert_epochs")


def _shape(data: ImageSet) -> tuple[int, int, int]:
    """(channels, size, classes) of a square image set."""
    _, channels, height, width = data.images.shape
    if height != width:
        raise ConfigError(f"dataset distillation expects square images, got {height}x{width}")
    return channels, height, data.classes


def _sample_class(data: ImageSet, c: int, n: int, generator: torch.Generator) -> torch.Tensor:
    images = data.of_class(c)
    return images[torch.randperm(len(images), generator=generator)[:n]]


def _per_class_labels(classes: int, ipc: int) -> torch.Tensor:
    return torch.arange(classes).repeat_interleave(ipc)


def _initial(train: ImageSet, ipc: int, config: CondenseConfig, generator: torch.Generator) -> ImageSet:
    """``ipc`` images per class, real ones drawn at random (DC's init) or Gaussian noise, as a leaf to optimize."""
    channels, size, classes = _shape(train)
    if config.init == "real":
        images = torch.cat([_sample_class(train, c, ipc, generator) for c in range(classes)])
    else:
        images = torch.randn(classes * ipc, channels, size, size, generator=generator)
    return ImageSet(images.clone().requires_grad_(True), _per_class_labels(classes, ipc))


def _check_ipc(train: ImageSet, ipc: int) -> None:
    smallest = min(int((train.labels == c).sum()) for c in range(train.classes))
    if not 1 <= ipc <= smallest:
        raise ConfigError(f"ipc: must be in [1, {smallest}] (the smallest class), got {ipc}")


def _lr(method: str, config: CondenseConfig) -> float:
    return config.lr_images or LR_IMAGES[method]


# -- real-sample baselines ---------------------------------------------------------------------------------------


def random_subset(train: ImageSet, ipc: int, seed: int, config: CondenseConfig) -> ImageSet:
    generator = torch.Generator().manual_seed(seed)
    classes = train.classes
    return ImageSet(torch.cat([_sample_class(train, c, ipc, generator) for c in range(classes)]),
                    _per_class_labels(classes, ipc))  # fmt: skip


def feature_net(train: ImageSet, config: CondenseConfig, seed: int, net: str = "convnet") -> nn.Module:
    torch.manual_seed(seed)
    channels, size, classes = _shape(train)
    recipe = TrainConfig(epochs=config.teacher_epochs, batch_size=128)
    return train_net(build_net(net, channels, size, classes), train, recipe, seed)


def herding(train: ImageSet, ipc: int, seed: int, config: CondenseConfig) -> ImageSet:
    embedder = feature_net(train, config, seed)
    chosen = []
    with torch.no_grad():
        for c in range(train.classes):
            features = embedder.embed(train.of_class(c))
            target, total, picked = features.mean(0), torch.zeros_like(features[0]), []
            for k in range(ipc):
                gaps = (target - (total + features) / (k + 1)).norm(dim=1)
                gaps[picked] = math.inf
                best = int(gaps.argmin())
                picked.append(best)
                total += features[best]
            chosen.append(train.of_class(c)[picked])
    return ImageSet(torch.cat(chosen), _per_class_labels(train.classes, ipc))


# -- matching methods ----------------------------------------------------------------------------------------------


def gradient_distance(syn: list[torch.Tensor], real: list[torch.Tensor]) -> torch.Tensor:
    """DC's layer-wise distance: ``sum over output rows of (1 - cos)``; 1-D tensors (biases, norms) are left out."""
    total = syn[0].new_zeros(())
    for gs, gr in zip(syn, real, strict=True):
        if gs.dim() > 1:
            total = total + (1 - F.cosine_similarity(gs.flatten(1), gr.flatten(1), dim=1, eps=1e-6)).sum()
    return total


def _class_gradient_distance(net: nn.Module, params: list[nn.Parameter], real: torch.Tensor, fake: torch.Tensor,
                             c: int) -> torch.Tensor:  # fmt: skip
    """Gradient matching for class ``c``: the real gradient is a constant, the synthetic one keeps its graph."""
    real_loss = F.cross_entropy(net(real), torch.full((len(real),), c))
    fake_loss = F.cross_entropy(net(fake), torch.full((len(fake),), c))
    g_real = [g.detach() for g in torch.autograd.grad(real_loss, params)]
    g_fake = torch.autograd.grad(fake_loss, params, create_graph=True)
    return gradient_distance(list(g_fake), g_real)


def _dc_loops(ipc: int, config: CondenseConfig) -> tuple[int, int]:
    # DC's schedule: one network step per image update at ipc 1; at ipc >= 10 ten updates per network, with
    # network training in between (DC: 50 steps at ipc 10; 10 here keeps 2-core runs short)
    outer = config.outer_loop or (1 if ipc == 1 else 10)
    inner = config.inner_loop or (1 if ipc == 1 else 10)
    return outer, inner


def gradient_matching(train: ImageSet, ipc: int, seed: int, config: CondenseConfig, dsa: bool = False) -> ImageSet:
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    channels, size, classes = _shape(train)
    syn = _initial(train, ipc, config, generator)
    optimizer = torch.optim.SGD([syn.images], lr=_lr("dsa" if dsa else "dc", config), momentum=0.5)
    outer, inner = _dc_loops(ipc, config)
    bar = progress_bar(config.iterations, "dsa" if dsa else "dc", "iteration", config.progress)
    with bar:
        for _ in range(config.iterations):
            net = build_net(config.net, channels, size, classes).train()
            params = list(net.parameters())
            net_optimizer = torch.optim.SGD(params, lr=0.01)
            for step in range(outer):
                loss = syn.images.new_zeros(())
                for c in range(classes):
                    real = _sample_class(train, c, config.batch_real, generator)
                    fake = syn.images[c * ipc : (c + 1) * ipc]
                    if dsa:
                        g_real, g_fake = siamese(int(torch.randint(2**31, (), generator=generator)))
                        real, fake = augment(real, g_real), augment(fake, g_fake)
                    loss = loss + _class_gradient_distance(net, params, real, fake, c)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                if step == outer - 1:
                    break
                _train_steps(net, net_optimizer, syn.detach(), inner, generator, dsa)
            bar.update(1)
    return syn.detach()


def _train_steps(net: nn.Module, optimizer: torch.optim.Optimizer, data: ImageSet, steps: int,
                 generator: torch.Generator, dsa: bool) -> None:  # fmt: skip
    for _ in range(steps):
        index = torch.randperm(len(data), generator=generator)[:256]
        images = augment(data.images[index], generator) if dsa else data.images[index]
        loss = set_loss(net(images), data, index)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def distribution_matching(train: ImageSet, ipc: int, seed: int, config: CondenseConfig) -> ImageSet:
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    channels, size, classes = _shape(train)
    syn = _initial(train, ipc, config, generator)
    optimizer = torch.optim.SGD([syn.images], lr=_lr("dm", config), momentum=0.5)
    bar = progress_bar(config.iterations, "dm", "iteration", config.progress)
    with bar:
        for _ in range(config.iterations):
            net = build_net(config.net, channels, size, classes).train()
            for p in net.parameters():
                p.requires_grad_(False)  # a random embedding, never trained
            loss = syn.images.new_zeros(())
            for c in range(classes):
                real = _sample_class(train, c, config.batch_real, generator)
                fake = syn.images[c * ipc : (c + 1) * ipc]
                g_real, g_fake = siamese(int(torch.randint(2**31, (), generator=generator)))
                gap = net.embed(augment(real, g_real)).mean(0) - net.embed(augment(fake, g_fake)).mean(0)
                loss = loss + (gap**2).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            bar.update(1)
    return syn.detach()


# -- unrolled methods (functional networks) ------------------------------------------------------------------------


class _Functional:
    """A network run with a flat parameter vector, so SGD steps on it stay differentiable."""

    def __init__(self, net: nn.Module):
        if any(True for _ in net.buffers()):
            raise ConfigError("bilevel / mtt unroll networks without buffers: use net=convnet or mlp")
        self.net = net
        self.names = [n for n, _ in net.named_parameters()]
        self.shapes = [p.shape for _, p in net.named_parameters()]

    def flat(self) -> torch.Tensor:
        return torch.cat([p.detach().flatten() for p in self.net.parameters()])

    def __call__(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        pieces = torch.split(theta, [s.numel() for s in self.shapes])
        params = {n: p.view(s) for n, p, s in zip(self.names, pieces, self.shapes, strict=True)}
        return functional_call(self.net, params, (x,))


def _soft(syn: ImageSet, label_logits: torch.Tensor | None) -> ImageSet:
    return syn if label_logits is None else ImageSet(syn.images, syn.labels, label_logits.softmax(-1))


def _label_logits(syn: ImageSet, classes: int, config: CondenseConfig) -> torch.Tensor | None:
    if not config.learn_labels:
        return None
    # start confident in the true class (softmax 0.9+ at 10 classes), free to move
    return (F.one_hot(syn.labels, classes).float() * 5.0).requires_grad_(True)


def _unroll(model: _Functional, theta: torch.Tensor, syn: ImageSet, steps: int, lr: torch.Tensor,
            generator: torch.Generator, batch: int, dsa: bool) -> torch.Tensor:  # fmt: skip
    for _ in range(steps):
        index = torch.randperm(len(syn), generator=generator)[:batch]
        images = augment(syn.images[index], generator) if dsa else syn.images[index]
        loss = set_loss(model(theta, images), syn, index)
        (grad,) = torch.autograd.grad(loss, theta, create_graph=True)
        theta = theta - lr * grad
    return theta


def bilevel(train: ImageSet, ipc: int, seed: int, config: CondenseConfig) -> ImageSet:
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    channels, size, classes = _shape(train)
    syn = _initial(train, ipc, config, generator)
    labels = _label_logits(syn, classes, config)
    log_lr = torch.tensor(math.log(0.02), requires_grad=True)  # Wang et al.'s learned step size, kept positive
    leaves = [syn.images, log_lr] + ([labels] if labels is not None else [])
    optimizer = torch.optim.Adam(leaves, lr=_lr("bilevel", config))
    bar = progress_bar(config.iterations, "bilevel", "iteration", config.progress)
    with bar:
        for _ in range(config.iterations):
            model = _Functional(build_net(config.net, channels, size, classes))
            theta = model.flat().requires_grad_(True)
            theta = _unroll(model, theta, _soft(syn, labels), config.inner_steps, log_lr.exp(), generator,
                            len(syn), dsa=False)  # fmt: skip
            index = torch.randperm(len(train), generator=generator)[: config.batch_real * classes]
            loss = F.cross_entropy(model(theta, train.images[index]), train.labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            bar.update(1)
    return _soft(syn, labels).detach()


def expert_trajectories(train: ImageSet, config: CondenseConfig, seed: int) -> list[list[torch.Tensor]]:
    """``experts`` networks trained on the real set with plain SGD; each trajectory holds the flat parameters at
    every epoch (``expert_epochs + 1`` checkpoints)."""
    channels, size, classes = _shape(train)
    generator = torch.Generator().manual_seed(seed)
    trajectories = []
    for k in range(config.experts):
        torch.manual_seed(seed * 1000 + k)
        net = build_net(config.net, channels, size, classes).train()
        model, optimizer = _Functional(net), torch.optim.SGD(net.parameters(), lr=config.expert_lr)
        trajectory = [model.flat()]
        for _ in range(config.expert_epochs):
            order = torch.randperm(len(train), generator=generator)
            for start in range(0, len(train), 256):
                index = order[start : start + 256]
                loss = F.cross_entropy(net(augment(train.images[index], generator)), train.labels[index])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            trajectory.append(model.flat())
        trajectories.append(trajectory)
    return trajectories


def trajectory_matching(train: ImageSet, ipc: int, seed: int, config: CondenseConfig,
                        trajectories: list[list[torch.Tensor]] | None = None) -> ImageSet:  # fmt: skip
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    channels, size, classes = _shape(train)
    trajectories = trajectories or expert_trajectories(train, config, seed)
    syn = _initial(train, ipc, config, generator)
    labels = _label_logits(syn, classes, config)
    log_lr = torch.tensor(math.log(config.expert_lr), requires_grad=True)
    image_optimizer = torch.optim.SGD([syn.images] + ([labels] if labels is not None else []),
                                      lr=_lr("mtt", config), momentum=0.5)  # fmt: skip
    lr_optimizer = torch.optim.SGD([log_lr], lr=0.01, momentum=0.5)
    model = _Functional(build_net(config.net, channels, size, classes))
    bar = progress_bar(config.iterations, "mtt", "iteration", config.progress)
    with bar:
        for _ in range(config.iterations):
            trajectory = trajectories[int(torch.randint(len(trajectories), (), generator=generator))]
            start = int(torch.randint(config.max_start_epoch + 1, (), generator=generator))
            begin, target = trajectory[start], trajectory[start + config.match_epochs]
            theta = _unroll(model, begin.clone().requires_grad_(True), _soft(syn, labels), config.syn_steps,
                            log_lr.exp(), generator, min(len(syn), 256), dsa=True)  # fmt: skip
            loss = ((theta - target) ** 2).sum() / ((begin - target) ** 2).sum()
            image_optimizer.zero_grad()
            lr_optimizer.zero_grad()
            loss.backward()
            image_optimizer.step()
            lr_optimizer.step()
            bar.update(1)
    return _soft(syn, labels).detach()


# -- SRe2L ---------------------------------------------------------------------------------------------------------


class _BatchNormStatistics:
    """Forward hooks on every BatchNorm2d: the distance of the batch's mean and variance to the running ones."""

    def __init__(self, net: nn.Module):
        self.losses: list[torch.Tensor] = []
        self.handles = [m.register_forward_hook(self._hook) for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
        if not self.handles:
            raise ConfigError("sre2l recovers through batch-norm statistics: the teacher needs BatchNorm2d layers")

    def _hook(self, module: nn.BatchNorm2d, inputs: tuple[torch.Tensor], _: torch.Tensor) -> None:
        x = inputs[0]
        mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
        self.losses.append((mean - module.running_mean).norm() + (var - module.running_var).norm())

    def pop(self) -> torch.Tensor:
        total, self.losses = torch.stack(self.losses).sum(), []
        return total

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def recover(teacher: nn.Module, ipc: int, classes: int, shape: tuple[int, int], seed: int,
            config: CondenseConfig) -> ImageSet:  # fmt: skip
    """SRe2L's recover: images from noise that the frozen teacher assigns to their class and whose batch statistics
    match its running ones (Eq. 21-22)."""
    generator = torch.Generator().manual_seed(seed)
    channels, size = shape
    labels = _per_class_labels(classes, ipc)
    images = torch.randn(classes * ipc, channels, size, size, generator=generator).requires_grad_(True)
    optimizer = torch.optim.Adam([images], lr=_lr("sre2l", config), betas=(0.5, 0.9))
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    statistics = _BatchNormStatistics(teacher)
    bar = progress_bar(config.iterations, "sre2l recover", "iteration", config.progress)
    try:
        with bar:
            for _ in range(config.iterations):
                jittered = augment(images, generator, DSAConfig(ops=("translate",)))  # SRe2L's random crops
                loss = F.cross_entropy(teacher(jittered), labels) + config.bn_weight * statistics.pop()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                bar.update(1)
    finally:
        statistics.remove()
    return ImageSet(images.detach(), labels)


def sre2l(train: ImageSet, ipc: int, seed: int, config: CondenseConfig) -> ImageSet:
    """Squeeze -> recover -> relabel: the teacher's softmax at ``temperature`` on the recovered images, through the
    teacher-output store when ``config.store`` names one (so a student trained later reads the same labels)."""
    channels, size, classes = _shape(train)
    teacher = feature_net(train, config, seed, net="convnet-bn")
    syn = recover(teacher, ipc, classes, (channels, size), seed, config)
    if config.store:
        soft = stored_soft_labels(teacher, syn.images, config.temperature, config.store, config.progress)
    else:
        soft = soft_labels(teacher, syn.images, config.temperature)
    return ImageSet(syn.images, syn.labels, soft)


@torch.no_grad()
def soft_labels(teacher: nn.Module, images: torch.Tensor, temperature: float) -> torch.Tensor:
    return (teacher.eval()(images) / temperature).softmax(-1)


class ImageTeacher:
    """A frozen image classifier as a teacher backend (:class:`suite.teachers.base.Teacher`): one image tensor in,
    its logits out. ``teacher_id`` hashes the weights, so a retrained teacher never reads another's answers."""

    def __init__(self, net: nn.Module):
        from suite.condense.files import tensor_checksum

        self.net = net.eval()
        self.teacher_id = "image-classifier@" + tensor_checksum(*net.state_dict().values())[:16]

    def settings(self) -> dict[str, object]:
        return {}

    @torch.no_grad()
    def answer(self, inputs: list[torch.Tensor]) -> list:
        from suite.teachers.base import TeacherOutput

        logits = self.net(torch.stack(inputs))
        return [TeacherOutput(logits=row.clone()) for row in logits]


def stored_soft_labels(teacher: nn.Module, images: torch.Tensor, temperature: float, store: str,
                       progress: bool = True) -> torch.Tensor:  # fmt: skip
    """SRe2L's relabel through the teacher-output store: each image's logits are asked once and kept."""
    from suite.teachers.store import TeacherOutputStore

    outputs = TeacherOutputStore(store).run(ImageTeacher(teacher), list(images), batch_size=256, progress=progress)
    return (torch.stack([o.logits for o in outputs]) / temperature).softmax(-1)


# -- one entry point -----------------------------------------------------------------------------------------------


def condense(method: str, train: ImageSet, ipc: int, seed: int, config: CondenseConfig | None = None) -> ImageSet:
    """``ipc`` images per class of ``train`` by ``method`` (one of :data:`METHODS`)."""
    config = config or CondenseConfig()
    _check_ipc(train, ipc)
    runs: dict[str, Callable[[], ImageSet]] = {
        "random": lambda: random_subset(train, ipc, seed, config),
        "herding": lambda: herding(train, ipc, seed, config),
        "bilevel": lambda: bilevel(train, ipc, seed, config),
        "dc": lambda: gradient_matching(train, ipc, seed, config),
        "dsa": lambda: gradient_matching(train, ipc, seed, config, dsa=True),
        "dm": lambda: distribution_matching(train, ipc, seed, config),
        "mtt": lambda: trajectory_matching(train, ipc, seed, config),
        "sre2l": lambda: sre2l(train, ipc, seed, config),
    }
    if method not in runs:
        raise ConfigError(f"dataset distillation method: choose from {', '.join(METHODS)}, got '{method}'")
    return runs[method]()
