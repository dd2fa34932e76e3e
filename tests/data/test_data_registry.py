"""Dataset names, spec validation and the order in which a dataset folder is resolved."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import suite.data.registry as registry
from suite.data import DATASETS, DatasetSpec, get_spec, list_datasets, resolve_dataset
from suite.errors import ConfigError, DataError, RegistryError

FIXTURES = Path(__file__).parent / "fixtures"

NAMES = ["bdd-x", "gsm8k", "iu-xray-reports", "mtsamples", "pubmedqa-pqal", "radlabels-synthetic", "semeval2013-sra",
         "symptom2disease"]  # fmt: skip


def test_all_datasets_are_listed_and_resolve_to_specs():
    assert list_datasets() == NAMES
    for name in NAMES:
        spec = get_spec(name)
        assert spec.name == name
        assert (FIXTURES / spec.folder).is_dir(), f"no format fixture for {name}"


def test_duplicate_registration_is_an_error_and_keeps_the_first():
    with pytest.raises(RegistryError, match="registered twice"):
        DATASETS.register("gsm8k", "suite.data.catalog:BDDX")
    assert get_spec("gsm8k").folder == "gsm8k"


def test_unknown_name_lists_known_names():
    with pytest.raises(RegistryError, match="unknown dataset 'gsm9k'.*gsm8k"):
        get_spec("gsm9k")


def test_urls_point_at_pinned_commits_and_derived_files_have_none():
    for name in NAMES:
        spec = get_spec(name)
        for rel, url in spec.urls.items():
            if url.startswith("https://files.pythonhosted.org/packages/"):  # a released package file never changes
                assert url.endswith(rel) and not spec.in_mirror, (name, rel)
                continue
            assert url.startswith("https://raw.githubusercontent.com/"), (name, rel)
            assert any(len(part) == 40 for part in url.split("/")), f"{name}:{rel} is not pinned to a commit"
    assert "bddx_segments_flat.csv" not in get_spec("bdd-x").urls
    assert get_spec("semeval2013-sra").urls == {}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"files": {}}, "at least one file"),
        ({"files": {"../a.csv": "0" * 64}}, "relative path"),
        ({"files": {"a.csv": "XYZ"}}, "64 lowercase hex"),
        ({"urls": {"b.csv": "http://x"}}, "belong to a listed file"),
        ({"optional": frozenset({"b.csv"})}, "must name listed files"),
        ({"loader": "no_colon"}, "module:attr"),
    ],
)
def test_spec_validation(change: dict, message: str):
    fields = dict(name="t", folder="t", files={"a.csv": "0" * 64}, urls={}, license="", citation="", description="")
    with pytest.raises(ConfigError, match=message):
        DatasetSpec(**{**fields, "loader": "m:f", **change})


def _plant(root: Path, folder: str = "gsm8k") -> Path:
    """A copy of the gsm8k fixture folder under ``root``; resolution needs the files, not their contents."""
    shutil.copytree(FIXTURES / folder, root / folder)
    return root / folder


def test_explicit_path_beats_cache_and_mirrors(isolated: Path, monkeypatch: pytest.MonkeyPatch):
    _plant(isolated / "cache")
    _plant(isolated / "mirror")
    monkeypatch.setenv("SUITE_DATA_MIRRORS", str(isolated / "mirror"))
    explicit = _plant(isolated / "mine")
    assert resolve_dataset("gsm8k", explicit, download=False) == explicit
    # A mirror-style root holding <folder>/ is accepted too.
    assert resolve_dataset("gsm8k", isolated / "mine", download=False) == explicit


def test_explicit_path_without_the_files_is_an_error_not_a_fallback(isolated: Path):
    _plant(isolated / "cache")
    (isolated / "empty").mkdir()
    with pytest.raises(DataError, match="not a 'gsm8k' folder.*example_model_solutions.jsonl"):
        resolve_dataset("gsm8k", isolated / "empty", download=False)


def test_cache_beats_mirror(isolated: Path, monkeypatch: pytest.MonkeyPatch):
    _plant(isolated / "mirror")
    monkeypatch.setenv("SUITE_DATA_MIRRORS", str(isolated / "mirror"))
    assert resolve_dataset("gsm8k", download=False) == isolated / "mirror" / "gsm8k"
    cached = _plant(isolated / "cache")
    assert resolve_dataset("gsm8k", download=False) == cached


def test_suite_data_env_moves_the_cache(isolated: Path, monkeypatch: pytest.MonkeyPatch):
    elsewhere = _plant(isolated / "elsewhere")
    monkeypatch.setenv("SUITE_DATA", str(isolated / "elsewhere"))
    assert resolve_dataset("gsm8k", download=False) == elsewhere


def test_mirrors_in_env_order_and_incomplete_folders_skipped(isolated: Path, monkeypatch: pytest.MonkeyPatch):
    first, second = isolated / "m1", isolated / "m2"
    _plant(first)
    _plant(second)
    monkeypatch.setenv("SUITE_DATA_MIRRORS", os.pathsep.join([str(isolated / "absent"), str(first), str(second)]))
    assert resolve_dataset("gsm8k", download=False) == first / "gsm8k"
    (first / "gsm8k" / "test.jsonl").unlink()
    assert resolve_dataset("gsm8k", download=False) == second / "gsm8k"


def test_optional_files_are_not_required(isolated: Path, monkeypatch: pytest.MonkeyPatch):
    folder = _plant(isolated / "m", "bdd_x_explanations")
    (folder / "LICENSE.txt").unlink()
    (folder / "bddx_segments_flat.csv").unlink()
    monkeypatch.setenv("SUITE_DATA_MIRRORS", str(isolated / "m"))
    assert resolve_dataset("bdd-x", download=False) == folder


def test_shared_data_beside_repo_root_and_beside_working_directory(isolated: Path, monkeypatch: pytest.MonkeyPatch):
    beside_cwd = _plant(isolated / "shared" / "data")  # isolated/work is the working directory
    assert resolve_dataset("gsm8k", download=False) == beside_cwd
    beside_repo = _plant(isolated / "checkout" / "shared" / "data")
    monkeypatch.setattr(registry, "REPO_ROOT", isolated / "checkout" / "repo")
    assert resolve_dataset("gsm8k", download=False) == beside_repo


def test_not_found_without_download_names_where_it_looked(isolated: Path):
    with pytest.raises(DataError, match=f"dataset 'gsm8k' not found.*{isolated / 'cache' / 'gsm8k'}"):
        resolve_dataset("gsm8k", download=False)
