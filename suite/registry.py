"""Name registries for things users type on the command line (students, teachers, datasets, domains).

Entries are lazy ``"package.module:attr"`` strings so that listing names imports nothing heavy. Each registry is
filled in exactly one place (the ``__init__`` of its package); registering a name twice is an error.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

from suite.errors import RegistryError


class Registry:
    """A dict of ``name -> "module:attr"`` with lazy resolution."""

    def __init__(self, kind: str):
        self.kind = kind
        self._targets: dict[str, str] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, target: str, help: str = "") -> None:
        if name in self._targets:
            raise RegistryError(f"{self.kind} '{name}' is registered twice ({self._targets[name]} and {target})")
        if ":" not in target:
            raise RegistryError(f"{self.kind} '{name}': target must be 'module:attr', got '{target}'")
        self._targets[name] = target
        self._help[name] = help

    def get(self, name: str) -> Any:
        """Import and return the object registered under ``name``."""
        if name not in self._targets:
            known = ", ".join(sorted(self._targets)) or "none"
            raise RegistryError(f"unknown {self.kind} '{name}' (known: {known})")
        module_name, attr = self._targets[name].split(":", 1)
        return getattr(importlib.import_module(module_name), attr)

    def names(self) -> list[str]:
        return sorted(self._targets)

    def describe(self, name: str) -> str:
        return self._help[name]

    def __contains__(self, name: object) -> bool:
        return name in self._targets

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
