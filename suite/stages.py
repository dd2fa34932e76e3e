"""Stage-level resume for a run directory: finished stages are reused, changed ones rerun with everything after.

Each stage records a fingerprint of what it was built from (its recipe section and input summaries) chained with
the fingerprints of the stages it depends on, in ``<root>/stages.json``. On a rerun:

- same fingerprint, finished: the stage's ``load`` reads what it wrote (nothing is recomputed);
- same fingerprint, unfinished (a crash or Ctrl-C): ``build`` runs again over what is there, so a stage that
  resumes from its own checkpoints (training) continues where it stopped;
- another fingerprint, or a directory no ledger describes: the directory is deleted and ``build`` starts afresh.
  Because a stage's fingerprint includes its dependencies', a changed teacher reruns every student after it: a
  stale teacher or planner is never reused silently.

Several processes may share one run directory when each runs its own stages (``--set tasks=[a]`` in one,
``tasks=[b]`` in another): every save re-reads the ledger under a lock and writes back only this process's stages,
so neither forgets what the other finished. A stage is built under its own lock: a process that reaches a stage
another is building waits, then reuses it; ``run(..., wait=False)`` raises :class:`StageBusy` instead, so a loop
over independent stages builds the free ones first and comes back.

A ``reuse_only`` ledger reads a finished run (a benchmark retraining one model on its data): it raises where a stage
would be built anew, so it never deletes or changes what the run holds, and takes no locks, so it adds no files to it
either (a finished stage without a loader still reads its own files, as on any rerun).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from suite.errors import SuiteError

T = TypeVar("T")
LEDGER = "stages.json"


class StageBusy(Exception):
    """Another sitting holds the stage's lock (raised by ``StageLedger.run(..., wait=False)``)."""

    def __init__(self, name: str):
        super().__init__(f"stage '{name}' is being built by another sitting")
        self.name = name


def fingerprint(value: Any) -> str:
    """sha256 (16 hex digits) of ``value`` as canonical JSON (dataclasses and paths as their ``str``)."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class StageLedger:
    """The stages of one run directory and their fingerprints (see the module docstring)."""

    def __init__(self, root: str | Path, log: Callable[[str], None] = print, reuse_only: bool = False):
        self.root = Path(root)
        self.path = self.root / LEDGER
        self.log = log
        # reuse_only: read a finished run (an analysis of its data or models) without ever deleting or rebuilding
        # what it holds; a stage that would be built raises instead
        self.reuse_only = reuse_only
        self.records: dict[str, dict[str, Any]] = self._read()
        self._written: set[str] = set()  # the stages this process recorded; only these are written back

    def _read(self) -> dict[str, dict[str, Any]]:
        return json.loads(self.path.read_text(encoding="utf-8")) if self.path.is_file() else {}

    def fingerprint_of(self, name: str) -> str:
        record = self.records.get(name)
        if record is None or not record["done"]:
            raise SuiteError(f"stage '{name}' has not finished; a stage after it cannot start")
        return record["fingerprint"]

    def _save(self, name: str) -> None:
        """Write stage ``name``'s record, keeping the records other processes wrote since this one read the file."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._written.add(name)
        with open(self.root / f".{LEDGER}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            merged = self._read() | {n: self.records[n] for n in self._written}
            tmp = self.path.with_name(f".{LEDGER}.tmp-{os.getpid()}")
            tmp.write_text(json.dumps(merged, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.path)
        self.records = merged

    def run(
        self,
        name: str,
        inputs: Any,
        build: Callable[[Path], T],
        load: Callable[[Path], T] | None = None,
        after: Sequence[str] = (),
        directory: str | Path | None = None,
        wait: bool = True,
    ) -> T:
        """Run stage ``name`` in ``directory`` (default ``root/name``) unless it is finished with the same
        fingerprint, in which case ``load(directory)`` returns what it built. Without ``load`` a finished stage is
        built again over its own outputs (for stages that are cheap or reuse their files themselves). When another
        sitting is building the stage this one waits for it, or with ``wait=False`` raises :class:`StageBusy`."""
        if self.reuse_only:  # builds nothing, so takes no lock: it leaves the run it reads as it found it
            self.records = self._read()
            return self._run(name, inputs, build, load, after, directory)
        with self._building(name, wait):
            return self._run(name, inputs, build, load, after, directory)

    @contextlib.contextmanager
    def _building(self, name: str, wait: bool = True) -> Iterator[None]:
        """Hold stage ``name``'s lock: a sitting reaching a stage another sitting is building waits for it, then
        finds it finished (instead of rebuilding it over the other's files), and reads what other sittings
        recorded since it started. ``wait=False``: :class:`StageBusy` instead of waiting."""
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / (name.replace("/", "__") + ".lock"), "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    raise StageBusy(name) from None
                self.log(f"[{name}] another sitting is building it: waiting")
                fcntl.flock(lock, fcntl.LOCK_EX)
            self.records = self._read() | {n: self.records[n] for n in self._written}
            yield

    def _run(self, name: str, inputs: Any, build: Callable[[Path], T], load: Callable[[Path], T] | None,
             after: Sequence[str], directory: str | Path | None) -> T:  # fmt: skip
        out = Path(directory) if directory is not None else self.root / name
        key = fingerprint({"inputs": inputs, "after": {a: self.fingerprint_of(a) for a in after}})
        record = self.records.get(name)
        current = record is not None and record["fingerprint"] == key
        if current and record["done"] and load is not None:
            self.log(f"[{name}] up to date: reusing {out}")
            return load(out)
        if self.reuse_only and current and record["done"]:
            return build(out)  # a stage without a loader reads its own finished files (cheap): as on any rerun
        if self.reuse_only:
            raise SuiteError(f"stage '{name}' in {self.root} {_not_reusable(record, current)}: this ledger only "
                             "reuses finished stages (is this the recipe that made the run?)")  # fmt: skip
        if not current and out.exists() and any(out.iterdir()):
            why = "its recipe or inputs changed" if record else "no record of what built it"
            self.log(f"[{name}] rebuilding: {why}; removing {out}")
            shutil.rmtree(out)
        self.records[name] = {"fingerprint": key, "done": False}
        self._save(name)
        started = time.perf_counter()
        result = build(out)
        # wall time of this sitting's build (a build resumed from its checkpoints counts its last sitting only):
        # what sizes a profile
        seconds = round(time.perf_counter() - started, 1)
        self.records[name] = {"fingerprint": key, "done": True, "seconds": seconds}
        self._save(name)
        self.log(f"[{name}] built in {seconds:.0f} s")
        return result


def _not_reusable(record: dict[str, Any] | None, current: bool) -> str:
    """Why a stage cannot be reused as it is (for a reuse-only ledger's error)."""
    if record is None:
        return "was never run"
    if not current:
        return "was built from other inputs"
    return "did not finish"
