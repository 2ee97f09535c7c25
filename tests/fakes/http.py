"""A minimal HTTP/1.1 server on 127.0.0.1 (asyncio streams), fully under the test's control.

Unlike a full server it can answer late or drop a connection without a response, which
is what a gateway under strain does. Keep-alive is supported, so httpx's pool is exercised.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Self


@dataclass
class Request:
    method: str
    path: str  # as sent, percent-encoded
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    @classmethod
    def json(cls, status: int, data: Any, *, headers: dict[str, str] | None = None) -> Response:
        return cls(
            status,
            json.dumps(data).encode(),
            {"content-type": "application/json; charset=utf-8", **(headers or {})},
        )


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP = _Drop()
"""Handler result: close the connection without answering."""

Handler = Callable[[Request], Awaitable["Response | _Drop"]]


class HttpServer:
    """Serve ``handler`` on a free port of 127.0.0.1 while the context is open."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""
        self.connections = 0

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        self.connections += 1
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            # Cancelled at shutdown (a slow answer still waiting): end quietly.
            pass
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        line = await reader.readline()
        if not line.strip():
            return False
        method, target, _version = line.decode("latin-1").split()
        headers: dict[str, str] = {}
        while True:
            header = await reader.readline()
            if header in {b"\r\n", b"\n", b""}:
                break
            name, _, value = header.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await reader.readexactly(length) if length else b""
        path, _, query = target.partition("?")
        result = await self._handler(Request(method, path, query, headers, body))
        if isinstance(result, _Drop):
            writer.transport.abort()
            return False
        if result.delay:
            await asyncio.sleep(result.delay)
        reason = http.HTTPStatus(result.status).phrase
        out_headers = {"content-length": str(len(result.body)), **result.headers}
        head = f"HTTP/1.1 {result.status} {reason}\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in out_headers.items()
        )
        writer.write(head.encode("latin-1") + b"\r\n")
        if method != "HEAD":
            writer.write(result.body)
        await writer.drain()
        return headers.get("connection", "").lower() != "close"


async def loopback_resolver(host: str, port: int) -> list[str]:
    """A transport ``resolver`` mapping every media host to 127.0.0.1: tests never use DNS.

    Use it with ``allow_private_media=True``: loopback is refused otherwise.
    """
    return ["127.0.0.1"]
