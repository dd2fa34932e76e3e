"""What every domain app shares: which run it serves, and how refused inputs reach the page."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from suite.errors import SuiteError


class InputError(SuiteError):
    """An input the app refuses. The message says what to change and never quotes the user's text."""


def find_run(run_dir: str | Path | None, runs: Path, what: str, how: str, released: Path | None = None) -> Path:
    """``run_dir``, else ``runs/full``, else ``runs/quick``, else the ``released`` students (``models/<pack>``): the
    first that has an ``export/`` folder.

    ``what`` names the exported models and ``how`` the command that makes them, for the error when none exists.
    """
    candidates = [Path(run_dir)] if run_dir is not None else [runs / "full", runs / "quick"]
    if run_dir is None and released is not None:
        candidates.append(released)
    for candidate in candidates:
        if (candidate / "export").is_dir():
            return candidate
    tried = " or ".join(str(c / "export") for c in candidates)
    raise SuiteError(f"no exported {what} in {tried}; run {how} first")


@contextmanager
def shown_to_user() -> Iterator[None]:
    """SuiteError messages as gradio errors: shown in the page (and to API clients) without a server traceback."""
    import gradio as gr

    try:
        yield
    except SuiteError as error:
        raise gr.Error(str(error), print_exception=False) from None
