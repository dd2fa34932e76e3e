"""Download into the cache from a real local HTTP server, checksum checks, and verify_dataset reports."""

from __future__ import annotations

import functools
import shutil
import socket
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import suite.data.registry as registry
from suite.data import DatasetSpec, load_dataset, resolve_dataset, verify_dataset
from suite.data.registry import download_dataset, sha256_file
from suite.errors import DataError, MalformedRowError

FIXTURES = Path(__file__).parent / "fixtures"
GSM8K_FILES = ["train.jsonl", "test.jsonl", "example_model_solutions.jsonl", "LICENSE.txt"]


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        self.server.requested.append(self.path)  # type: ignore[attr-defined]
        super().do_GET()


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(FIXTURES)))
    httpd.requested = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def requested(server: ThreadingHTTPServer) -> list[str]:
    server.requested.clear()  # type: ignore[attr-defined]
    return server.requested  # type: ignore[attr-defined]


def _base(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def toy_spec(base: str, folder: str = "gsm8k", **change) -> DatasetSpec:
    """A test-only spec for a fixture folder served at ``base``; checksums are those of the fixture files."""
    files = {rel: sha256_file(FIXTURES / folder / rel) for rel in GSM8K_FILES}
    fields = dict(
        name="toy-gsm8k",
        folder="toy_gsm8k",
        files=files,
        urls={rel: f"{base}/{folder}/{rel}" for rel in files},
        optional=frozenset({"LICENSE.txt"}),
        license="test",
        citation="test",
        description="gsm8k format fixture",
        loader="suite.data.loaders:load_gsm8k",
    )
    return DatasetSpec(**{**fields, **change})


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".part")


def test_download_into_cache_verifies_and_loads(isolated: Path, server, requested: list[str]):
    spec = toy_spec(_base(server))
    root = resolve_dataset(spec)
    assert root == isolated / "cache" / "toy_gsm8k"
    for rel in GSM8K_FILES:
        assert (root / rel).read_bytes() == (FIXTURES / "gsm8k" / rel).read_bytes()
    assert sorted(requested) == sorted(f"/gsm8k/{rel}" for rel in GSM8K_FILES)
    assert _leftovers(root) == []
    assert all(check.ok and check.status == "ok" for check in verify_dataset(spec))
    # Found in the cache now: loading downloads nothing more.
    assert load_dataset(spec).counts() == {"train": 2, "test": 1, "model_solutions": 4}
    assert len(requested) == len(GSM8K_FILES)


def test_wrong_checksum_raises_and_leaves_no_partial_file(isolated: Path, server, requested: list[str]):
    spec = toy_spec(_base(server))
    bad = toy_spec(_base(server), files={**spec.files, "test.jsonl": "0" * 64})
    with pytest.raises(DataError, match=f"sha256 mismatch for {_base(server)}/gsm8k/test.jsonl"):
        resolve_dataset(bad)
    folder = isolated / "cache" / "toy_gsm8k"
    assert not (folder / "test.jsonl").exists()
    assert _leftovers(folder) == []
    assert requested.count("/gsm8k/test.jsonl") == 1, "a checksum mismatch must not be retried"


def test_only_missing_or_corrupt_files_are_downloaded_again(isolated: Path, server, requested: list[str]):
    spec = toy_spec(_base(server))
    root = download_dataset(spec)
    (root / "test.jsonl").write_text("corrupted\n")
    requested.clear()
    download_dataset(spec)
    assert requested == ["/gsm8k/test.jsonl"]
    assert sha256_file(root / "test.jsonl") == spec.files["test.jsonl"]


def test_offline_raises_data_error_naming_the_url(isolated: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(registry, "RETRY_DELAY_S", 0.0)
    with socket.socket() as probe:  # a port nobody listens on: connection refused, like being offline
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spec = toy_spec(f"http://127.0.0.1:{port}")
    with pytest.raises(DataError, match=rf"cannot download http://127\.0\.0\.1:{port}/gsm8k/\S+ after 3 tries"):
        resolve_dataset(spec)


def test_http_404_is_not_retried(isolated: Path, server, requested: list[str]):
    spec = toy_spec(_base(server))
    missing = toy_spec(_base(server), urls={**spec.urls, "train.jsonl": f"{_base(server)}/nowhere/train.jsonl"})
    with pytest.raises(DataError, match="HTTP 404"):
        download_dataset(missing)
    assert requested.count("/nowhere/train.jsonl") == 1


def test_required_file_without_url_needs_a_mirror(isolated: Path, server, requested: list[str]):
    spec = toy_spec(_base(server))
    derived = toy_spec(_base(server), urls={k: v for k, v in spec.urls.items() if k != "train.jsonl"})
    with pytest.raises(DataError, match="train.jsonl exist only in a data mirror.*SUITE_DATA_MIRRORS"):
        resolve_dataset(derived)
    assert requested == []


def test_verify_reports_mismatch_missing_and_absent_optional(isolated: Path, server):
    spec = toy_spec(_base(server))
    root = download_dataset(spec)
    (root / "LICENSE.txt").unlink()
    (root / "train.jsonl").write_text("{}\n")
    report = {check.path: check for check in verify_dataset(spec, root)}
    assert report["test.jsonl"].ok
    assert (report["train.jsonl"].status, report["train.jsonl"].ok) == ("sha256 mismatch", False)
    assert (report["LICENSE.txt"].status, report["LICENSE.txt"].ok) == ("absent (optional)", True)


def test_verify_checks_manifest_entries(tmp_path: Path):
    folder = tmp_path / "semeval"
    shutil.copytree(FIXTURES / "semeval2013_task7_sra_2way", folder)
    rels = ["questions.jsonl", "student_answers_beetle.jsonl", "student_answers_sciEntsBank.jsonl"]
    files = {rel: sha256_file(folder / rel) for rel in [*rels, "xml_SHA256SUMS.txt"]}
    spec = DatasetSpec(
        name="toy-semeval",
        folder="toy_semeval",
        files=files,
        urls={},
        manifest="xml_SHA256SUMS.txt",
        license="test",
        citation="test",
        description="semeval format fixture",
        loader="suite.data.loaders:load_semeval",
    )
    xml = "xml/training/2way/sciEntsBank/PL-1a.xml"
    report = {check.path: check for check in verify_dataset(spec, folder)}
    assert set(report) == {*files, xml} and all(check.ok for check in report.values())
    (folder / xml).write_text("<question/>")
    assert not {check.path: check for check in verify_dataset(spec, folder)}[xml].ok
    (folder / "xml_SHA256SUMS.txt").write_text("not-a-digest  xml/a.xml\n")
    with pytest.raises(MalformedRowError, match="xml_SHA256SUMS.txt:1:"):
        verify_dataset(spec, folder)
