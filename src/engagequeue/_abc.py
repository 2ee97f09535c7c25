"""The contract between engagequeue's parts: what every store and transport guarantees.

``TaskStore``, ``RecurringTaskStore`` and ``MessageTransport`` are ``typing.Protocol``s.
The scheduler, the HTTP adapter and the tests rely on exactly the text below; an
implementation of your own (see docs/extending.md) must keep every promise made here.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol, Self, runtime_checkable

import attrs

from ._models import Page, Payload, Task, TaskEvent, TaskStatus
from ._recurrence import Recurrence, RecurrenceStatus

__all__ = [
    "MessageTransport",
    "NextDueSource",
    "RecurringTaskStore",
    "ScheduleItem",
    "SendReceipt",
    "SendRecorder",
    "SessionStatus",
    "SessionStatusSource",
    "TaskStore",
    "WakeupSource",
]

ScheduleItem = tuple[str, str, Payload, "datetime | str"]
"""``(session_id, group_id, payload, scheduled_at)`` for ``TaskStore.schedule_many``."""


@runtime_checkable
class TaskStore(Protocol):
    """Durable, transactional storage of scheduled posts.

    Guarantees every implementation keeps:

    - Instants are taken as aware datetimes or ISO 8601 strings with an offset (naive or
      offset-less input raises ``ValidationError``) and returned as aware UTC datetimes.
    - Bad input raises ``ValidationError`` and writes nothing. Each method is atomic:
      its state change and the ``TaskEvent`` rows recording it commit together or not at all.
    - A task is *due* when ``scheduled_at <= now``.
    - ``claim_due`` moves due ``pending`` tasks of *connected* sessions to ``processing``
      in one transaction: oldest ``scheduled_at`` first (then id); only the oldest pending
      task of a (session, group) can be claimed, and never while another task of that
      (session, group) is processing, so a group's posts leave one at a time, in order;
      no task is ever handed to two callers, whatever the number of processes.
    - ``edit`` and ``cancel`` apply to ``pending`` tasks only and are a single conditional
      update, so a racing claim and edit cannot both win; otherwise ``TaskConflict`` with
      the current status. ``complete`` and ``fail`` apply to ``processing`` tasks only.
    - Every change of a task adds one to its ``version`` (1 when scheduled). ``edit`` and
      ``cancel`` given ``if_version`` apply only to that version, checked in the same
      conditional update; otherwise ``VersionConflict`` (a ``TaskConflict``), so two
      concurrent read-modify-write edits never lose one of the changes.
    - ``complete``, ``fail`` and ``release`` given ``worker_id`` apply only while that
      worker holds the task's current claim; any other worker (one whose lease ended and
      whose task was claimed again) gets ``TaskConflict`` and nothing changes.
    - Unknown task ids raise ``TaskNotFound``; unknown sessions ``SessionNotFound``.
    - ``attempts`` counts finished send attempts: ``complete``, ``fail`` and an ended lease
      add one; a claim or a release (disconnect, stop) does not.
    - ``schedule``, ``edit`` and ``session_connected`` call every wake-up callback added
      with ``add_wakeup`` after they commit.
    """

    async def open(self) -> None:
        """Open the store, creating or migrating its schema."""

    async def close(self) -> None:
        """Release the store's connections. Idempotent."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    def add_wakeup(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from the event loop) after each schedule, edit or reconnect."""

    def remove_wakeup(self, callback: Callable[[], None]) -> None:
        """Stop calling ``callback``; no error if it was not added."""

    async def add_session(self, session_id: str) -> None:
        """Register a session; idempotent. A new session starts connected."""

    async def session_connected(self, session_id: str) -> None:
        """Mark the session connected, so its due tasks can be claimed again."""

    async def session_disconnected(self, session_id: str, *, keep: Collection[str] = ()) -> int:
        """Mark the session disconnected and return its processing tasks to pending.

        Returns how many tasks were released; their ``attempts`` are unchanged. Tasks whose
        ids are in ``keep`` (a worker's sends already under way) stay processing, so a post
        that reached the gateway is completed rather than sent again.
        """

    async def delete_session(self, session_id: str) -> None:
        """Delete the session and, by cascade, its tasks and their events."""

    async def schedule(
        self,
        session_id: str,
        group_id: str,
        payload: Payload,
        scheduled_at: datetime | str,
        *,
        max_attempts: int = 3,
        detail: Mapping[str, Any] | None = None,
    ) -> Task:
        """Add a pending task; ``detail`` is merged into its ``created`` event."""

    async def schedule_many(
        self, items: Iterable[ScheduleItem], *, max_attempts: int = 3
    ) -> list[Task]:
        """Add many pending tasks in one transaction; all are validated before any is written."""

    async def get(self, task_id: str) -> Task:
        """Return the task."""

    async def edit(
        self,
        task_id: str,
        *,
        payload: Payload | None = None,
        scheduled_at: datetime | str | None = None,
        if_version: int | None = None,
    ) -> Task:
        """Change a pending task's payload and/or time (at least one).

        With ``if_version``, only while the task is at that version, else
        ``VersionConflict``.
        """

    async def cancel(self, task_id: str, *, if_version: int | None = None) -> Task:
        """Cancel a pending task (with ``if_version``: only at that version)."""

    async def claim_due(
        self,
        *,
        now: datetime | str | None = None,
        limit: int = 1,
        worker_id: str | None = None,
        lease: timedelta = timedelta(minutes=5),
        sending_due_by: datetime | str | None = None,
    ) -> list[Task]:
        """Atomically move up to ``limit`` due tasks to processing, with a lease.

        ``sending_due_by`` (an addition to the original contract): the caller sends at once
        the claimed tasks due by then, so the claim also records their ``sending`` event
        (as ``mark_sending`` would, in the same transaction).
        """

    async def complete(
        self, task_id: str, *, message_id: str | None = None, worker_id: str | None = None
    ) -> Task:
        """Mark a processing task completed.

        With ``worker_id``, ``TaskConflict`` (and no change) unless that worker holds the
        current claim.
        """

    async def mark_sending(self, task_id: str, *, worker_id: str | None = None) -> None:
        """Record (event ``sending``) that a processing task's send starts; no status change.

        With ``worker_id``, ``TaskConflict`` unless that worker still holds the claim. The
        ``Scheduler`` calls it when the store has it (an addition to the original contract)
        and logs the step; the store only writes the event.
        """

    async def fail(
        self,
        task_id: str,
        error: str,
        *,
        retry_at: datetime | str | None = None,
        worker_id: str | None = None,
    ) -> Task:
        """Record a failed attempt: pending at ``retry_at`` while attempts remain, else failed.

        With ``worker_id``, ``TaskConflict`` (and no change) unless that worker holds the
        current claim.
        """

    async def release(self, task_id: str, reason: str, *, worker_id: str | None = None) -> Task:
        """Return a processing task to pending without counting an attempt.

        With ``worker_id``, only while that worker holds the current claim.
        """

    async def recover_expired(self, *, now: datetime | str | None = None) -> int:
        """Return processing tasks whose lease ended to pending (or failed); return how many."""

    async def next_due(self) -> datetime | None:
        """The earliest ``scheduled_at`` among pending tasks of connected sessions, if any."""

    async def history(
        self,
        session_id: str,
        group_id: str,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        status: TaskStatus | str | Collection[TaskStatus | str] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page:
        """Tasks of a group with ``start <= scheduled_at < end``, by ``scheduled_at`` then id."""

    async def events(self, task_id: str) -> list[TaskEvent]:
        """The task's audit trail, oldest first."""


@runtime_checkable
class RecurringTaskStore(Protocol):
    """A store's recurring posts: a rule in a zone whose occurrences are ordinary tasks.

    Both built-in stores are a ``TaskStore`` and a ``RecurringTaskStore``. Guarantees:

    - ``rule`` is an RFC 5545 ``RRULE`` value without ``DTSTART``, ``timezone`` an IANA
      name; occurrences are the rule's wall-clock times in that zone from ``starts_at``. A
      wall time skipped by a DST gap is sent at the first instant after the gap; one that
      occurs twice is sent once, at its first occurrence. Rules more frequent than once a
      minute, unknown rule parts, unknown zones and naive times raise ``ValidationError``
      naming the field, and nothing is written.
    - While a recurrence is active, its next occurrence is exactly one pending ``Task``
      (``recurrence_id`` set), editable and cancellable like any task. It is created once,
      in the transaction that claims or cancels the one before, however many
      stores, processes or hosts run; ``history(..., recurrence_id=...)`` lists one
      recurrence's occurrences.
    - The occurrence that follows one claimed or cancelled is the first after both it and
      the current time: after a downtime nothing is sent in a burst, and each occurrence
      passed over is a ``skipped`` event on the recurrence.
    - Every change and its recurrence events commit together. Unknown ids raise
      ``RecurrenceNotFound``; pausing, resuming or editing an ended recurrence raises
      ``RecurrenceConflict``. ``delete_session`` deletes the session's recurrences too.
    """

    async def add_recurrence(
        self,
        session_id: str,
        group_id: str,
        payload: Payload,
        rule: str,
        *,
        timezone: str,
        starts_at: datetime | str | None = None,
        until: datetime | str | None = None,
        count: int | None = None,
        max_attempts: int = 3,
    ) -> Recurrence:
        """Add an active recurrence and its first occurrence (``starts_at`` defaults to now).

        The first occurrence is the first rule time at or after both ``starts_at`` and now;
        ``until`` and ``count`` bound the series.
        """

    async def get_recurrence(self, recurrence_id: str) -> Recurrence:
        """Return the recurrence."""

    async def recurrences(
        self,
        session_id: str,
        group_id: str,
        *,
        status: RecurrenceStatus | str | Collection[RecurrenceStatus | str] | None = None,
    ) -> list[Recurrence]:
        """The group's recurrences, oldest first, optionally of some statuses only."""

    async def edit_recurrence(
        self,
        recurrence_id: str,
        *,
        payload: Payload | None = None,
        rule: str | None = None,
        timezone: str | None = None,
        until: datetime | str | None = None,
        count: int | None = None,
    ) -> Recurrence:
        """Change a recurrence (at least one argument) for every occurrence not yet claimed.

        The pending occurrence follows, unless it was edited on its own (``edit`` on the
        task): then it keeps its own edit. A new rule or zone moves it to the first
        occurrence of the new schedule after the previous occurrence and now; an
        exhausted ``until`` or ``count`` ends the recurrence.
        """

    async def pause_recurrence(self, recurrence_id: str) -> Recurrence:
        """Cancel the pending occurrence and create no more until resumed; idempotent."""

    async def resume_recurrence(self, recurrence_id: str) -> Recurrence:
        """Make the first occurrence after now the pending one; idempotent."""

    async def end_recurrence(self, recurrence_id: str) -> Recurrence:
        """End for good (status ``ended``), cancelling the pending occurrence; idempotent."""

    async def recurrence_events(self, recurrence_id: str) -> list[TaskEvent]:
        """The recurrence's audit trail, oldest first (``task_id`` holds the recurrence id).

        Kinds: ``created``, ``edited``, ``paused``, ``resumed``, ``scheduled`` (an
        occurrence became a task, its id in the detail), ``skipped`` and ``ended``.
        """


@attrs.frozen
class SendReceipt:
    """What a transport returns for an accepted send: at least the gateway's message id."""

    message_id: str
    raw: Mapping[str, Any] | None = attrs.field(default=None, eq=False, repr=False)


class SessionStatus(enum.StrEnum):
    """A WhatsApp session's state as a gateway reports it."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    UNKNOWN = "unknown"


@runtime_checkable
class MessageTransport(Protocol):
    """Sends one post to one WhatsApp group.

    ``send`` returns a ``SendReceipt`` once the gateway accepted the message, or raises:
    ``TransientTransportError`` (try again later), ``PermanentTransportError`` (retrying
    will not help) or ``SessionDisconnectedError`` (the session dropped; the post waits for
    the session to reconnect). Any other exception counts as a failed attempt.
    """

    async def send(self, session_id: str, group_id: str, payload: Payload) -> SendReceipt:
        """Send ``payload`` to ``group_id`` through the WhatsApp session ``session_id``."""


# -- capabilities beyond the original contract ----------------------------------------------
# Each is a small protocol of its own, so that a store or transport written against the
# original contract still works: the Scheduler asks once, with isinstance, which ones an
# object offers, and otherwise falls back to polling, two writes per send, or no probing.


@runtime_checkable
class WakeupSource(Protocol):
    """A store that calls back after each write that may make a post due sooner."""

    def add_wakeup(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from the event loop) after each schedule, edit or reconnect."""

    def remove_wakeup(self, callback: Callable[[], None]) -> None:
        """Stop calling ``callback``; no error if it was not added."""


@runtime_checkable
class NextDueSource(Protocol):
    """A store that tells when its next post is due, so a worker sleeps exactly that long."""

    async def next_due(self) -> datetime | None:
        """The earliest ``scheduled_at`` among pending tasks of connected sessions, if any."""


@runtime_checkable
class SendRecorder(Protocol):
    """A store that records each send's start (event ``sending``) under the claim's holder.

    Such a store also takes ``claim_due(..., sending_due_by=)``: the claim then records
    the ``sending`` event of the tasks due by that instant in its own transaction.
    """

    async def mark_sending(self, task_id: str, *, worker_id: str | None = None) -> None:
        """Record that a processing task's send starts; ``TaskConflict`` if not the holder's."""

    async def claim_due(
        self,
        *,
        now: datetime | str | None = None,
        limit: int = 1,
        worker_id: str | None = None,
        lease: timedelta = timedelta(minutes=5),
        sending_due_by: datetime | str | None = None,
    ) -> list[Task]:
        """``TaskStore.claim_due``, also recording the sends due by ``sending_due_by``."""


@runtime_checkable
class SessionStatusSource(Protocol):
    """A transport that can ask its gateway whether a session is connected."""

    async def session_status(self, session_id: str) -> SessionStatus:
        """The session's state as the gateway reports it."""
