"""The README's core API example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_core_api_example_runs_as_written(tmp_path, monkeypatch, capsys) -> None:
    section = README.read_text().split("## Core API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)  # it writes runs/readme/
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "runs" / "readme" / "metrics.jsonl").is_file()
    assert "[[" in capsys.readouterr().out
