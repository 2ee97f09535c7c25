# Copyright 2026 engagequeue developers. Licensed under the MIT license.
"""``Scheduler``: sends due posts through a ``MessageTransport``, on time, once, in order.

The store does the hard guarantees (atomic claims, one task in flight per group, leases);
the scheduler is the loop around them:

- it sleeps until the earliest due task or ``poll_interval``, whichever is sooner, and
  wakes at once on ``wake()`` and on every schedule, edit or reconnect made through the
  same store object;
- it claims at most ``concurrency`` tasks at a time, sends each in its own asyncio task,
  and spaces the sends of one session by ``min_send_gap`` (plus random jitter);
- it records every outcome durably before looking at the next one: ``complete``,
  ``fail(retry_at=...)`` with a backoff from the ``RetryPolicy`` (no task waits out a
  backoff in memory), or ``release``;
- it runs ``recover_expired`` regularly, so the tasks of a crashed worker are retried
  once their lease ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import os
import random
import socket
import time
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final, Self

from ._abc import NextDueSource, SendRecorder, SessionStatus, SessionStatusSource, WakeupSource
from ._context import _CURRENT_TASK
from ._errors import (
    EngageQueueError,
    PermanentTransportError,
    SessionDisconnectedError,
    TaskConflict,
    TaskNotFound,
    TransportError,
    ValidationError,
)
from ._models import Task, TaskStatus
from ._retry import RetryPolicy
from ._times import parse_instant, utcnow

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._abc import MessageTransport, SendReceipt, TaskStore

__all__ = ["Scheduler"]

logger: Final = logging.getLogger("engagequeue")

_MIN_LEASE: Final = timedelta(minutes=5)
_BLOCKED_RECHECK: Final = 1.0
"""Seconds before looking again at due tasks that another worker's in-flight post blocks."""
_MAX_ERROR_BACKOFF: Final = 30.0
_WAKE_MARGIN: Final = 0.0001
"""Seconds added to a sleep until a due time, so the loop does not wake a hair early."""


def _seconds(value: object, field: str, *, allow_zero: bool = True) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ValidationError(
            f"{field} must be a number of seconds or a timedelta, got {value!r}", field=field
        )
    if not (seconds >= 0 if allow_zero else seconds > 0) or seconds == float("inf"):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValidationError(f"{field} must be finite and {bound}, got {value!r}", field=field)
    return float(seconds)


class _Phase(enum.Enum):
    WAITING = "waiting"  # claimed, waiting for the session's pacing slot
    SENDING = "sending"  # inside transport.send, or writing its outcome


class _Flight:
    """One claimed task this scheduler holds, and how it ended."""

    __slots__ = (
        "cancel_reason",
        "marked",
        "phase",
        "runner",
        "settled",
        "stale",
        "store_releases",
        "task",
    )

    def __init__(self, task: Task) -> None:
        self.task = task
        self.phase = _Phase.WAITING
        self.runner: asyncio.Task[bool] | None = None
        self.settled = False  # its outcome (complete, fail, release) was written
        self.store_releases = False  # store.session_disconnected releases it
        self.cancel_reason = "scheduler stopped"
        self.stale = False  # claimed while its session was being disconnected
        self.marked = False  # its claim also recorded the send (event sending)


class Scheduler:
    """Sends due posts from a ``TaskStore`` through a ``MessageTransport``.

    Run it in the background with ``async with Scheduler(store, transport):`` (or
    ``await start()`` / ``await stop()``), or drive it by hand with ``await run_once()``.

    Args:
        store: an open ``TaskStore``.
        transport: any ``MessageTransport`` (a gateway, ``InMemoryTransport``...).
        poll_interval: the longest the loop sleeps, in seconds (or a ``timedelta``). It
            also sleeps only until the earliest due task, and wakes at once on ``wake()``
            and on every schedule, edit or reconnect made through this store object, so
            this is only the fallback for changes made by other processes.
        clock: a zero-argument callable returning an aware ``datetime``: what "now" is for
            claims, lateness and retry times (default: the system's UTC time).
        min_send_gap: the least time between the starts of two sends of one session, in
            seconds or a ``timedelta`` (default 0: no pacing). Gateways ban accounts that
            burst; WAHA advises 30 to 60 s.
        send_gap_jitter: a random extra gap, from 0 to this many seconds, added to
            ``min_send_gap`` for each send, so sends never come at fixed intervals.
        max_lateness: a task that would leave more than this after its scheduled time
            (seconds, a ``timedelta`` or ``None`` for no limit) fails with a ``last_error``
            starting with ``expired`` instead of being sent.
        concurrency: how many claimed tasks this scheduler holds at once (sending or
            waiting for their session's pacing slot). One group's posts always leave one
            at a time, in order.
        send_timeout: seconds one ``transport.send`` may take; a timeout counts as a
            transient failure.
        lease: how long a claim lasts before ``recover_expired`` (of any worker) may hand
            the task out again. Default: at least 5 minutes, and more than
            ``send_timeout`` plus the longest pacing wait ``concurrency`` claims can
            create, so a live worker's claim never ends while it still holds the task.
        retry: the ``RetryPolicy`` for failed attempts (default ``RetryPolicy()``).
        worker_id: recorded with each claim (default: host, pid and a random suffix).
        stop_timeout: seconds ``stop()`` lets sends in flight finish before cancelling
            them and returning their tasks to pending.
        probe_sessions: for the sessions this scheduler marked disconnected after a
            ``SessionDisconnectedError``, ask ``transport.session_status`` (when the
            transport has it) every ``poll_interval`` and resume a session that reports
            ``connected``. Sessions disconnected by the host stay so until the host calls
            ``session_connected``.
        claim_ahead: the background loop claims a post up to this long (seconds or a
            ``timedelta``; default 50 ms) before it is due and holds it until its exact time,
            so the claim's own latency does not make the post late. It is never sent early.
            An edit or cancel in that last window gets ``TaskConflict``, as it would while
            the post is being sent. Without pacing and ``max_lateness`` the claim also
            records the post's ``sending`` event, which can then precede the send by up to
            ``claim_ahead``. ``run_once`` claims only what is due.
    """

    def __init__(
        self,
        store: TaskStore,
        transport: MessageTransport,
        *,
        poll_interval: float | timedelta = 30.0,
        clock: Callable[[], datetime] | None = None,
        min_send_gap: float | timedelta = 0.0,
        send_gap_jitter: float | timedelta = 0.0,
        max_lateness: float | timedelta | None = None,
        concurrency: int = 8,
        send_timeout: float | timedelta = 150.0,
        lease: timedelta | None = None,
        retry: RetryPolicy | None = None,
        worker_id: str | None = None,
        stop_timeout: float | timedelta = 30.0,
        probe_sessions: bool = True,
        claim_ahead: float | timedelta = 0.05,
    ) -> None:
        if not callable(getattr(store, "claim_due", None)):
            raise ValidationError("store must be a TaskStore", field="store")
        if not callable(getattr(transport, "send", None)):
            raise ValidationError("transport must have an async send() method", field="transport")
        if clock is not None and not callable(clock):
            raise ValidationError("clock must be a zero-argument callable", field="clock")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValidationError(
                f"concurrency must be an integer >= 1, got {concurrency!r}", field="concurrency"
            )
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ValidationError("retry must be a RetryPolicy", field="retry")
        if worker_id is not None and (not isinstance(worker_id, str) or not worker_id.strip()):
            raise ValidationError("worker_id must be a non-blank string", field="worker_id")
        self.store = store
        self.transport = transport
        self.poll_interval = _seconds(poll_interval, "poll_interval", allow_zero=False)
        self.min_send_gap = _seconds(min_send_gap, "min_send_gap")
        self.send_gap_jitter = _seconds(send_gap_jitter, "send_gap_jitter")
        self.max_lateness = (
            None
            if max_lateness is None
            else timedelta(seconds=_seconds(max_lateness, "max_lateness", allow_zero=False))
        )
        self.concurrency = concurrency
        self.send_timeout = _seconds(send_timeout, "send_timeout", allow_zero=False)
        self.stop_timeout = _seconds(stop_timeout, "stop_timeout")
        self.claim_ahead = timedelta(seconds=_seconds(claim_ahead, "claim_ahead"))
        if not isinstance(probe_sessions, bool):
            raise ValidationError("probe_sessions must be True or False", field="probe_sessions")
        self.probe_sessions = probe_sessions
        self.lease = self._check_lease(lease)
        self.retry = retry if retry is not None else RetryPolicy()
        self.worker_id = worker_id or (
            f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        )
        self._clock = clock or utcnow
        self._flights: dict[str, _Flight] = {}
        self._next_slot: dict[str, float] = {}
        # session -> number of the first claim started after it was disconnected: tasks of
        # the session from earlier claims (racing the disconnect) must not be sent.
        self._dropped: dict[str, int] = {}
        self._claims = 0
        self._probed: set[str] = set()  # sessions a SessionDisconnectedError dropped
        self._runner: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._last_recover = float("-inf")
        self._last_probe = float("-inf")
        self._finished = 0
        # What the store and transport offer beyond the original contract, asked once:
        # wake-ups, the next due time, sends recorded under the claim (both of our stores
        # offer all three), the gateway's session status.
        self._wakeups: WakeupSource | None = None
        self._next_due: NextDueSource | None = None
        self._recorder: SendRecorder | None = None
        self._status: SessionStatusSource | None = None
        self._find_capabilities(store, transport)

    def _find_capabilities(self, store: object, transport: object) -> None:
        if isinstance(store, WakeupSource):
            self._wakeups = store
        if isinstance(store, NextDueSource):
            self._next_due = store
        if isinstance(store, SendRecorder):
            self._recorder = store
        if isinstance(transport, SessionStatusSource):
            self._status = transport

    def _check_lease(self, lease: timedelta | None) -> timedelta:
        pacing = 0.0
        if self.min_send_gap or self.send_gap_jitter:
            per_send = self.min_send_gap + self.send_gap_jitter + self.send_timeout
            pacing = self.concurrency * per_send
        needed = timedelta(seconds=self.send_timeout + pacing)
        if lease is None:
            return max(_MIN_LEASE, needed + timedelta(minutes=1))
        if not isinstance(lease, timedelta) or lease <= timedelta(0):
            raise ValidationError(
                f"lease must be a positive timedelta, got {lease!r}", field="lease"
            )
        if lease <= timedelta(seconds=self.send_timeout):
            raise ValidationError(
                f"lease ({lease}) must be longer than send_timeout ({self.send_timeout} s), "
                "or another worker could take a task over while it is being sent",
                field="lease",
            )
        return lease

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Scheduler {self.worker_id} {state} in_flight={len(self._flights)}>"

    # -- public surface -------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the background loop runs (between ``start()`` and ``stop()``)."""
        return self._runner is not None

    @property
    def in_flight(self) -> int:
        """How many claimed tasks this scheduler holds right now."""
        return len(self._flights)

    def now(self) -> datetime:
        """The scheduler's clock, as an aware UTC ``datetime``."""
        return parse_instant(self._clock(), "clock()")

    def wake(self) -> None:
        """Make the background loop look for due tasks now instead of at its next poll.

        Safe to call from any thread, and when the loop is not running (then a no-op).
        """
        event, loop = self._wakeup, self._loop
        if event is None or loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(event.set)

    async def start(self) -> None:
        """Start the background loop; overdue tasks are claimed at once, oldest first.

        Idempotent while running.
        """
        if self._runner is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._stopping = False
        if self._wakeups is not None:
            self._wakeups.add_wakeup(self.wake)
        self._runner = asyncio.create_task(
            self._run(), name=f"engagequeue-scheduler {self.worker_id}"
        )
        logger.info("scheduler %s started (poll_interval=%s s)", self.worker_id, self.poll_interval)

    async def stop(self) -> None:
        """Stop gracefully: no new claims, sends in flight finish, the rest goes back to pending.

        Tasks still waiting for their session's pacing slot are released at once. Sends in
        flight get ``stop_timeout`` seconds to finish; then they are cancelled and their
        tasks released (the gateway may have accepted such a send: see docs/delivery.md).
        Idempotent.
        """
        runner = self._runner
        if runner is None:
            return
        self._stopping = True
        self.wake()
        if self._wakeups is not None:
            self._wakeups.remove_wakeup(self.wake)
        try:
            await runner
        finally:
            self._runner = None
            await self._drain(self.stop_timeout, "scheduler stopped")
            self._wakeup = None
            logger.info("scheduler %s stopped", self.worker_id)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def run_once(self) -> int:
        """Claim what is due now (by ``clock``) and dispatch it; return how many tasks finished.

        Runs until nothing due is left to claim and nothing is in flight, so the posts of
        one group due now all go, in order. A task that finished is completed or failed;
        one whose retry is due later, or that was released, is not counted.

        Raises:
            EngageQueueError: the background loop is running.
        """
        if self._runner is not None:
            raise EngageQueueError("run_once() cannot be used while the scheduler is running")
        self._loop = asyncio.get_running_loop()
        self._finished = 0
        await self._recover(force=True)
        await self._probe_sessions(force=True)
        while True:
            claimed = await self._claim()
            if not claimed and not self._flights:
                break
            if self._flights:
                runners = [f.runner for f in self._flights.values() if f.runner is not None]
                await asyncio.wait(runners, return_when=asyncio.FIRST_COMPLETED)
        return self._finished

    async def session_disconnected(self, session_id: str) -> int:
        """The session dropped: stop claiming its tasks and return its in-flight ones to pending.

        Stops this scheduler's posts of the session that are not sent yet and marks the
        session disconnected in the store, which releases its processing tasks (with their
        ``attempts`` unchanged) except the ones whose send is already under way: those
        finish on their own, completed if the gateway took the post, released if not, so
        a post that reached the gateway is not sent again.
        Returns how many tasks the store released.
        """
        return await self._disconnect(session_id, exclude=None)

    async def session_connected(self, session_id: str) -> None:
        """The session is back: its tasks can be claimed again; wakes the loop."""
        await self.store.session_connected(session_id)
        self._probed.discard(session_id)
        self._next_slot.pop(session_id, None)
        logger.info("session %s connected: its posts resume", session_id)
        self.wake()

    # -- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        errors = 0
        while not self._stopping:
            wakeup = self._wakeup
            assert wakeup is not None  # noqa: S101 - set by start()
            wakeup.clear()
            try:
                await self._recover()
                await self._probe_sessions()
                delay = await self._step()
                errors = 0
            except Exception:
                errors += 1
                delay = min(self.poll_interval, _MAX_ERROR_BACKOFF, 0.1 * 2**errors)
                logger.exception(
                    "scheduler %s: the store failed; trying again in %.1f s", self.worker_id, delay
                )
            if delay > 0 and not self._stopping and not wakeup.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await wakeup.wait()

    async def _step(self) -> float:
        """Claim what is due; return how long the loop may sleep before looking again."""
        free = self.concurrency - len(self._flights)
        if free <= 0:
            return self.poll_interval  # a finishing task wakes the loop
        # Claim what is due within claim_ahead: such a task waits in memory for its exact
        # time, so the claim's own latency does not delay the send.
        horizon = self.now() + self.claim_ahead
        claimed = await self._claim(horizon, free)
        if len(claimed) >= free:
            return 0.0  # more may be due
        if self._next_due is None:
            return self.poll_interval
        due = await self._next_due.next_due()
        if due is None:
            return self.poll_interval
        if due <= horizon:
            # Due at the claim but not claimed: its group has a post in flight. Ours wake
            # the loop when they finish; another worker's are looked at again shortly.
            return min(self.poll_interval, _BLOCKED_RECHECK)
        wait = (due - self.claim_ahead - self.now()).total_seconds()
        return 0.0 if wait <= 0 else min(self.poll_interval, wait + _WAKE_MARGIN)

    async def _claim(self, now: datetime | None = None, limit: int | None = None) -> list[Task]:
        free = self.concurrency - len(self._flights) if limit is None else limit
        if free <= 0:
            return []
        number = self._claims
        self._claims += 1
        at = now or self.now()
        send_by = self._sends_at_once_by(at)
        if send_by is not None and self._recorder is not None:
            tasks = await self._recorder.claim_due(
                now=at,
                limit=free,
                worker_id=self.worker_id,
                lease=self.lease,
                sending_due_by=send_by,
            )
        else:
            tasks = await self.store.claim_due(
                now=at, limit=free, worker_id=self.worker_id, lease=self.lease
            )
        for task in tasks:
            flight = _Flight(task)
            flight.stale = number < self._dropped.get(task.session_id, -1)
            flight.marked = send_by is not None and task.scheduled_at <= send_by
            self._flights[task.id] = flight
            runner = asyncio.create_task(self._fly(flight), name=f"engagequeue-send {task.id}")
            flight.runner = runner
            runner.add_done_callback(functools.partial(self._landed, flight))
        return tasks

    def _sends_at_once_by(self, horizon: datetime) -> datetime | None:
        """Tasks due by this instant leave as soon as their time comes, or None if unknown.

        Then the claim records their ``sending`` event itself (one write instead of two per
        post, and none between a post claimed ahead and its exact time). Not with pacing (a
        post may wait for its slot) nor ``max_lateness`` (a late one is failed, not sent):
        those posts record it when their send starts.
        """
        if self._recorder is None or self.min_send_gap or self.send_gap_jitter:
            return None
        if self.max_lateness is not None:
            return None
        return horizon

    def _landed(self, flight: _Flight, runner: asyncio.Task[bool]) -> None:
        self._flights.pop(flight.task.id, None)
        if not runner.cancelled():
            exc = runner.exception()
            if exc is not None:  # pragma: no cover - _fly catches everything but BaseException
                logger.error("scheduler: dispatch of task %s crashed", flight.task.id, exc_info=exc)
            elif runner.result():
                self._finished += 1
        self.wake()

    async def _recover(self, *, force: bool = False) -> None:
        mono = time.monotonic()
        if not force and mono - self._last_recover < self.poll_interval:
            return
        self._last_recover = mono
        count = await self.store.recover_expired(now=self.now())
        if count:
            logger.warning(
                "scheduler %s: %d task(s) whose worker's lease ended were recovered",
                self.worker_id,
                count,
            )

    async def _probe_sessions(self, *, force: bool = False) -> None:
        status_source = self._status
        if not self.probe_sessions or not self._probed or status_source is None:
            return
        mono = time.monotonic()
        if not force and mono - self._last_probe < self.poll_interval:
            return
        self._last_probe = mono
        for session_id in sorted(self._probed):
            try:
                state = await status_source.session_status(session_id)
            except Exception as exc:  # noqa: BLE001 - a failed probe only postpones the resume
                logger.info("session %s: status probe failed: %s", session_id, exc)
                continue
            if state == SessionStatus.CONNECTED:
                logger.info("session %s reports connected again", session_id)
                await self.session_connected(session_id)

    async def _drain(self, timeout: float, reason: str) -> None:  # noqa: ASYNC109 - internal
        """Release tasks waiting for pacing; give sends ``timeout`` seconds, then cancel them."""
        flights = list(self._flights.values())
        for flight in flights:
            if flight.phase is _Phase.WAITING and flight.runner is not None:
                flight.cancel_reason = reason
                flight.runner.cancel()
        runners = [f.runner for f in flights if f.runner is not None]
        if runners:
            _, late = await asyncio.wait(runners, timeout=timeout or None)
            for runner in late:
                runner.cancel()
            if late:
                logger.warning(
                    "scheduler %s: %d send(s) did not finish within %s s and were cancelled",
                    self.worker_id,
                    len(late),
                    timeout,
                )
            await asyncio.gather(*runners, return_exceptions=True)
        for flight in flights:
            if not flight.settled and not flight.store_releases:
                await self._settle(flight, "release", flight.cancel_reason)

    async def _disconnect(self, session_id: str, exclude: _Flight | None) -> int:
        mine = [
            f
            for f in self._flights.values()
            if f.task.session_id == session_id and f is not exclude and f.runner is not None
        ]
        # Posts not sent yet (waiting for their time or pacing slot) stop at once; the
        # store releases them below.
        waiting = [f for f in mine if f.phase is _Phase.WAITING]
        for flight in waiting:
            flight.store_releases = True
            flight.cancel_reason = "session disconnected"
            if flight.runner is not None:
                flight.runner.cancel()
        # A send already under way may have reached the gateway: it stays processing and
        # finishes on its own (completed if the gateway took it, released if the session
        # was gone), so a post that left is never released and sent again.
        under_way = [f.task.id for f in mine if f.phase is _Phase.SENDING]
        released = await self.store.session_disconnected(session_id, keep=under_way)
        self._dropped[session_id] = self._claims
        if waiting:
            await asyncio.gather(*(f.runner for f in waiting if f.runner), return_exceptions=True)
        logger.warning(
            "session %s disconnected: %d task(s) back to pending until it reconnects",
            session_id,
            released,
        )
        return released

    # -- one task -------------------------------------------------------------------------

    async def _fly(self, flight: _Flight) -> bool:
        """Dispatch one claimed task; return whether it finished (completed or failed)."""
        task = flight.task
        try:
            if flight.stale:
                return await self._settle(flight, "release", "session disconnected")
            if not await self._wait_turn(task):
                return await self._expire(flight)
            flight.phase = _Phase.SENDING
            receipt = await self._send(flight)
            if receipt is None:  # no longer this worker's task: not sent
                return False
        except asyncio.CancelledError:
            if not flight.store_releases:
                await asyncio.shield(self._settle(flight, "release", flight.cancel_reason))
            raise
        except SessionDisconnectedError as exc:
            logger.warning("task %s: session %s dropped: %s", task.id, task.session_id, exc)
            flight.store_releases = True  # _disconnect's store call releases it
            self._probed.add(task.session_id)
            await self._disconnect(task.session_id, exclude=flight)
            return False
        except Exception as exc:  # noqa: BLE001 - any transport error is one failed attempt
            return await self._failed_attempt(flight, exc)
        message_id = getattr(receipt, "message_id", None)
        if message_id is not None and not isinstance(message_id, str):
            message_id = str(message_id)
        return await self._settle(flight, "complete", message_id)

    async def _wait_turn(self, task: Task) -> bool:
        """Wait for the task's time and its session's pacing slot; False if it expired."""
        early = (task.scheduled_at - self.now()).total_seconds()
        if early > 0:  # claimed ahead (claim_ahead): leave at its time, not before
            await asyncio.sleep(early)
        if self._expired(task):
            return False
        await self._pace(task.session_id)
        return not self._expired(task)

    async def _mark_sending(self, flight: _Flight) -> bool:
        """Write the ``sending`` event; False (and no send) if the task is no longer ours.

        The store checks that this worker still holds the claim, so a worker whose lease
        ended and whose task another worker took does not send it a second time. When the
        store cannot be written, nothing is sent: the lease returns the task later.
        """
        if flight.marked or self._recorder is None:
            return True
        task = flight.task
        try:
            await self._recorder.mark_sending(task.id, worker_id=self.worker_id)
        except (TaskConflict, TaskNotFound) as exc:
            flight.settled = True
            logger.warning(
                "task %s: not sending it, it is no longer this worker's: %s",
                task.id,
                exc,
                extra={"task_id": task.id, "event": "not_sent"},
            )
            return False
        except Exception:
            flight.settled = True
            logger.exception(
                "task %s: could not record its send in the store, so it is not sent now; "
                "its lease (%s) will return it",
                task.id,
                self.lease,
            )
            return False
        return True

    async def _send(self, flight: _Flight) -> SendReceipt | None:
        """Record the send, then send; None if the task is no longer this worker's."""
        if not await self._mark_sending(flight):
            return None
        task = flight.task
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "task %s sending (session=%s group=%s attempt %d of %d)",
                task.id,
                task.session_id,
                task.group_id,
                task.attempts + 1,
                task.max_attempts,
                extra={"task_id": task.id, "event": "sending"},
            )
        token = _CURRENT_TASK.set(task)
        try:
            async with asyncio.timeout(self.send_timeout):
                return await self.transport.send(task.session_id, task.group_id, task.payload)
        finally:
            _CURRENT_TASK.reset(token)

    def _expired(self, task: Task) -> bool:
        return self.max_lateness is not None and self.now() - task.scheduled_at > self.max_lateness

    async def _expire(self, flight: _Flight) -> bool:
        late = self.now() - flight.task.scheduled_at
        reason = (
            f"expired: would leave {_human(late)} after its scheduled time, "
            f"more than max_lateness ({_human(self.max_lateness or timedelta(0))})"
        )
        return await self._settle(flight, "fail", reason)

    async def _pace(self, session_id: str) -> None:
        if not self.min_send_gap and not self.send_gap_jitter:
            return
        now = time.monotonic()
        slot = max(now, self._next_slot.get(session_id, now))
        gap = self.min_send_gap + random.uniform(0, self.send_gap_jitter)  # noqa: S311 - not crypto
        self._next_slot[session_id] = slot + gap
        if slot > now:
            await asyncio.sleep(slot - now)

    async def _failed_attempt(self, flight: _Flight, exc: Exception) -> bool:
        task = flight.task
        attempt = task.attempts + 1
        if isinstance(exc, TimeoutError):
            error = f"timeout: the send took longer than {self.send_timeout} s"
        else:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if not isinstance(exc, TransportError | TimeoutError):
            logger.error(
                "task %s: unexpected error from %s.send (attempt %d of %d)",
                task.id,
                type(self.transport).__name__,
                attempt,
                task.max_attempts,
                exc_info=exc,
                extra={"task_id": task.id, "event": "send_error"},
            )
        lateness = (self.now() - task.scheduled_at).total_seconds()
        decision = self.retry.decide(exc, attempt, lateness)
        retry_at = None
        retryable = not isinstance(exc, PermanentTransportError)
        if retryable and decision.retry and attempt < task.max_attempts:
            retry_at = self.now() + timedelta(seconds=decision.delay)
            logger.info(
                "task %s: attempt %d of %d failed (%s); retry in %.1f s",
                task.id,
                attempt,
                task.max_attempts,
                error,
                decision.delay,
                extra={"task_id": task.id, "event": "retry_scheduled"},
            )
        return await self._settle(flight, "fail", error, retry_at)

    async def _settle(
        self, flight: _Flight, operation: str, value: str | None, retry_at: datetime | None = None
    ) -> bool:
        """Write the task's outcome; return whether it finished. Store errors are logged.

        A store error leaves the task processing: its lease ends and it is retried then.
        """
        task = flight.task
        try:
            if operation == "complete":
                await self.store.complete(task.id, message_id=value, worker_id=self.worker_id)
                flight.settled = True
                return True
            if operation == "fail":
                done = await self.store.fail(
                    task.id, value or "failed", retry_at=retry_at, worker_id=self.worker_id
                )
                flight.settled = True
                return done.status is not TaskStatus.PENDING
            await self.store.release(task.id, value or "released", worker_id=self.worker_id)
            flight.settled = True
        except (TaskConflict, TaskNotFound) as exc:
            flight.settled = True
            logger.warning(
                "task %s changed while it was being sent (%s); could not %s it: %s",
                task.id,
                getattr(exc, "status", "deleted"),
                operation,
                exc,
            )
        except Exception:
            logger.exception(
                "task %s: could not %s it in the store; its lease (%s) will return it",
                task.id,
                operation,
                self.lease,
            )
        return False


def _human(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 120:  # noqa: PLR2004 - plain thresholds
        return f"{seconds:.1f} s"
    if seconds < 7200:  # noqa: PLR2004
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
