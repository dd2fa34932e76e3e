"""A small JSON HTTP server for an exported text classifier (stdlib http.server; no torch, no web framework).

    POST /predict  {"texts": ["...", ...], "text_pairs": ["...", ...] (optional)}
               ->  {"labels": [best label per text], "probabilities": [[p per label], ...], "label_names": [...]}
    GET  /health   {"status": "ok", "labels": [...]}

Request bodies are bounded: a body over ``--max-body-bytes`` is refused with 413 before it is read, a request
without Content-Length with 411, more than ``--max-texts`` texts with 413. Errors come back as ``{"error": msg}``.

    python docker/serve.py --model EXPORT_DIR [--host 127.0.0.1] [--port 8080]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from suite.export.runtime import load_exported

MAX_BODY_BYTES = 1 << 20
MAX_TEXTS = 64


class RequestError(Exception):
    """A client error: the status to answer with and a one-line reason."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def parse_request(body: bytes, max_texts: int) -> tuple[list[str], list[str] | None]:
    """``texts`` (and optional ``text_pairs`` of the same length) from a JSON body, or a RequestError."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise RequestError(HTTPStatus.BAD_REQUEST, 'body must be a JSON object {"texts": [...]}')
    texts, pairs = payload.get("texts"), payload.get("text_pairs")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise RequestError(HTTPStatus.BAD_REQUEST, '"texts" must be a non-empty list of strings')
    if len(texts) > max_texts:
        raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"at most {max_texts} texts per request")
    if pairs is not None and (
        not isinstance(pairs, list) or len(pairs) != len(texts) or not all(isinstance(t, str) for t in pairs)
    ):
        raise RequestError(HTTPStatus.BAD_REQUEST, '"text_pairs" must be a list of strings as long as "texts"')
    return texts, pairs


def predict(model: Any, texts: list[str], pairs: list[str] | None) -> dict[str, Any]:
    probabilities = np.asarray(model.predict_proba(texts, text_pairs=pairs), dtype=np.float64)  # (B, C)
    labels = list(model.labels)
    return {
        "labels": [labels[i] for i in probabilities.argmax(axis=1)],
        "probabilities": probabilities.round(6).tolist(),
        "label_names": labels,
    }


def make_handler(model: Any, max_body_bytes: int, max_texts: int) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "distill-serve/1"

        def _answer(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path != "/health":
                return self._answer(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"})
            self._answer(HTTPStatus.OK, {"status": "ok", "labels": list(model.labels)})

        def do_POST(self) -> None:  # noqa: N802
            try:
                body = self._read_body()
                if self.path != "/predict":
                    raise RequestError(HTTPStatus.NOT_FOUND, f"no route {self.path}")
                self._answer(HTTPStatus.OK, predict(model, *parse_request(body, max_texts)))
            except RequestError as exc:
                self._answer(exc.status, {"error": str(exc)})
            except Exception as exc:  # a failing model answers 500 and the server keeps serving
                self.log_error("predict failed: %r", exc)
                self._answer(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(exc).__name__}: {exc}"})

        def _read_body(self) -> bytes:
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                self.close_connection = True
                raise RequestError(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
            if int(length) > max_body_bytes:
                # The body stays unread, so this connection cannot carry another request.
                self.close_connection = True
                raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {max_body_bytes} bytes")
            return self.rfile.read(int(length))

    return Handler


def make_server(
    model_dir: str,
    host: str = "127.0.0.1",
    port: int = 8080,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_texts: int = MAX_TEXTS,
) -> ThreadingHTTPServer:
    """A server bound to ``(host, port)`` (port 0 picks a free one: read ``server.server_address``)."""
    model = load_exported(model_dir)
    return ThreadingHTTPServer((host, port), make_handler(model, max_body_bytes, max_texts))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve an exported text classifier over HTTP (POST /predict).")
    parser.add_argument("--model", default="/model", help="exported directory (default /model)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 inside a container)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES)
    parser.add_argument("--max-texts", type=int, default=MAX_TEXTS)
    args = parser.parse_args(argv)
    server = make_server(args.model, args.host, args.port, args.max_body_bytes, args.max_texts)
    host, port = server.server_address[:2]
    print(f"serving {args.model} on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
