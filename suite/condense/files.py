"""Distilled sets on disk.

- Images: ``distill data distill METHOD --ipc K --out DIR`` writes ``DIR/images.safetensors`` (images, labels and
  soft labels when the method makes them) and ``DIR/distilled.json`` (method, settings, seed, the sha256 of the
  source training set and of the images file, and the test accuracy of a ConvNet trained on the set), which
  :func:`load_distilled` reads back after checking the file is the one recorded.
- Text: ``distill data distill METHOD --table FILE --column C --label-column L --ipc K --out DIR`` writes
  ``DIR/embeddings.safetensors`` (synthetic sentence embeddings and their labels) and the same kind of record, read
  back by :func:`load_distilled_embeddings`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import torch

from suite.checksum import sha256_file
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
              "images_sha256": sha256_file(out / IMAGES), "seconds": round(seconds, 2),
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
    if record.get("kind") == "text-embeddings":
        raise ConfigError(f"{folder}: holds distilled text embeddings, not images (use load_distilled_embeddings)")
    if sha256_file(folder / IMAGES) != record["images_sha256"]:
        raise ConfigError(f"{folder / IMAGES}: its sha256 differs from the one {RECORD} records (changed or damaged)")
    tensors = load_file(str(folder / IMAGES))
    return ImageSet(tensors["images"], tensors["labels"], tensors.get("soft_labels")), record


# -- text: a user's labelled table, distilled in sentence-embedding space ----------------------------------------

EMBEDDINGS = "embeddings.safetensors"


def distill_table_to_folder(method: str, table: str | Path, column: str, label_column: str, ipc: int, seed: int,
                            out: str | Path, check_fraction: float = 0.2, **settings: Any) -> dict:  # fmt: skip
    """Distil a labelled table's texts (``column``, classes from ``label_column``) into ``ipc`` sentence
    embeddings per class (:func:`suite.condense.text.distill_embeddings`: ``random``, ``dm`` or ``gm``) and write
    ``DIR/embeddings.safetensors`` + ``DIR/distilled.json``. A hashed ``check_fraction`` of the rows is held out
    and never distilled: the record scores a head trained on the distilled set on them, next to a head trained on
    all the other rows and the majority class, so the set's worth is stated where it is written."""
    from safetensors.torch import save_file

    from suite.condense.text import EmbeddingSet, TextCondenseConfig, distill_embeddings, head_accuracy, train_head
    from suite.data.splits import hash_unit
    from suite.selection import sentence_embeddings
    from suite.selection.files import column_texts
    from suite.selection.record import texts_checksum

    table = Path(table)
    rows, texts = column_texts(table, column)
    _, labels_text = column_texts(table, label_column)
    classes = sorted(set(labels_text))
    if len(classes) < 2:
        raise ConfigError(f"{table}: column '{label_column}' has {len(classes)} class; distillation needs two or more")
    labels = torch.tensor([classes.index(label) for label in labels_text])
    held = torch.tensor([hash_unit(f"{i}:{t}", "distill-check") < check_fraction for i, t in enumerate(texts)])
    vectors = torch.as_tensor(sentence_embeddings(texts))
    config = TextCondenseConfig(**settings)
    start = time.perf_counter()
    distilled = distill_embeddings(vectors[~held], labels[~held], ipc, method, seed, config)
    seconds = time.perf_counter() - start

    def checked(head_set) -> float:
        head = train_head(head_set, len(classes), seed=seed, hidden=config.hidden)
        return head_accuracy(head, vectors[held], labels[held])

    majority = float((labels[held] == torch.bincount(labels[~held]).argmax()).float().mean()) if held.any() else 0.0
    check = ({"rows": int(held.sum()), "distilled": checked(distilled),
              "all_other_rows": checked(EmbeddingSet(vectors[~held], labels[~held])), "majority_class": majority}
             if held.any() else {"rows": 0})  # fmt: skip
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({"vectors": distilled.vectors.contiguous(), "labels": distilled.labels}, str(out / EMBEDDINGS))
    record = {"kind": "text-embeddings", "method": method, "table": table.name, "column": column,
              "label_column": label_column, "classes": classes, "ipc": ipc, "seed": seed,
              "encoder": "all-MiniLM-L6-v2 (mean-pooled, L2-normalised)", "settings": dataclasses.asdict(config),
              "source_sha256": texts_checksum([f"{t}\t{y}" for t, y in zip(texts, labels_text, strict=True)]),
              "embeddings_sha256": sha256_file(out / EMBEDDINGS), "seconds": round(seconds, 2),
              "held_out_check": check}  # fmt: skip
    (out / RECORD).write_text(json.dumps(record, indent=1) + "\n")
    line = ""
    if check["rows"]:
        line = (
            f"; on {check['rows']} held-out rows a head trained on it scores {check['distilled']:.3f} (all "
            f"other rows {check['all_other_rows']:.3f}, majority class {check['majority_class']:.3f})"
        )
    print(
        f"{method}: {len(distilled)} embeddings ({ipc} per class, {len(classes)} classes) from "
        f"{int((~held).sum())} rows of {table.name} in {seconds:.1f} s{line}; {out / EMBEDDINGS}, {out / RECORD}"
    )
    return record


def load_distilled_embeddings(folder: str | Path):
    """The :class:`~suite.condense.text.EmbeddingSet` and its record, after checking the file is the recorded one."""
    from safetensors.torch import load_file

    from suite.condense.text import EmbeddingSet

    folder = Path(folder)
    if not (folder / RECORD).is_file():
        raise ConfigError(f"{folder}: no {RECORD}; write one with `distill data distill METHOD --table FILE ...`")
    record = json.loads((folder / RECORD).read_text())
    if record.get("kind") != "text-embeddings":
        raise ConfigError(f"{folder}: holds a distilled image set, not text embeddings (use load_distilled)")
    if sha256_file(folder / EMBEDDINGS) != record["embeddings_sha256"]:
        raise ConfigError(f"{folder / EMBEDDINGS}: its sha256 differs from the one {RECORD} records")
    tensors = load_file(str(folder / EMBEDDINGS))
    return EmbeddingSet(tensors["vectors"], tensors["labels"]), record
