"""The README's core API examples run as written."""

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


def test_generative_example_runs_as_written(tmp_path, monkeypatch, capsys) -> None:
    section = README.read_text().split("## Core API", 1)[1].split("### Losses", 1)[0]
    examples = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(examples) == 2
    monkeypatch.chdir(tmp_path)
    exec(compile(examples[1], "README.md", "exec"), {})
    assert (tmp_path / "runs" / "readme-generative").is_dir()  # the trainer's output dir
    assert capsys.readouterr().out.startswith("['")  # one decoded draft
