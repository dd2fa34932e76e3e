"""What a selector kept and removed, with the reason for each removal and the provenance to reproduce it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def texts_checksum(texts: list[str]) -> str:
    """sha256 over the texts in order (length-prefixed, so no two lists collide by concatenation)."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode()
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


@dataclass
class Selection:
    """A selector's verdict over ``n`` examples (ids are positions in the input)."""

    method: str
    params: dict[str, Any]
    source_sha256: str
    kept: list[int]
    removed: dict[int, str] = field(default_factory=dict)  # id -> why
    duplicate_of: dict[int, int] = field(default_factory=dict)  # dedup: removed id -> the kept id it repeats

    def __post_init__(self) -> None:
        overlap = set(self.kept) & set(self.removed)
        if overlap:
            raise ValueError(f"ids both kept and removed: {sorted(overlap)[:5]}")

    @property
    def size(self) -> int:
        return len(self.kept) + len(self.removed)

    def write(self, path: str | Path) -> Path:
        """The selection as JSON (the provenance a dataset built from it carries)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = asdict(self) | {"removed": {str(k): v for k, v in sorted(self.removed.items())},
                              "duplicate_of": {str(k): v for k, v in sorted(self.duplicate_of.items())}}  # fmt: skip
        path.write_text(json.dumps(doc, indent=1) + "\n")
        return path

    @classmethod
    def read(cls, path: str | Path) -> Selection:
        doc = json.loads(Path(path).read_text())
        return cls(doc["method"], doc["params"], doc["source_sha256"], doc["kept"],
                   {int(k): v for k, v in doc["removed"].items()},
                   {int(k): v for k, v in doc.get("duplicate_of", {}).items()})  # fmt: skip
