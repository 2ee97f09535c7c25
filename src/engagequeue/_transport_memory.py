# Copyright 2026 engagequeue developers. Licensed under the MIT license.
"""Transports without a gateway: ``InMemoryTransport`` (the test fake) and ``ConsoleTransport``.

``InMemoryTransport`` is public API for users' tests, like httpx's ``MockTransport``: it
records every send, and simulates slow sends, dropped sessions and gateway failures.
``ConsoleTransport`` prints each post, for the quick start and for trying a bot out.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TextIO

import attrs

from ._abc import SendReceipt, SessionStatus
from ._context import current_task
from ._errors import SessionDisconnectedError, ValidationError
from ._models import Payload
from ._times import utcnow

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ConsoleTransport", "InMemoryTransport", "SentMessage"]


@attrs.frozen
class SentMessage:
    """One post an ``InMemoryTransport`` accepted.

    Attributes:
        session_id: the WhatsApp session it was sent through.
        group_id: the group it was sent to.
        payload: what was sent.
        message_id: the id returned in the ``SendReceipt``.
        sent_at: when the send was accepted (aware UTC, from the transport's clock).
        task_id: the id of the task being dispatched (``engagequeue.current_task()``), or
            ``None`` when ``send`` was called outside a ``Scheduler``.
        attempt: the attempt's number, from 1 (``task.attempts + 1``), or ``None``.
    """

    session_id: str
    group_id: str
    payload: Payload
    message_id: str
    sent_at: datetime
    task_id: str | None = None
    attempt: int | None = None


def _seconds(value: float | timedelta, field: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
        raise ValidationError(
            f"{field} must be a number of seconds or a timedelta >= 0, got {value!r}", field=field
        )
    return float(seconds)


class _Failure:
    __slots__ = ("exc", "remaining")

    def __init__(self, exc: BaseException, remaining: int) -> None:
        self.exc = exc
        self.remaining = remaining


class InMemoryTransport:
    """A ``MessageTransport`` that keeps every post in memory: the fake for tests and demos.

    Every session starts connected. Each ``send`` waits ``delay`` seconds (a slow gateway),
    then raises ``SessionDisconnectedError`` if the session is disconnected (checked
    before and after the delay), else raises the next failure queued with ``fail_next``,
    else records a ``SentMessage`` in ``sent`` and returns its receipt.

    Args:
        delay: seconds (or a ``timedelta``) each send takes; can be changed later through
            the ``delay`` attribute.
        clock: a zero-argument callable returning an aware ``datetime``, for ``sent_at``
            (default: the system's UTC time).

    Example::

        transport = InMemoryTransport()
        async with Scheduler(store, transport, poll_interval=1):
            await store.schedule("bot", "team@g.us", Payload.text("hi"), utcnow())
            [message] = await transport.wait_for_sends(1)
        assert message.payload.content == "hi"
    """

    def __init__(
        self,
        *,
        delay: float | timedelta = 0.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.delay = _seconds(delay, "delay")
        self.sent: list[SentMessage] = []
        self.calls = 0
        self._clock = clock or utcnow
        self._disconnected: set[str] = set()
        self._failures: deque[_Failure] = deque()
        self._changed: asyncio.Event | None = None

    def __repr__(self) -> str:
        return (
            f"InMemoryTransport(sent={len(self.sent)}, disconnected={sorted(self._disconnected)})"
        )

    # -- simulation controls --------------------------------------------------------------

    def disconnect(self, session_id: str) -> None:
        """Drop the session: its sends raise ``SessionDisconnectedError`` until ``connect``."""
        self._disconnected.add(session_id)

    def connect(self, session_id: str) -> None:
        """Reconnect the session (sessions start connected)."""
        self._disconnected.discard(session_id)

    def is_connected(self, session_id: str) -> bool:
        """Whether sends through ``session_id`` go through."""
        return session_id not in self._disconnected

    async def session_status(self, session_id: str) -> SessionStatus:
        """The session's status, as a gateway transport would report it."""
        return (
            SessionStatus.CONNECTED if self.is_connected(session_id) else SessionStatus.DISCONNECTED
        )

    def fail_next(self, exc: BaseException | type[BaseException], times: int = 1) -> None:
        """Make the next ``times`` sends raise ``exc`` (after any failures queued before).

        Args:
            exc: an exception instance, or a class (instantiated with a short message).
            times: how many sends raise it, at least 1.
        """
        if isinstance(exc, type) and issubclass(exc, BaseException):
            exc = exc("failure injected by InMemoryTransport.fail_next")
        if not isinstance(exc, BaseException):
            raise ValidationError(f"exc must be an exception, got {exc!r}", field="exc")
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValidationError(f"times must be an integer >= 1, got {times!r}", field="times")
        self._failures.append(_Failure(exc, times))

    @property
    def pending_failures(self) -> int:
        """How many queued failures are still to be raised."""
        return sum(f.remaining for f in self._failures)

    def clear(self) -> None:
        """Forget the sends and the queued failures; reconnect every session."""
        self.sent.clear()
        self.calls = 0
        self._disconnected.clear()
        self._failures.clear()

    # -- reading --------------------------------------------------------------------------

    def sent_to(
        self, session_id: str | None = None, group_id: str | None = None
    ) -> list[SentMessage]:
        """The sends to a session and/or group, in the order they were accepted."""
        return [
            m
            for m in self.sent
            if (session_id is None or m.session_id == session_id)
            and (group_id is None or m.group_id == group_id)
        ]

    async def wait_for_sends(self, count: int, *, timeout: float = 5.0) -> list[SentMessage]:  # noqa: ASYNC109 - a plain number reads best in tests
        """Wait until at least ``count`` posts were sent in all, and return ``sent``.

        Raises:
            TimeoutError: fewer than ``count`` sends after ``timeout`` seconds; the message
                says how many there were.
        """
        try:
            async with asyncio.timeout(timeout):
                while len(self.sent) < count:
                    await self._event().wait()
        except TimeoutError:
            raise TimeoutError(f"{len(self.sent)} of {count} sends after {timeout} s") from None
        return list(self.sent)

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    # -- MessageTransport -----------------------------------------------------------------

    def _check_connected(self, session_id: str) -> None:
        if session_id in self._disconnected:
            raise SessionDisconnectedError(f"session {session_id!r} is disconnected")

    async def send(self, session_id: str, group_id: str, payload: Payload) -> SendReceipt:
        """Record the post (see the class docstring for the order of checks)."""
        self.calls += 1
        self._check_connected(session_id)
        if self.delay:
            await asyncio.sleep(self.delay)
            self._check_connected(session_id)
        if self._failures:
            failure = self._failures[0]
            failure.remaining -= 1
            if failure.remaining <= 0:
                self._failures.popleft()
            raise failure.exc.with_traceback(None)
        task = current_task()
        message = SentMessage(
            session_id=session_id,
            group_id=group_id,
            payload=payload,
            message_id=f"inmemory-{len(self.sent) + 1}",
            sent_at=self._clock(),
            task_id=None if task is None else task.id,
            attempt=None if task is None else task.attempts + 1,
        )
        self.sent.append(message)
        event, self._changed = self._changed, None
        if event is not None:
            event.set()
        return SendReceipt(message_id=message.message_id)


def _describe(payload: Payload) -> str:
    kind = payload.media_type.value
    if payload.media_url is None:
        return f"[{kind}] {payload.content}"
    caption = f" | {payload.content}" if payload.content else ""
    return f"[{kind}] {payload.media_url}{caption}"


class ConsoleTransport:
    """A ``MessageTransport`` that prints each post instead of sending it.

    One line per post: the UTC time, the session, the group, the media type and the text
    (or the media URL and caption).

    Args:
        file: where to print (default: ``sys.stdout`` at the time of each send).
        clock: a zero-argument callable returning an aware ``datetime`` for the time shown.
    """

    def __init__(
        self, file: TextIO | None = None, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self._file = file
        self._clock = clock or utcnow
        self.count = 0

    async def send(self, session_id: str, group_id: str, payload: Payload) -> SendReceipt:
        """Print the post and return a receipt with a ``console-N`` message id."""
        self.count += 1
        stamp = self._clock().strftime("%H:%M:%S.%f")[:-3]
        out = self._file if self._file is not None else sys.stdout
        print(f"{stamp} {session_id} -> {group_id} {_describe(payload)}", file=out, flush=True)
        return SendReceipt(message_id=f"console-{self.count}")
