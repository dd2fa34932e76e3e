"""A real local OpenAI-compatible server (``/v1/chat/completions`` with top-k logprobs) for teacher tests.

The server's first-token alternatives come from ``FirstTokenServer.reply(prompt)``, so a test chooses what the
"LLM" believes per prompt; the server records every request body it was sent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Alternatives = list[tuple[str, float]]


class LocalServer:
    """A threaded HTTP server on 127.0.0.1 (a free port) whose POST bodies (JSON) go to ``handle``; a context
    manager that serves while inside ``with``."""

    def __init__(self):
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    def handle(self, handler: BaseHTTPRequestHandler, body: dict) -> None:
        raise NotImplementedError

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                server.handle(self, json.loads(self.rfile.read(int(self.headers["Content-Length"]))))

        return Handler

    @staticmethod
    def send_json(handler: BaseHTTPRequestHandler, status: int, payload: bytes, headers: dict | None = None) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class FirstTokenServer(LocalServer):
    """``/v1/chat/completions`` answering one token with ``top_logprobs`` = ``reply(prompt)`` (None: no logprobs)."""

    def __init__(self, reply: Callable[[str], Alternatives | None]):
        super().__init__()
        self.reply = reply
        self.bodies: list[dict] = []

    @property
    def prompts(self) -> list[str]:
        return [body["messages"][-1]["content"] for body in self.bodies]

    def handle(self, handler: BaseHTTPRequestHandler, body: dict) -> None:
        with self.lock:
            self.bodies.append(body)
        status, payload = (200, self.completion(body)) if handler.path == "/v1/chat/completions" else (404, {})
        self.send_json(handler, status, json.dumps(payload).encode())

    def completion(self, body: dict) -> dict:
        alternatives = self.reply(body["messages"][-1]["content"])
        choice: dict = {"index": 0, "finish_reason": "length"}
        if alternatives is None:
            choice["message"] = {"role": "assistant", "content": "correct"}
        else:
            token = max(alternatives, key=lambda alt: alt[1])[0]
            choice["message"] = {"role": "assistant", "content": token}
            top = [{"token": t, "logprob": lp} for t, lp in alternatives]
            choice["logprobs"] = {
                "content": [{"token": token, "logprob": max(lp for _, lp in alternatives), "top_logprobs": top}]
            }
        return {"id": "chatcmpl-1", "object": "chat.completion", "choices": [choice]}


Step = tuple[str, Alternatives]  # (generated token, its top alternatives with log-probs)


class TextServer(LocalServer):
    """``/v1/chat/completions`` answering ``reply(prompt) -> (text, steps, finish_reason)``: one generated token per
    step, with the step's alternatives as ``top_logprobs`` when the request asks for them; counts the requests."""

    def __init__(self, reply: Callable[[str], tuple[str, list[Step], str]]):
        super().__init__()
        self.reply, self.requests = reply, 0

    def handle(self, handler: BaseHTTPRequestHandler, body: dict) -> None:
        with self.lock:
            self.requests += 1
        text, steps, finish = self.reply(body["messages"][-1]["content"])
        choice: dict = {"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": text}}
        if body.get("logprobs"):
            content = [{"token": token, "logprob": max(lp for _, lp in alts),
                        "top_logprobs": [{"token": t, "logprob": lp} for t, lp in alts[: body["top_logprobs"]]]}
                       for token, alts in steps]  # fmt: skip
            choice["logprobs"] = {"content": content}
        payload = {"id": "chatcmpl-1", "object": "chat.completion", "choices": [choice]}
        self.send_json(handler, 200, json.dumps(payload).encode())
