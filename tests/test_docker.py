"""docker/: every Dockerfile refers only to files and modules that exist, pins what it installs, and ships every
module serve.py imports; serve.py answers real HTTP requests (and refuses oversized ones) without torch."""

from __future__ import annotations

import ast
import http.client
import json
import os
import re
import shlex
import shutil
import site
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from suite.export.runtime import load_exported
from tests.bench.exported import LABELS, make_text_export

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted((ROOT / "docker").glob("Dockerfile.*"))
MAX_BODY = 2048


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    logical, current = [], ""
    for line in path.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            logical.append(current.strip())
            current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def words(arguments: str) -> list[str]:
    """Exec form (a JSON array) or shell form, minus --flags such as --chown."""
    tokens = json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)
    return [t for t in tokens if not t.startswith("--")]


def copied_files(path: Path) -> dict[str, Path]:
    """Container path -> repository path for every COPY/ADD."""
    files = {}
    for op, arguments in instructions(path):
        if op in ("COPY", "ADD"):
            *sources, dest = words(arguments)
            for source in sources:
                target = dest + Path(source).name if dest.endswith("/") else dest
                files[target] = ROOT / source
    return files


def python_path(path: Path) -> list[str]:
    env = [a for op, a in instructions(path) if op == "ENV"]
    found = [m.group(1) for a in env for m in [re.search(r"PYTHONPATH=(\S+)", a)] if m]
    return found[0].split(":") if found else []


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copy_sources_exist(dockerfile: Path) -> None:
    files = copied_files(dockerfile)
    assert files, "the image ships nothing from the repository"
    for target, source in files.items():
        assert source.is_file(), f"{dockerfile.name}: COPY source {source.relative_to(ROOT)} for {target} is missing"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_commands_refer_to_copied_scripts_and_modules(dockerfile: Path) -> None:
    files, roots = copied_files(dockerfile), python_path(dockerfile)
    commands = [a for op, a in instructions(dockerfile) if op in ("RUN", "CMD", "ENTRYPOINT")]
    scripts = [w for a in commands for w in words(a) if w.endswith(".py")]
    modules = [ws[i + 1] for a in commands for ws in [words(a)] for i, w in enumerate(ws[:-1]) if w == "-m"]
    assert scripts, f"{dockerfile.name}: no command runs a repository script"
    for script in scripts:
        assert script in files, f"{dockerfile.name}: {script} is not copied into the image"
    for module in modules:
        if module == "pip":
            continue
        rel = module.replace(".", "/")
        assert any(f"{r}/{rel}.py" in files for r in roots), f"{dockerfile.name}: module {module} is not copied"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_image_ships_every_repository_module_serve_imports(dockerfile: Path) -> None:
    """Follow ``suite.*`` imports from serve.py: each module and its packages' __init__ must be in the image."""
    files, roots = copied_files(dockerfile), python_path(dockerfile)
    shipped = {t.removeprefix(f"{r}/") for t in files for r in roots if t.startswith(f"{r}/")}
    todo, seen = [ROOT / "docker" / "serve.py"], set()
    while todo:
        tree = ast.parse(todo.pop().read_text())
        for node in ast.walk(tree):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in (n for n in names if n.split(".")[0] == "suite" and n not in seen):
                seen.add(name)
                parts = name.split(".")
                needed = [f"{'/'.join(parts[:i])}/__init__.py" for i in range(1, len(parts))]
                needed.append(f"{'/'.join(parts)}.py" if (ROOT / f"{'/'.join(parts)}.py").is_file() else "")
                for rel in filter(None, needed):
                    assert rel in shipped, f"{dockerfile.name}: serve.py needs {rel}, not copied"
                    todo.append(ROOT / rel)
    assert "suite.export.runtime" in seen


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_installs_are_pinned(dockerfile: Path) -> None:
    runs = " ".join(a for op, a in instructions(dockerfile) if op == "RUN")
    assert "pip" in runs
    requirements = [w for w in shlex.split(runs) if re.match(r"^(onnxruntime|numpy|tokenizers)", w)]
    assert {r.split("=")[0] for r in requirements} >= {"numpy", "tokenizers"}
    for requirement in requirements:
        assert "==" in requirement, f"{dockerfile.name}: {requirement} is not pinned"
    if dockerfile.name != "Dockerfile.jetson":  # the Jetson index has its own onnxruntime-gpu versions
        assert any(r.endswith("==1.31.1") and r.startswith("onnxruntime") for r in requirements)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_text_export(tmp_path_factory.mktemp("serve") / "tiny-text")


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Dockerfile.cpu's COPY steps replayed into a folder standing in for the image's /app."""
    app = tmp_path_factory.mktemp("image") / "app"
    for target, source in copied_files(ROOT / "docker" / "Dockerfile.cpu").items():
        dest = app / Path(target).relative_to("/app")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, dest)
    return app


@pytest.fixture(scope="module")
def server(export_dir: Path, image_root: Path) -> Iterator[tuple[str, int]]:
    """serve.py in a subprocess as the image's CMD runs it: the copied files and site-packages on the path but no
    .pth hooks (``-S``: the editable install of this repository would resolve any module the image lacks), and
    torch and transformers made unimportable."""
    launcher = (
        "import runpy, sys; sys.modules['torch'] = sys.modules['transformers'] = None; "
        "sys.argv = ['serve.py', *sys.argv[1:]]; runpy.run_path('serve.py', run_name='__main__')"
    )
    args = ["--model", str(export_dir), "--port", "0", "--max-body-bytes", str(MAX_BODY), "--max-texts", "4"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(image_root), *site.getsitepackages()])}
    proc = subprocess.Popen(
        [sys.executable, "-S", "-c", launcher, *args],
        cwd=image_root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    line = proc.stdout.readline().decode()
    if not line.startswith("serving"):
        proc.kill()
        pytest.fail(f"serve.py did not start: {line}{proc.stderr.read().decode()[-2000:]}")
    host, port = line.rsplit("http://", 1)[1].strip().rsplit(":", 1)
    yield host, int(port)
    proc.terminate()
    proc.wait(timeout=10)


def request(server: tuple[str, int], method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection(*server, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_predict_matches_the_runtime(server: tuple[str, int], export_dir: Path) -> None:
    texts = ["the cat sat on the mat", "dogs ran in the green park today"]
    status, payload = request(server, "POST", "/predict", json.dumps({"texts": texts}).encode())
    assert status == 200, payload
    expected = load_exported(export_dir).predict_proba(texts)
    np.testing.assert_allclose(payload["probabilities"], expected, atol=1e-5)
    assert payload["labels"] == [LABELS[i] for i in expected.argmax(axis=1)]
    assert payload["label_names"] == LABELS


def test_oversized_body_is_refused_with_413(server: tuple[str, int]) -> None:
    body = json.dumps({"texts": ["word " * MAX_BODY]}).encode()
    status, payload = request(server, "POST", "/predict", body)
    assert status == 413 and "bytes" in payload["error"]
    status, _ = request(server, "POST", "/predict", json.dumps({"texts": ["still serving"]}).encode())
    assert status == 200


def test_too_many_texts_is_413(server: tuple[str, int]) -> None:
    status, payload = request(server, "POST", "/predict", json.dumps({"texts": ["a"] * 5}).encode())
    assert status == 413 and "at most 4" in payload["error"]


@pytest.mark.parametrize(
    "body, message",
    [
        (b"not json", "not JSON"),
        (b'{"texts": []}', "non-empty"),
        (b'{"texts": ["a"], "text_pairs": ["b", "c"]}', "as long"),
    ],
)
def test_bad_requests_are_400(server: tuple[str, int], body: bytes, message: str) -> None:
    status, payload = request(server, "POST", "/predict", body)
    assert status == 400 and message in payload["error"]


def test_health_and_unknown_route(server: tuple[str, int]) -> None:
    assert request(server, "GET", "/health") == (200, {"status": "ok", "labels": LABELS})
    assert request(server, "GET", "/nope")[0] == 404
    assert request(server, "POST", "/nope", b"{}")[0] == 404
