"""Distilled image sets on disk: ``distill data distill METHOD --ipc K --out DIR`` writes ``DIR/images.safetensors``
(images, labels and soft labels when the method makes them) and ``DIR/distilled.json`` (method, settings, seed, the
sha256 of the source training set and of the images file, and the test accuracy of a ConvNet trained on the set),
which :func:`load_distilled` reads back after checking the file is the one recorded."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import torch

from suite.condense.methods import CondenseConfig, condense
from suite.condense.train import ImageSet, TrainConfig, accuracy, train_net
from suite.errors import ConfigError

DATASETS = ("digits",)
IMAGES, RECORD = "images.safetensors", "distilled.json"


def tensor_checksum(*tensors: torch.Tensor) -> str:
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(t.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def file_checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_dataset(name: str) -> tuple[ImageSet, ImageSet]:
    if name != "digits":
        raise ConfigError(f"dataset: choose from {', '.join(DATASETS)}, got '{name}'")
    from suite.condense.data import load_digits_split

    return load_digits_split()


def distill_to_folder(method: str, dataset: str, ipc: int, seed: int, out: str | Path, **settings: Any) -> dict:
    """Distil ``dataset``'s training set, score the result on its test set, write both files; returns the record."""
    from safetensors.torch import save_file

    from suite.condense.nets import build_net

    train, test = load_dataset(dataset)
    config = CondenseConfig(**settings)
    start = time.perf_counter()
    distilled = condense(method, train, ipc, seed, config)
    seconds = time.perf_counter() - start
    torch.manual_seed(seed)
    channels, size = distilled.images.shape[1], distilled.images.shape[-1]
    net = train_net(build_net("convnet", channels, size, train.classes), distilled, TrainConfig(), seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {"images": distilled.images.contiguous(), "labels": distilled.labels}
    if distilled.soft_labels is not None:
        tensors["soft_labels"] = distilled.soft_labels.contiguous()
    save_file(tensors, str(out / IMAGES))
    record = {"method": method, "dataset": dataset, "ipc": ipc, "seed": seed,
              "settings": dataclasses.asdict(config), "source_sha256": tensor_checksum(train.images, train.labels),
              "images_sha256": file_checksum(out / IMAGES), "seconds": round(seconds, 2),
              "test_accuracy_convnet": accuracy(net, test)}  # fmt: skip
    (out / RECORD).write_text(json.dumps(record, indent=1) + "\n")
    score = record["test_accuracy_convnet"]
    print(f"{method}: {len(distilled)} images ({ipc} per class) in {seconds:.1f} s; a ConvNet trained on them "
          f"scores {score:.3f} on the {dataset} test set; {out / IMAGES}, {out / RECORD}")  # fmt: skip
    return record


def load_distilled(folder: str | Path) -> tuple[ImageSet, dict]:
    """The set and its record; a images file that is not the recorded one is a clear error."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / RECORD).is_file():
        raise ConfigError(f"{folder}: no {RECORD}; write one with `distill data distill METHOD --out {folder}`")
    record = json.loads((folder / RECORD).read_text())
    if file_checksum(folder / IMAGES) != record["images_sha256"]:
        raise ConfigError(f"{folder / IMAGES}: its sha256 differs from the one {RECORD} records (changed or damaged)")
    tensors = load_file(str(folder / IMAGES))
    return ImageSet(tensors["images"], tensors["labels"], tensors.get("soft_labels")), record
