"""The suite-wide guard really blocks non-loopback connections (so passing tests prove no network was used)."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import NetworkAccessError


def test_external_connections_are_refused() -> None:
    with pytest.raises(NetworkAccessError):
        socket.create_connection(("93.184.216.34", 443), timeout=1)
    with socket.socket() as sock, pytest.raises(NetworkAccessError):
        sock.connect(("10.1.2.3", 80))


def test_loopback_stays_usable() -> None:
    class Hello(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"hi")

        def log_message(self, *args: object) -> None: ...

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(server.server_address, timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert sock.recv(1024).startswith(b"HTTP/1.0 200")
    finally:
        server.shutdown()
