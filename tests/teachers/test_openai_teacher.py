"""The OpenAI-compatible teacher against a real local HTTP server that injects faults per prompt.

A prompt's fault is named in its text (``"... fault=429"``) and fires on the first attempt only, except
``always500`` and ``bad400`` which never succeed. The server counts attempts, successful answers and the largest
number of requests in flight.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler

import pytest

from suite.errors import TeacherError
from suite.teachers import OpenAICompatibleTeacher, TeacherOutputStore
from tests.fake_llm import LocalServer

TIMEOUT_S = 0.3
DELAY_S = 0.05  # every answer takes this long, so concurrent requests overlap


class FakeServer(LocalServer):
    def __init__(self):
        super().__init__()
        self.attempts: Counter[str] = Counter()
        self.answers: Counter[str] = Counter()
        self.authorization: set[str | None] = set()
        self.in_flight = self.max_in_flight = 0

    def handle(self, handler: BaseHTTPRequestHandler, body: dict) -> None:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.authorization.add(handler.headers.get("Authorization"))
        try:
            self.respond(handler, body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on a slow answer
        finally:
            self.leave(handler)

    def respond(self, handler: BaseHTTPRequestHandler, body: dict) -> None:
        chat = handler.path == "/v1/chat/completions"
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        with self.lock:
            self.attempts[prompt] += 1
            first = self.attempts[prompt] == 1
        fault = prompt.split("fault=")[1] if "fault=" in prompt else None
        time.sleep(DELAY_S)
        if fault == "always500" or (fault == "500" and first):
            return self.send(handler, 500, b'{"error": "boom"}')
        if fault == "bad400":
            return self.send(handler, 400, b'{"error": "bad request"}')
        if fault == "429" and first:
            return self.send(handler, 429, b'{"error": "slow down"}', {"Retry-After": "0"})
        if fault == "badjson" and first:
            return self.send(handler, 200, b'{"choices": [')
        if fault == "nochoices" and first:
            return self.send(handler, 200, b'{"id": "x", "object": "chat.completion"}')
        if fault == "slow" and first:
            # The client times out and moves on, so this request no longer counts as in flight.
            time.sleep(TIMEOUT_S * 0.5)
            self.leave(handler)
            time.sleep(TIMEOUT_S)
            return self.send(handler, 200, json.dumps(self.completion(prompt, body, chat)).encode())
        with self.lock:
            self.answers[prompt] += 1
        self.send(handler, 200, json.dumps(self.completion(prompt, body, chat)).encode())

    def leave(self, handler: BaseHTTPRequestHandler) -> None:
        """Count a request out once, before the client can read all of its answer and send the next one."""
        with self.lock:
            if not getattr(handler, "left", False):
                handler.left = True
                self.in_flight -= 1

    def send(self, handler: BaseHTTPRequestHandler, status: int, payload: bytes, headers: dict | None = None) -> None:
        self.leave(handler)  # before the client can read all of its answer and send the next request
        self.send_json(handler, status, payload, headers)

    @staticmethod
    def completion(prompt: str, body: dict, chat: bool) -> dict:
        tokens = ["answer", " to", f" {prompt.split()[0]}"]
        k = body.get("top_logprobs", 0) if chat else body.get("logprobs") or 0
        # Alternatives deliberately unsorted: the client must sort by logprob.
        alternatives = [[(f"alt{j}", -float(k - j)) for j in range(k)] for _ in tokens]
        choice: dict = {"index": 0, "finish_reason": "stop"}
        if chat:
            choice["message"] = {"role": "assistant", "content": "".join(tokens)}
            if k:
                content = [
                    {"token": t, "logprob": -0.1, "top_logprobs": [{"token": a, "logprob": lp} for a, lp in alts]}
                    for t, alts in zip(tokens, alternatives, strict=True)
                ]
                choice["logprobs"] = {"content": content}
        else:
            choice["text"] = "".join(tokens)
            if k:
                choice["logprobs"] = {"tokens": tokens, "top_logprobs": [dict(alts) for alts in alternatives]}
        return {"id": "cmpl-1", "choices": [choice]}


@pytest.fixture
def server():
    with FakeServer() as fake:
        yield fake


def make_teacher(url: str, **kwargs) -> OpenAICompatibleTeacher:
    options = dict(model="tiny", concurrency=2, timeout_s=TIMEOUT_S, max_retries=3, backoff_s=0.01)
    return OpenAICompatibleTeacher(url, **{**options, **kwargs})


FAULTS = ["slow", "429", "500", "badjson", "nochoices"]
PROMPTS = [f"p{i} fault={FAULTS[i]}" if i < len(FAULTS) else f"p{i} healthy" for i in range(8)]


@pytest.mark.parametrize("mode", ["chat", "completions"])
def test_every_prompt_is_answered_exactly_once_despite_faults(server, tmp_path, monkeypatch, mode):
    monkeypatch.setenv("TEST_TEACHER_KEY", "sk-secret")
    teacher = make_teacher(server.url + "/v1/", mode=mode, top_logprobs=3, api_key_env="TEST_TEACHER_KEY")
    store = TeacherOutputStore(tmp_path)
    outputs = store.run(teacher, PROMPTS, batch_size=4, progress=False)

    assert [o.text for o in outputs] == [f"answer to {p.split()[0]}" for p in PROMPTS]
    assert all(server.answers[p] == 1 for p in PROMPTS) and len(server.answers) == len(PROMPTS)
    assert server.attempts["p0 fault=slow"] == 2 and server.attempts["p7 healthy"] == 1
    assert server.max_in_flight == 2  # bounded by concurrency, and the bound is reached
    assert server.authorization == {"Bearer sk-secret"}

    out = outputs[0]
    assert out.topk_logprobs.shape == (3, 3) and out.topk_logprobs.dtype.is_floating_point
    assert out.meta["top_logprobs"][0] == [["alt2", -1.0], ["alt1", -2.0], ["alt0", -3.0]]
    assert out.topk_logprobs[0].tolist() == [-1.0, -2.0, -3.0]
    assert out.meta["finish_reason"] == "stop"

    before = sum(server.attempts.values())
    again = TeacherOutputStore(tmp_path).run(teacher, PROMPTS, batch_size=4, progress=False)
    assert sum(server.attempts.values()) == before  # the rerun never reaches the server
    assert [o.text for o in again] == [o.text for o in outputs]


def test_permanent_failure_stops_the_job_and_keeps_what_was_answered(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    prompts = ["a0 fine", "a1 fine", "a2 fine", "a3 fault=always500", "a4 fine", "a5 fine"]
    teacher = make_teacher(server.url, max_retries=2)
    store = TeacherOutputStore(tmp_path)
    with pytest.raises(TeacherError) as info:
        store.run(teacher, prompts, batch_size=2, progress=False)
    message = str(info.value)
    assert f"{server.url}/v1/chat/completions" in message and "HTTP 500" in message and "input 3" in message
    assert "after 3 attempts" in message and "a3" not in message and "sk-secret" not in message
    assert server.attempts["a3 fault=always500"] == 3
    assert len(store) == 3 and "a4 fine" not in server.attempts  # a0-a2 kept; the job stopped at a3's batch

    fixed = [p.replace("fault=always500", "fine") for p in prompts]
    store.run(teacher, fixed, batch_size=2, progress=False)
    assert all(server.answers[p] == 1 for p in fixed if p != "a3 fine")
    assert server.answers["a3 fine"] == 1 and len(store) == 6


def test_client_errors_fail_at_once_and_retry_after_is_honoured(server, tmp_path):
    teacher = make_teacher(server.url, backoff_s=5.0, max_retries=1)
    start = time.monotonic()
    assert teacher.answer(["r0 fault=429"])[0].text == "answer to r0"
    assert time.monotonic() - start < 2.0  # Retry-After: 0 replaced the 5 s backoff
    with pytest.raises(TeacherError, match=r"1 of 1 inputs failed; input 0: .*HTTP 400 \(not retried\)"):
        teacher.answer(["b0 fault=bad400"])
    assert server.attempts["b0 fault=bad400"] == 1


def test_unreachable_server_names_the_url(tmp_path):
    with FakeServer() as fake:
        url = fake.url
    teacher = make_teacher(url, max_retries=1)
    with pytest.raises(TeacherError, match=r"input 0: POST http://127\.0\.0\.1:\d+/v1/chat/completions: connection"):
        teacher.answer(["nobody home"])
