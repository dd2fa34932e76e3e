"""A PNG of a Gradio app as a browser shows it: ``python -m apps.screenshot education --out docs/results/x.png``.

The app is launched in this process on a free loopback port and rendered by headless Chromium (Debian's
``chromium`` package), then closed. Chromium runs with everything that would reach the network switched off, with
a fresh profile, and with a virtual-time budget so that the page's load events finish before the capture.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from suite.errors import SuiteError

if TYPE_CHECKING:
    import gradio as gr

WINDOW = (1280, 1100)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # we run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-proxy-server",  # a proxy from the environment must not see the loopback page
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=15000",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def find_chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        raise SuiteError("chromium not found on PATH; install it with `apt-get install chromium` (Debian)")
    return path


def wait_until_up(url: str, timeout_s: float = 30.0) -> None:
    """Poll ``url`` until it answers 200; the opener ignores proxy settings, as the page is on loopback."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with opener.open(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SuiteError(f"{url} did not answer within {timeout_s:.0f} s")
        time.sleep(0.2)


def capture(url: str, out_path: Path, window: tuple[int, int] = WINDOW, timeout_s: float = 120.0) -> Path:
    """Render ``url`` in headless Chromium into the PNG ``out_path`` (``window`` pixels, width x height)."""
    chromium = find_chromium()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}"]
        command += [f"--screenshot={out_path}", url]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    if result.returncode != 0 or not out_path.is_file():
        tail = result.stderr.strip().splitlines()[-5:]
        raise SuiteError(f"chromium wrote no screenshot (exit {result.returncode}): " + " | ".join(tail))
    return out_path


@contextmanager
def served(app: gr.Blocks) -> Iterator[str]:
    """``app`` served on a free loopback port for the ``with`` block; yields its URL and closes it after."""
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()


def screenshot(app: gr.Blocks, out_path: str | Path, window: tuple[int, int] = WINDOW) -> Path:
    """Launch ``app`` on 127.0.0.1, write its screenshot to ``out_path`` (a PNG), close the app."""
    out = Path(out_path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)  # a stale file must not pass for a new capture
    with served(app) as url:
        wait_until_up(url)
        return capture(url, out, window)


def build(domain: str, run_dir: str | None) -> gr.Blocks:
    """The domain's app, found as ``distill app`` finds it; every app's builder takes ``run_dir`` (None: default)."""
    from suite.domains import get_domain
    from suite.registry import Registry

    target = get_domain(domain).app
    if not target:
        raise SuiteError(f"domain '{domain}' has no app")
    apps = Registry("app")
    apps.register(domain, target)
    return apps.get(domain)(run_dir=run_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.screenshot", description=__doc__.splitlines()[0])
    parser.add_argument("domain", help="a domain with an app, e.g. education")
    parser.add_argument("--out", required=True, help="PNG to write, e.g. docs/results/education_app.png")
    parser.add_argument("--run-dir", help="the run whose export/ the app serves (default: the app's own choice)")
    args = parser.parse_args(argv)
    try:
        path = screenshot(build(args.domain, args.run_dir), args.out)
    except SuiteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
