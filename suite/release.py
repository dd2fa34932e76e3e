"""Released students: the exported models a pack ships in ``models/<pack>/`` so a fresh clone can serve them.

A release is a copy of export directories (:mod:`suite.export`) without the PyTorch weights (serving needs the ONNX
files, spec.json and the tokenizer; every file stays checked against spec.json's sha256 on load), plus
``release.json``: the command that built them and, per model, a metric measured on a fixed slice of a test split by
the released ONNX files themselves, which a test recomputes.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from suite.errors import ModelNotFoundError

RELEASE = "release.json"
NOT_RELEASED = ("student.safetensors",)  # PyTorch weights: for benchmarks and fine-tuning, not for serving


def release_exports(
    exports: Mapping[str, Path], target: Path, command: str, check: Callable[[Path], dict[str, Any]] | None = None
) -> Path:
    """Copy each export to ``target/export/<name>`` (replacing an earlier release of it) and write ``release.json``
    with ``check(released_dir)`` for each; returns ``target``."""
    from suite.export.runtime import read_spec

    models: dict[str, Any] = {}
    for name, source in exports.items():
        released = target / "export" / name
        if released.exists():
            shutil.rmtree(released)
        shutil.copytree(source, released, ignore=shutil.ignore_patterns(*NOT_RELEASED))
        files = read_spec(released)["files"]
        shipped = sorted(p.relative_to(released).as_posix() for p in released.rglob("*") if p.is_file())
        models[name] = {
            "files": {f: files[f] for f in shipped if f in files},
            "check": check(released) if check else None,
        }
    (target / RELEASE).write_text(json.dumps({"command": command, "models": models}, indent=2) + "\n")
    return target


def read_release(target: Path) -> dict[str, Any]:
    path = target / RELEASE
    if not path.is_file():
        raise ModelNotFoundError(f"{target}: no {RELEASE}; no released students there")
    return json.loads(path.read_text())


def release_named(
    names: list[str], exports: Mapping[str, Path], target: Path, command: str,
    check: Callable[[Path], dict[str, Any]] | None = None,
) -> dict[str, Path]:  # fmt: skip
    """:func:`release_exports` of the exports a recipe names; names this run did not export are reported, not
    raised (a profile that trains fewer variants still finishes). Returns what was released."""
    chosen = {name: path for name, path in exports.items() if name in names}
    missing = sorted(set(names) - set(chosen))
    if missing:
        print(f"not released (not exported in this run): {', '.join(missing)}")
    if chosen:
        release_exports(chosen, target, command, check)
        print(f"released {', '.join(chosen)} to {target / 'export'}")
    return chosen
