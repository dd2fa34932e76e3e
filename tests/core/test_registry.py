from __future__ import annotations

import pytest

from suite.errors import RegistryError
from suite.registry import Registry


def test_lazy_resolution_and_listing() -> None:
    registry = Registry("widget")
    registry.register("b", "json:dumps", help="serialise")
    registry.register("a", "json:loads")
    assert registry.names() == ["a", "b"]
    assert registry.get("b")([1]) == "[1]"
    assert registry.describe("b") == "serialise"
    assert "a" in registry and "c" not in registry


def test_duplicate_and_unknown_names_are_errors() -> None:
    registry = Registry("widget")
    registry.register("a", "json:loads")
    with pytest.raises(RegistryError, match="registered twice"):
        registry.register("a", "json:dumps")
    with pytest.raises(RegistryError, match=r"unknown widget 'z' \(known: a\)"):
        registry.get("z")
    with pytest.raises(RegistryError, match="module:attr"):
        registry.register("c", "json.loads")
