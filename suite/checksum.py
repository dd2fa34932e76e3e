"""One streaming sha256 of a file, shared by the dataset registry, the model hub, exports and condensed sets.

Standard library only, so that the light inference runtime (``suite.export.runtime``) can use it too.
"""

from __future__ import annotations

import hashlib
import os


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of the file's bytes, read in chunks (model weights can be larger than memory allows twice)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
