"""Progress bars that suit where the output goes.

On a terminal: a tqdm bar. Anywhere else (CI logs, ``nohup``, a pipe): plain lines, one each time another tenth of
the work is done, since a bar's carriage returns turn a log file into one unreadable line.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class LineProgress:
    """The part of tqdm's interface the suite uses (``update``, ``set_postfix``, ``write``, ``close``, context
    manager), printing ``desc: 30/100 unit (30%), 12.3 s, loss=0.41`` lines."""

    def __init__(self, total: int, desc: str, unit: str, initial: int = 0, stream: TextIO | None = None):
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.stream = stream or sys.stdout
        self.started, self.postfix = time.perf_counter(), ""
        self._next_tenth = self._tenth(initial) + 1

    def _tenth(self, n: int) -> int:
        return 10 * n // self.total if self.total else 10

    def update(self, count: int = 1) -> None:
        self.n += count
        if self.total and self._tenth(self.n) >= self._next_tenth:
            self._next_tenth = self._tenth(self.n) + 1
            self._line()

    def _line(self) -> None:
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        postfix = f", {self.postfix}" if self.postfix else ""
        seconds = time.perf_counter() - self.started
        self.write(f"{self.desc}: {self.n}/{self.total} {self.unit}{share}, {seconds:.1f} s{postfix}")

    def set_postfix(self, refresh: bool = False, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def write(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        pass

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Silent(LineProgress):
    def update(self, count: int = 1) -> None:
        self.n += count

    def write(self, text: str) -> None:
        pass


def progress_bar(total: int, desc: str, unit: str = "it", enabled: bool = True, initial: int = 0) -> Any:
    """A tqdm bar on a terminal, :class:`LineProgress` elsewhere, nothing at all when ``enabled`` is false."""
    if not enabled:
        return _Silent(total, desc, unit, initial)
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, initial=initial, dynamic_ncols=True)
    return LineProgress(total, desc, unit, initial)
