"""A teacher served behind an OpenAI-compatible HTTP API (vLLM, TGI, Ollama, llama.cpp server).

Failure policy: timeouts, connection errors, HTTP 429, HTTP 5xx and malformed responses (bad JSON, missing fields)
are retried with exponential backoff ``backoff_s * 2**attempt``, or after the server's ``Retry-After`` when it sends
one; other 4xx fail at once. A prompt that still fails does not discard its batch: ``answer()`` answers every other
prompt and then raises :class:`~suite.teachers.base.TeacherBatchError` carrying the successes, which
:meth:`TeacherOutputStore.run` stores before it stops the job. Error messages name the URL, the status and the
prompt's position, never the prompt text (it may hold patient data) nor the API key.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import torch

from suite.errors import TeacherError
from suite.teachers.base import TeacherBatchError, TeacherOutput


class _Retryable(Exception):
    """A failure worth another attempt; the message is safe to show (no prompt text)."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


class _Permanent(Exception):
    """A failure that another attempt will not fix (4xx other than 429)."""


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header, given either as seconds or as an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _top_logprobs_chat(choice: dict[str, Any]) -> list[list[list[Any]]] | None:
    """``choices[0].logprobs.content[i].top_logprobs[j].{token, logprob}`` -> ``[[[token, logprob], ...], ...]``."""
    content = (choice.get("logprobs") or {}).get("content")
    if not content:
        return None
    return [[[alt["token"], float(alt["logprob"])] for alt in step["top_logprobs"]] for step in content]


def _top_logprobs_completions(choice: dict[str, Any]) -> list[list[list[Any]]] | None:
    """``choices[0].logprobs.top_logprobs`` (one ``{token: logprob}`` dict per step) -> the same nested lists."""
    steps = (choice.get("logprobs") or {}).get("top_logprobs")
    if not steps:
        return None
    return [[[token, float(lp)] for token, lp in step.items()] for step in steps]


class OpenAICompatibleTeacher:
    """Chat or completion answers from ``{base_url}/v1/...``, optionally with each token's top-k logprobs.

    Token strings (not ids, which are server-specific) land in ``meta["top_logprobs"]`` as
    ``[[[token, logprob], ...] per generated token]``, sorted by logprob; ``topk_logprobs`` is the matching
    ``(T, top_logprobs)`` float32 tensor, padded with ``-inf`` where a server returned fewer alternatives.

    ``teacher_id`` is the served model name: serve different weights under different names. ``base_url`` may end in
    ``/v1`` or not.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        mode: Literal["chat", "completions"] = "chat",
        system_prompt: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        top_logprobs: int = 0,
        concurrency: int = 4,
        timeout_s: float = 60.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
    ):
        if mode not in ("chat", "completions"):
            raise TeacherError(f"OpenAI-compatible teacher mode must be 'chat' or 'completions', got '{mode}'")
        if concurrency < 1:
            raise TeacherError(f"OpenAI-compatible teacher concurrency must be >= 1, got {concurrency}")
        root = base_url.rstrip("/")
        root = root[: -len("/v1")] if root.endswith("/v1") else root
        self.url = f"{root}/v1/{'chat/completions' if mode == 'chat' else 'completions'}"
        self.model, self.api_key_env, self.mode = model, api_key_env, mode
        self.system_prompt, self.max_tokens, self.temperature = system_prompt, max_tokens, temperature
        self.top_logprobs, self.concurrency = top_logprobs, concurrency
        self.timeout_s, self.max_retries, self.backoff_s = timeout_s, max_retries, backoff_s
        self.teacher_id = f"openai:{model}"

    def settings(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "system_prompt": self.system_prompt,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_logprobs": self.top_logprobs,
        }

    # -- requests ------------------------------------------------------------------------------------------------

    def _body(self, prompt: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "max_tokens": self.max_tokens, "temperature": self.temperature}
        if self.mode == "completions":
            if not isinstance(prompt, str):
                raise TeacherError("completions mode takes string prompts")
            body["prompt"] = prompt if self.system_prompt is None else f"{self.system_prompt}\n\n{prompt}"
            if self.top_logprobs:
                body["logprobs"] = self.top_logprobs
            return body
        if isinstance(prompt, str):
            messages = [{"role": "user", "content": prompt}]
        elif isinstance(prompt, list):
            messages = list(prompt)
        else:
            raise TeacherError("chat mode takes a string or a list of chat messages")
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt is not None else []
        body["messages"] = system + messages
        if self.top_logprobs:
            body["logprobs"], body["top_logprobs"] = True, self.top_logprobs
        return body

    def _parse(self, data: Any) -> TeacherOutput:
        """Turn a response body into an output; a missing field is a malformed (retryable) response."""
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] if self.mode == "chat" else choice["text"]
            if not isinstance(text, str):
                raise TypeError("text is not a string")
            parse = _top_logprobs_chat if self.mode == "chat" else _top_logprobs_completions
            top = parse(choice) if self.top_logprobs else None
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
            raise _Retryable(f"malformed response ({type(error).__name__}: {error})") from None
        meta: dict[str, Any] = {"finish_reason": choice.get("finish_reason")}
        if top is None:
            return TeacherOutput(text=text, meta=meta)
        top = [sorted(step, key=lambda pair: -pair[1])[: self.top_logprobs] for step in top]
        meta["top_logprobs"] = top
        values = torch.full((len(top), self.top_logprobs), float("-inf"))  # (T, k)
        for t, step in enumerate(top):
            values[t, : len(step)] = torch.tensor([lp for _, lp in step])
        return TeacherOutput(text=text, topk_logprobs=values, meta=meta)

    def _post(self, client: Any, body: dict[str, Any]) -> TeacherOutput:
        import httpx

        try:
            response = client.post(self.url, json=body)
        except httpx.TimeoutException:
            raise _Retryable(f"timeout after {self.timeout_s}s") from None
        except httpx.TransportError as error:
            raise _Retryable(f"connection error ({type(error).__name__})") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status}", _retry_after(response.headers.get("retry-after")))
        if status >= 400:
            raise _Permanent(f"HTTP {status}")
        try:
            data = response.json()
        except ValueError:
            raise _Retryable(f"HTTP {status} with malformed JSON") from None
        return self._parse(data)

    def _ask(self, client: Any, prompt: Any) -> TeacherOutput:
        """One prompt with bounded retries; raises TeacherError naming the URL and the last status."""
        body = self._body(prompt)
        for attempt in range(self.max_retries + 1):
            try:
                return self._post(client, body)
            except _Permanent as error:
                raise TeacherError(f"POST {self.url}: {error} (not retried)") from None
            except _Retryable as error:
                if attempt == self.max_retries:
                    raise TeacherError(f"POST {self.url}: {error} after {attempt + 1} attempts") from None
                wait = error.retry_after if error.retry_after is not None else self.backoff_s * 2**attempt
                time.sleep(wait)
        raise AssertionError("unreachable")

    def answer(self, inputs: list[Any]) -> list[TeacherOutput]:
        """Answers in input order, at most ``concurrency`` requests in flight.

        Raises :class:`TeacherBatchError` (with the answered outputs) when some prompts fail for good; its message
        names the first failed prompt's position, the URL and the last status.
        """
        import httpx

        key = os.environ.get(self.api_key_env)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        with (
            httpx.Client(headers=headers, timeout=self.timeout_s, limits=limits) as client,
            ThreadPoolExecutor(max_workers=self.concurrency) as pool,
        ):
            futures = [pool.submit(self._ask, client, prompt) for prompt in inputs]
            answered: dict[int, TeacherOutput] = {}
            failures: dict[int, str] = {}
            for i, future in enumerate(futures):
                try:
                    answered[i] = future.result()
                except TeacherError as error:
                    failures[i] = str(error)
        if failures:
            raise TeacherBatchError(answered, failures, len(inputs))
        return [answered[i] for i in range(len(inputs))]
