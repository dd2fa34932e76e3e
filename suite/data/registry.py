"""Dataset specs (sources, checksums, licenses), where a dataset folder is found, download and verification.

``resolve_dataset(name, path)`` looks, in order, at:

1. ``path`` when given: the dataset folder itself, or a mirror root that holds ``<folder>/``;
2. the cache, ``$SUITE_DATA/<folder>`` (default ``~/.cache/suite/data``);
3. mirrors: each entry of ``$SUITE_DATA_MIRRORS`` (``os.pathsep``-separated), then ``../shared/data`` beside the
   repository root and beside the working directory;
4. the public URLs: every file that has one is downloaded into the cache and checked against its sha256.

A folder counts only if every required file is in it. Downloads are always checked; files already in a mirror or
the cache are checked by :func:`verify_dataset` only (``distill data verify``), so loading does not hash each time.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suite.checksum import sha256_file
from suite.config import check
from suite.errors import DataError, MalformedRowError
from suite.registry import Registry

# The repository root is the parent of the `suite` package; mirrors are looked for beside it.
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = "~/.cache/suite/data"
DOWNLOAD_RETRIES = 3
RETRY_DELAY_S = 1.0
_SHA256 = re.compile(r"[0-9a-f]{64}")

DATASETS = Registry("dataset")  # filled in exactly one place: suite/data/__init__.py


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset comes from and what its files must hash to.

    ``files`` maps each path (relative to the dataset folder) to its sha256. ``urls`` maps a path to its public
    source; derived convenience files that exist only in a mirror have no URL. ``optional`` files are ones the
    loader can do without (a license text, a derived file it can rebuild from the originals): they are downloaded
    and verified when present but a folder without them still counts. ``manifest`` names a ``sha256sum``-format
    file in the folder whose entries :func:`verify_dataset` checks as well. ``in_mirror`` is False for a dataset
    that comes from a package registry (reachable wherever pip is), which mirrors need not hold.
    """

    name: str
    folder: str
    files: dict[str, str]
    urls: dict[str, str]
    license: str
    citation: str
    description: str
    loader: str
    source: str = ""
    optional: frozenset[str] = frozenset()
    manifest: str | None = None
    in_mirror: bool = True  # False: fetched from its URL (a package registry) into the cache, not kept in mirrors

    def __post_init__(self) -> None:
        key = f"dataset {self.name}"
        check(bool(self.files), f"{key}.files", "must list at least one file")
        for rel, digest in self.files.items():
            check(_is_relative(rel), f"{key}.files", f"'{rel}' must be a relative path inside the folder")
            check(bool(_SHA256.fullmatch(digest)), f"{key}.files", f"'{rel}': sha256 must be 64 lowercase hex")
        check(set(self.urls) <= set(self.files), f"{key}.urls", "every URL must belong to a listed file")
        check(self.optional <= set(self.files), f"{key}.optional", "must name listed files")
        check(self.manifest is None or self.manifest in self.files, f"{key}.manifest", "must be a listed file")
        check(self.loader.count(":") == 1, f"{key}.loader", f"must be 'module:attr', got '{self.loader}'")

    @property
    def required(self) -> list[str]:
        """Files that must exist for a folder to count as this dataset."""
        return sorted(set(self.files) - self.optional)

    def missing(self, root: Path) -> list[str]:
        return [rel for rel in self.required if not (root / rel).is_file()]


@dataclass(frozen=True)
class FileCheck:
    """One line of a verification report. ``actual`` is None when the file is absent."""

    path: str
    expected: str
    actual: str | None
    required: bool = True

    @property
    def status(self) -> str:
        if self.actual is None:
            return "missing" if self.required else "absent (optional)"
        return "ok" if self.actual == self.expected else "sha256 mismatch"

    @property
    def ok(self) -> bool:
        return self.actual == self.expected or (self.actual is None and not self.required)


def list_datasets() -> list[str]:
    return DATASETS.names()


def get_spec(name: str) -> DatasetSpec:
    """The spec registered under ``name``; an unknown name raises RegistryError listing the known ones."""
    return DATASETS.get(name)


def _as_spec(dataset: str | DatasetSpec) -> DatasetSpec:
    return dataset if isinstance(dataset, DatasetSpec) else get_spec(dataset)


def _is_relative(rel: str) -> bool:
    path = Path(rel)
    return bool(rel) and not path.is_absolute() and ".." not in path.parts


def cache_dir() -> Path:
    return Path(os.environ.get("SUITE_DATA") or DEFAULT_CACHE).expanduser()


def mirror_dirs() -> list[Path]:
    """``$SUITE_DATA_MIRRORS`` entries, then ``../shared/data`` beside the repo root and the working directory."""
    entries = [Path(p).expanduser() for p in os.environ.get("SUITE_DATA_MIRRORS", "").split(os.pathsep) if p]
    entries += [REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    found: list[Path] = []
    for entry in entries:
        if entry.is_dir() and entry.resolve() not in {f.resolve() for f in found}:
            found.append(entry)
    return found


def resolve_dataset(dataset: str | DatasetSpec, path: str | os.PathLike | None = None, download: bool = True) -> Path:
    """Return the folder that holds ``dataset`` (see the module docstring for the order of places looked at)."""
    spec = _as_spec(dataset)
    if path is not None:
        return _explicit_folder(spec, Path(path).expanduser())
    candidates = [cache_dir() / spec.folder] + [mirror / spec.folder for mirror in mirror_dirs()]
    for candidate in candidates:
        if candidate.is_dir() and not spec.missing(candidate):
            return candidate
    if not download:
        looked = ", ".join(str(c) for c in candidates)
        raise DataError(
            f"dataset '{spec.name}' not found (looked in {looked}); run `distill data fetch {spec.name}`, "
            "set SUITE_DATA_MIRRORS, or pass an explicit path"
        )
    return download_dataset(spec)


def _explicit_folder(spec: DatasetSpec, path: Path) -> Path:
    for candidate in (path, path / spec.folder):
        if candidate.is_dir() and not spec.missing(candidate):
            return candidate
    raise DataError(f"{path}: not a '{spec.name}' folder (missing {', '.join(spec.missing(path))})")


def fetch_dataset(dataset: str | DatasetSpec) -> Path:
    """Resolve ``dataset``, downloading it into the cache only if no local copy is found."""
    return resolve_dataset(dataset, download=True)


def download_dataset(dataset: str | DatasetSpec, dest: Path | None = None) -> Path:
    """Download every file with a URL into ``dest`` (default: the cache folder); files already valid are kept."""
    spec = _as_spec(dataset)
    dest = dest if dest is not None else cache_dir() / spec.folder
    mirror_only = [rel for rel in spec.required if rel not in spec.urls]
    if mirror_only:
        raise DataError(
            f"dataset '{spec.name}': {', '.join(mirror_only)} exist only in a data mirror (derived from "
            f"{spec.source or 'the original release'}); set SUITE_DATA_MIRRORS to a folder holding {spec.folder}/"
        )
    for rel, url in spec.urls.items():
        target = dest / rel
        if target.is_file() and sha256_file(target) == spec.files[rel]:
            continue
        download_file(url, target, spec.files[rel])
    return dest


def download_file(url: str, target: Path, sha256: str, retries: int = DOWNLOAD_RETRIES, timeout: float = 60) -> Path:
    """Download ``url`` to ``target`` atomically; a checksum mismatch leaves no file behind and is not retried."""
    target.parent.mkdir(parents=True, exist_ok=True)
    reason = "no attempt made"
    for attempt in range(retries):
        try:
            return _download_once(url, target, sha256, timeout)
        except urllib.error.HTTPError as error:
            if error.code < 500:
                raise DataError(f"cannot download {url}: HTTP {error.code} {error.reason}") from None
            reason = f"HTTP {error.code} {error.reason}"
        except (urllib.error.URLError, OSError) as error:
            reason = str(getattr(error, "reason", error))
        if attempt + 1 < retries:
            time.sleep(RETRY_DELAY_S * 2**attempt)
    raise DataError(
        f"cannot download {url} after {retries} tries ({reason}); if offline, set SUITE_DATA_MIRRORS or pass a path"
    )


def _download_once(url: str, target: Path, sha256: str, timeout: float) -> Path:
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise DataError(f"sha256 mismatch for {url}: expected {sha256}, got {digest.hexdigest()}")
        os.replace(tmp, target)
        return target
    finally:
        tmp.unlink(missing_ok=True)


def verify_dataset(dataset: str | DatasetSpec, path: str | os.PathLike | None = None) -> list[FileCheck]:
    """Hash every listed file (and every manifest entry) of the resolved folder; nothing is downloaded."""
    spec = _as_spec(dataset)
    root = resolve_dataset(spec, path, download=False)
    expected = [(rel, digest, rel not in spec.optional) for rel, digest in sorted(spec.files.items())]
    if spec.manifest and (root / spec.manifest).is_file():
        expected += [(rel, digest, True) for rel, digest in read_manifest(root / spec.manifest)]
    return [
        FileCheck(rel, digest, sha256_file(root / rel) if (root / rel).is_file() else None, required)
        for rel, digest, required in expected
    ]


def read_manifest(path: Path) -> list[tuple[str, str]]:
    """Entries of a ``sha256sum`` file: ``<64 hex>  <relative path>`` per line."""
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        digest, _, rel = line.partition("  ")
        if not _SHA256.fullmatch(digest) or not _is_relative(rel.strip()):
            raise MalformedRowError(path, number, "expected '<sha256>  <relative path>'")
        entries.append((rel.strip(), digest))
    return entries


def load_dataset(
    dataset: str | DatasetSpec,
    path: str | os.PathLike | None = None,
    skip_bad_rows: bool = False,
    download: bool = True,
    **kwargs: Any,
) -> Any:
    """Resolve ``dataset`` and call its loader: ``loader(root, skip_bad_rows=..., **kwargs)`` -> ``Splits``."""
    spec = _as_spec(dataset)
    root = resolve_dataset(spec, path, download=download)
    module_name, attr = spec.loader.split(":")
    loader = getattr(importlib.import_module(module_name), attr)
    return loader(root, skip_bad_rows=skip_bad_rows, **kwargs)
