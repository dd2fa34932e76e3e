"""A content-addressed, crash-safe store of teacher outputs, and the one loop that fills it.

Layout under ``root``::

    index.sqlite                  key -> shard, text, label, meta (JSON), names of the tensor fields
    shard-000001.safetensors      tensors named "<key>.<field>", e.g. "<key>.logits"

Each :meth:`TeacherOutputStore.put_many` writes one shard to a temporary file, fsyncs it, renames it into place with
``os.replace`` and only then indexes its keys in one SQLite transaction. A crash therefore leaves at most an orphan
temporary file or an unindexed shard, never an index entry without its tensors. Reads memory-map one shard at a
time through ``safetensors.safe_open`` and keep a small LRU of open handles, so the store is never loaded whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from suite.errors import TeacherError
from suite.progress import progress_bar
from suite.teachers.base import Teacher, TeacherBatchError, TeacherOutput

_SHARD = re.compile(r"shard-(\d+)\.safetensors")
_SCHEMA = """CREATE TABLE IF NOT EXISTS outputs (
    key TEXT PRIMARY KEY, shard TEXT, text TEXT, label INTEGER, meta TEXT NOT NULL, tensors TEXT NOT NULL)"""


def _canonical(value: Any) -> Any:
    """JSON fallback for tensors (image inputs): keyed by dtype, shape and a hash of the raw bytes."""
    if isinstance(value, torch.Tensor):
        flat = value.detach().cpu().contiguous().reshape(-1)
        digest = hashlib.sha256(flat.view(torch.uint8).numpy().tobytes()).hexdigest()
        return {"tensor": digest, "dtype": str(value.dtype), "shape": list(value.shape)}
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def store_key(teacher_id: str, input: Any, settings: dict[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, no whitespace) of ``{teacher_id, input, settings}``."""
    payload = {"teacher_id": teacher_id, "input": input, "settings": settings}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_canonical)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fsync_dir(path: Path) -> None:
    # The rename itself must reach the disk too; directories cannot be opened this way on Windows.
    if os.name == "posix":
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class TeacherOutputStore:
    """Teacher outputs on disk, keyed by :func:`store_key`. One writer process at a time per ``root``."""

    def __init__(self, root: str | Path, max_open_shards: int = 8):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_open_shards = max_open_shards
        self._pid: int | None = None
        self._db: sqlite3.Connection | None = None
        self._handles: OrderedDict[str, Any] = OrderedDict()

    # -- connections ---------------------------------------------------------------------------------------------

    @property
    def _conn(self) -> sqlite3.Connection:
        # A SQLite connection must not cross a fork (DataLoader workers), so each process opens its own.
        if self._db is None or self._pid != os.getpid():
            self._db = sqlite3.connect(self.root / "index.sqlite", timeout=60.0)
            self._db.execute(_SCHEMA)
            self._db.commit()
            self._pid = os.getpid()
            self._handles = OrderedDict()
        return self._db

    def _shard(self, name: str) -> Any:
        """An open, memory-mapped shard; the least recently used handle is dropped beyond ``max_open_shards``."""
        handle = self._handles.pop(name, None)
        if handle is None:
            handle = safe_open(str(self.root / name), framework="pt")
        self._handles[name] = handle
        while len(self._handles) > self.max_open_shards:
            self._handles.popitem(last=False)
        return handle

    def close(self) -> None:
        self._handles.clear()
        if self._db is not None and self._pid == os.getpid():
            self._db.close()
        self._db = None

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root, "max_open_shards": self.max_open_shards}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root"], state["max_open_shards"])

    # -- reading -------------------------------------------------------------------------------------------------

    def __contains__(self, key: object) -> bool:
        return self._conn.execute("SELECT 1 FROM outputs WHERE key = ?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM outputs").fetchone()[0]

    def keys(self) -> list[str]:
        return [row[0] for row in self._conn.execute("SELECT key FROM outputs ORDER BY rowid")]

    def get(self, key: str) -> TeacherOutput:
        row = self._conn.execute(
            "SELECT shard, text, label, meta, tensors FROM outputs WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            raise KeyError(key)
        shard, text, label, meta, fields = row
        names = json.loads(fields)
        handle = self._shard(shard) if names else None
        tensors = {name: handle.get_tensor(f"{key}.{name}") for name in names}
        return TeacherOutput(text=text, label=label, meta=json.loads(meta), **tensors)

    def _stored(self, keys: Iterable[str]) -> set[str]:
        keys = list(dict.fromkeys(keys))
        found: set[str] = set()
        for start in range(0, len(keys), 500):  # stay under SQLite's limit on bound parameters
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in self._conn.execute(f"SELECT key FROM outputs WHERE key IN ({marks})", chunk))
        return found

    # -- writing -------------------------------------------------------------------------------------------------

    def _reserve_shard(self) -> Path:
        """Claim the next free shard name with an exclusive create, so two writers never clobber one shard."""
        taken = [int(m.group(1)) for p in self.root.iterdir() if (m := _SHARD.fullmatch(p.name))]
        number = max(taken, default=0) + 1
        while True:
            path = self.root / f"shard-{number:06d}.safetensors"
            try:
                with open(path, "x"):
                    return path
            except FileExistsError:
                number += 1

    def _write_shard(self, tensors: dict[str, torch.Tensor]) -> str:
        path = self._reserve_shard()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            save_file(tensors, str(tmp))
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            path.unlink(missing_ok=True)
            raise
        os.replace(tmp, path)
        _fsync_dir(self.root)
        return path.name

    def put_many(self, items: list[tuple[str, TeacherOutput]]) -> None:
        """Write one shard with all tensors of ``items``, then index them in one transaction (last duplicate wins)."""
        latest = dict(items)
        if not latest:
            return
        tensors: dict[str, torch.Tensor] = {}
        rows = []
        for key, output in latest.items():
            fields = output.tensors()
            for name, tensor in fields.items():
                # safetensors refuses views that share storage, so each tensor gets its own contiguous copy.
                tensors[f"{key}.{name}"] = tensor.detach().cpu().contiguous().clone()
            try:
                meta = json.dumps(output.meta, sort_keys=True)
            except TypeError as error:
                raise TeacherError(f"teacher output {key[:12]}: meta is not JSON-serialisable ({error})") from None
            rows.append((key, output.text, output.label, meta, json.dumps(sorted(fields))))
        self._index(self._write_shard(tensors) if tensors else None, rows)

    def _index(self, shard: str | None, rows: list[tuple]) -> None:
        with self._conn:  # one transaction: all keys of the shard become visible together, or none
            self._conn.executemany(
                "INSERT OR REPLACE INTO outputs (key, shard, text, label, meta, tensors) VALUES (?, ?, ?, ?, ?, ?)",
                [(key, shard, *rest) for key, *rest in rows],
            )

    # -- the main entry point ------------------------------------------------------------------------------------

    def run(
        self, teacher: Teacher, inputs: list[Any], batch_size: int = 16, progress: bool = True
    ) -> list[TeacherOutput]:
        """Answer ``inputs`` with ``teacher``, asking only for what the store lacks; outputs come back in input order.

        Missing inputs (each distinct input once) go to ``teacher.answer`` batch by batch and each batch is stored
        before the next is asked, so a crash loses at most the batch in flight and a rerun of the same job makes no
        teacher call for what was stored. A :class:`TeacherBatchError` stores the batch's answered part before the
        job stops with a :class:`TeacherError` naming the failed input's position in ``inputs``.
        """
        settings = teacher.settings()
        keys = [self._key(teacher.teacher_id, x, settings, i) for i, x in enumerate(inputs)]
        stored = self._stored(keys)
        missing: dict[str, int] = {}  # key -> first position in inputs
        for i, key in enumerate(keys):
            if key not in stored:
                missing.setdefault(key, i)
        todo = list(missing.items())
        bar = progress_bar(len(todo), f"teacher {teacher.teacher_id}", "input", enabled=progress and bool(todo))
        with bar:
            for start in range(0, len(todo), batch_size):
                batch = todo[start : start + batch_size]
                self._answer_batch(teacher, batch, inputs)
                bar.update(len(batch))
        return [self.get(key) for key in keys]

    def _key(self, teacher_id: str, input: Any, settings: dict[str, Any], index: int) -> str:
        try:
            return store_key(teacher_id, input, settings)
        except (TypeError, ValueError) as error:
            raise TeacherError(f"input {index} cannot be keyed: {error}") from None

    def _answer_batch(self, teacher: Teacher, batch: list[tuple[str, int]], inputs: list[Any]) -> None:
        try:
            outputs = teacher.answer([inputs[i] for _, i in batch])
        except TeacherBatchError as error:
            self.put_many([(batch[j][0], out) for j, out in sorted(error.answered.items())])
            first = min(error.failures)
            raise TeacherError(
                f"teacher {teacher.teacher_id}: {len(error.failures)} of {len(batch)} inputs in this batch failed "
                f"(answered ones are stored); input {batch[first][1]}: {error.failures[first]}"
            ) from error
        if len(outputs) != len(batch):
            raise TeacherError(f"teacher {teacher.teacher_id} returned {len(outputs)} outputs for {len(batch)} inputs")
        self.put_many([(key, out) for (key, _), out in zip(batch, outputs, strict=True)])


class StoredTeacher:
    """A teacher that only reads precomputed outputs of ``teacher_id`` (run with ``settings``) from a store."""

    def __init__(self, store: TeacherOutputStore, teacher_id: str, settings: dict[str, Any]):
        self.store, self.teacher_id, self._settings = store, teacher_id, dict(settings)

    def settings(self) -> dict[str, Any]:
        return dict(self._settings)

    def answer(self, inputs: list[Any]) -> list[TeacherOutput]:
        outputs = []
        for i, x in enumerate(inputs):
            key = store_key(self.teacher_id, x, self._settings)
            if key not in self.store:
                raise TeacherError(
                    f"no stored output of teacher {self.teacher_id} for input {i} in {self.store.root}; "
                    "run the teacher on this data first"
                )
            outputs.append(self.store.get(key))
        return outputs
