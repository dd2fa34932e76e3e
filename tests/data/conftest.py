"""Shared fixtures: the small format fixtures, and an environment where no real cache or mirror is visible."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import suite.data.registry as registry

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Cache in tmp, no env mirrors, and repo root / working directory moved so ../shared/data is not found."""
    monkeypatch.setenv("SUITE_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("SUITE_DATA_MIRRORS", raising=False)
    monkeypatch.setattr(registry, "REPO_ROOT", tmp_path / "repo")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path


@pytest.fixture
def dataset_copy(tmp_path: Path):
    """Copy one fixture folder into tmp so a test can break rows in it."""

    def copy(folder: str) -> Path:
        target = tmp_path / "copies" / folder
        shutil.copytree(FIXTURES / folder, target)
        return target

    return copy
