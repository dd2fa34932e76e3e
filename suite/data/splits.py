"""Deterministic splits by hashing: a key's place in [0, 1) depends on the key and a salt only, so a split is the
same on every machine, in every run and for any ordering of the data."""

from __future__ import annotations

import hashlib


def hash_unit(key: str, salt: str) -> float:
    """sha256(``salt:key``) mapped to [0, 1]; compare with a fraction to put about that share of keys on one side.
    ``salt`` names the cut, so two cuts of the same keys (test, then dev) are independent."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()
    return int(digest[:8], 16) / 0xFFFFFFFF
