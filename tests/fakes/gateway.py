"""What both fake gateways share: recorded requests, scripted answers, media files, webhooks."""

from __future__ import annotations

import asyncio
import re
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from .http import DROP, HttpServer, Request, Response, _Drop

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass
class Delivered:
    """A message the fake gateway accepted for WhatsApp."""

    session: str
    chat_id: str
    kind: str
    body: dict[str, Any]
    message_id: str


@dataclass
class Scripted:
    """An answer given to the next send request(s), instead of the normal one."""

    response: Response | _Drop
    times: int = 1
    then_normal_after: float | None = None  # a slow answer that still delivers
    then: Callable[[], None] | None = None  # called when the answer is given


@dataclass
class MediaFile:
    content_type: str
    size: int


@dataclass
class FakeGateway:
    """Base of FakeWaha / FakeEvolution: a real HTTP server on 127.0.0.1."""

    api_key: str | None = "test-key"
    requests: list[Request] = field(default_factory=list)
    delivered: list[Delivered] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    media: dict[str, MediaFile] = field(default_factory=dict)
    on_delivered: list[Callable[[Delivered], None]] = field(default_factory=list)
    held: int = 0
    _gate: asyncio.Event | None = None
    _script: deque[Scripted] = field(default_factory=deque)
    _server: HttpServer | None = None
    _counter: int = 0

    @property
    def url(self) -> str:
        assert self._server is not None, "use the fake gateway as an async context manager"
        return self._server.url

    async def __aenter__(self) -> Self:
        self._server = HttpServer(self._handle)
        await self._server.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        await self._server.__aexit__(*exc_info)

    # -- test controls ----------------------------------------------------------------------

    def answer_next(
        self, status: int, body: Any, *, times: int = 1, then: Callable[[], None] | None = None
    ) -> None:
        """Answer the next ``times`` send requests with ``status`` and JSON ``body``.

        ``then`` is called each time the answer is given (to change the gateway's state).
        """
        self._script.append(Scripted(Response.json(status, body), times, then=then))

    def drop_next(self, *, times: int = 1) -> None:
        """Close the connection of the next ``times`` send requests without answering."""
        self._script.append(Scripted(DROP, times))

    def delay_next(self, seconds: float, *, times: int = 1) -> None:
        """Deliver the next ``times`` sends normally but answer only after ``seconds``."""
        self._script.append(Scripted(Response(0), times, then_normal_after=seconds))

    def add_media(self, name: str, content_type: str, size: int = 1000) -> str:
        """Serve a media file (HEAD and GET) at ``/media/{name}``; return its URL."""
        self.media[name] = MediaFile(content_type, size)
        return f"{self.url}/media/{name}"

    def hold(self) -> None:
        """Hold every send request that arrives from now on, unanswered, until ``release``."""
        if self._gate is None:
            self._gate = asyncio.Event()

    def release(self) -> None:
        """Let the held send requests go on (they see the gateway's state as it is now)."""
        if self._gate is not None:
            self._gate.set()
            self._gate = None

    async def gate(self) -> None:
        """Called by a send before it looks at the session: waits while sends are held."""
        gate = self._gate
        if gate is not None:
            self.held += 1
            try:
                await gate.wait()
            finally:
                self.held -= 1

    def record(self, delivered: Delivered) -> None:
        self.delivered.append(delivered)
        for callback in self.on_delivered:
            callback(delivered)

    def next_id(self) -> str:
        self._counter += 1
        return f"3EB0{self._counter:018X}"

    def sends(self, kind: str | None = None) -> list[Request]:
        return [r for r in self.requests if r.method == "POST" and (kind is None or kind in r.path)]

    # -- request handling -------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response | _Drop:
        if request.path.startswith("/media/"):
            item = self.media.get(request.path.removeprefix("/media/"))
            if item is None:
                return Response(404, b"not found", {"content-type": "text/plain"})
            return Response(200, b"\0" * item.size, {"content-type": item.content_type})
        self.requests.append(request)
        return await self.route(request)

    async def route(self, request: Request) -> Response | _Drop:
        raise NotImplementedError

    async def scripted_or(
        self, request: Request, normal: Callable[[], Response]
    ) -> Response | _Drop:
        """Apply the next scripted answer to a send, or give the normal one."""
        if not self._script:
            return normal()
        scripted = self._script[0]
        scripted.times -= 1
        if scripted.times <= 0:
            self._script.popleft()
        if scripted.then is not None:
            scripted.then()
        if scripted.then_normal_after is not None:
            response = normal()
            response.delay = scripted.then_normal_after
            return response
        return scripted.response

    def check(self, problems: list[str], where: str) -> None:
        self.violations.extend(f"{where}: {p}" for p in problems)


def match(pattern: str, path: str) -> re.Match[str] | None:
    return re.fullmatch(pattern, path)


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` until it holds, or fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)
