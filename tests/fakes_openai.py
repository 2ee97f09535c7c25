"""A fake OpenAI-compatible Chat Completions server on 127.0.0.1, scriptable per test.

A real HTTP server (Starlette under uvicorn, port 0, in a background thread) that the
real ``openai`` client talks to. Each test scripts the answers it wants, in order:

    server.script(Reply("a post"), Fail(429, retry_after_ms=10), Stall(1.0))

and reads back what the client sent in ``server.requests``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse as _JSONResponse
from starlette.routing import Route


class JSONResponse(_JSONResponse):
    """JSON with non-ASCII escaped, so a script can answer lone surrogates as a server may."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


@attrs.frozen
class Reply:
    """A 200 answer whose message content is ``content``."""

    content: str | None
    finish_reason: str = "stop"
    refusal: str | None = None
    model: str = "fake-model-2026"
    prompt_tokens: int = 50
    completion_tokens: int = 20


@attrs.frozen
class Fail:
    """An HTTP error answer, as OpenAI sends them."""

    status: int
    message: str = "scripted failure"
    retry_after_ms: int | None = None


@attrs.frozen
class Stall:
    """Wait ``seconds`` before answering (to make the client time out), then ``then``."""

    seconds: float
    then: Reply | Fail | None = None


Step = Reply | Fail | Stall | Callable[[dict[str, Any]], "Reply | Fail"]


@attrs.define
class Recorded:
    """One request the server received."""

    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body["messages"])


class FakeChatServer:
    """An OpenAI-compatible ``POST /v1/chat/completions`` on 127.0.0.1."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._steps: list[Step] = []
        self._fallback: Step | None = None
        self.requests: list[Recorded] = []
        self._ids = itertools.count(1)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """The ``base_url`` to give ``openai.AsyncOpenAI``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *steps: Step, then: Step | None = None) -> None:
        """Answer the next requests with ``steps`` in order, then with ``then`` (else 500)."""
        with self._lock:
            self._steps = list(steps)
            self._fallback = then
            self.requests = []

    def _next(self) -> Step:
        with self._lock:
            if self._steps:
                return self._steps.pop(0)
            if self._fallback is not None:
                return self._fallback
        return Fail(500, "the fake server's script is exhausted")

    async def _completions(self, request: Request) -> JSONResponse:
        body = await request.json()
        with self._lock:
            self.requests.append(Recorded(body, dict(request.headers)))
        step = self._next()
        if isinstance(step, Stall):
            await asyncio.sleep(step.seconds)
            step = step.then or Fail(500, "stalled")
        if callable(step) and not isinstance(step, (Reply, Fail)):
            step = step(body)
        if isinstance(step, Fail):
            headers: dict[str, str] = {}
            if step.retry_after_ms is not None:
                headers["retry-after-ms"] = str(step.retry_after_ms)
            return JSONResponse(
                {"error": {"message": step.message, "type": "fake", "code": None}},
                status_code=step.status,
                headers=headers,
            )
        assert isinstance(step, Reply)
        message: dict[str, Any] = {"role": "assistant", "content": step.content}
        if step.refusal is not None:
            message["refusal"] = step.refusal
        return JSONResponse(
            {
                "id": f"chatcmpl-{next(self._ids)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": step.model,
                "choices": [{"index": 0, "message": message, "finish_reason": step.finish_reason}],
                "usage": {
                    "prompt_tokens": step.prompt_tokens,
                    "completion_tokens": step.completion_tokens,
                    "total_tokens": step.prompt_tokens + step.completion_tokens,
                },
            }
        )

    def start(self) -> None:
        app = Starlette(routes=[Route("/v1/chat/completions", self._completions, methods=["POST"])])
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-openai", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake Chat Completions server did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)


@contextlib.contextmanager
def running_server() -> Iterator[FakeChatServer]:
    """A started fake server, stopped on exit."""
    server = FakeChatServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
