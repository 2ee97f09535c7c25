"""The store algorithm, written once for every engine.

``StoreBase`` holds each public ``TaskStore`` operation: its checks, the state change it
asks for (derived from the state table in ``_state``), the events it records, its logs and
its wake-ups. An engine subclasses it and supplies connection handling, migrations, the
claim, its fast paths (inserts, completes, reads) and ``_run_change``: a driver that runs
the statements of a ``change_flow`` in one transaction.

A flow is a generator: it yields engine-neutral steps (SQL with ``%s`` for a parameter,
``%t`` for an instant parameter and ``{tasks}``, ``{sessions}``, ``{columns}``, ``{lock}``,
``{in_flight}`` for the engine's names), receives each step's result and returns the
events it recorded. The same flow drives SQLite's synchronous connection and PostgreSQL's
asynchronous one, so an operation cannot drift between them.
"""

from __future__ import annotations

import functools
from collections.abc import (
    Awaitable,
    Callable,
    Collection,
    Generator,
    Iterable,
    Mapping,
    Sequence,
)
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar

import attrs

from ._errors import SessionNotFound
from ._models import Page, Payload, Task, TaskEvent, TaskStatus, check_identifier
from ._state import RETRY_SQL, TRANSITIONS
from ._store_args import (
    NewTask,
    check_detail,
    check_error,
    check_keep,
    check_optional_text,
    check_version,
    now_or,
    prepare_claim,
    prepare_edit,
    prepare_history,
    prepare_many,
    prepare_task,
    sending_bound,
)
from ._store_ops import (
    Event,
    conditional_where,
    fail_detail,
    log_event,
    log_events,
    message_detail,
    refusal,
)
from ._times import isoformat, parse_instant
from ._wakeup import WakeupMixin

if TYPE_CHECKING:
    from ._store_args import Clock, HistoryQuery, OnExpired

__all__ = [
    "Claim",
    "Count",
    "Events",
    "Flow",
    "FollowUp",
    "Rows",
    "StoreBase",
    "Tasks",
    "change_flow",
    "drive",
    "drive_async",
    "render",
    "update_flow",
]


# -- the steps a flow yields -----------------------------------------------------------------


@attrs.frozen
class Statement:
    """One SQL statement of a flow and its parameters."""

    sql: str
    params: tuple[Any, ...]


@attrs.frozen
class Tasks(Statement):
    """Run ``sql`` (ending ``RETURNING {columns}`` or selecting them); send back the tasks."""


@attrs.frozen
class Rows(Statement):
    """Run ``sql``; send back its rows as tuples (text and integer columns only)."""


@attrs.frozen
class Count(Statement):
    """Run ``sql``; send back how many rows it changed."""


@attrs.frozen
class Events:
    """Insert these events, all at ``at``; send back nothing."""

    at: datetime
    events: tuple[Event, ...]


@attrs.frozen
class FollowUp:
    """Let the recurrences react to ``tasks`` (``reason``: ``cancelled``, ``edited``).

    A cancelled occurrence creates the following one; an edited one marks the recurrence's
    next occurrence as changed by hand. Send back whether a new task was created.
    """

    tasks: tuple[Task, ...]
    at: datetime
    reason: str


Step = Tasks | Rows | Count | Events | FollowUp
Flow = Generator[Step, Any, tuple[list[Event], bool]]
"""A write's statements: yields steps, returns its events and whether it created a task."""


_T = TypeVar("_T")


def drive(flow: Generator[Step, Any, _T], perform: Callable[[Step], Any]) -> _T:
    """Run a flow to its end with a synchronous ``perform(step) -> result``."""
    result: Any = None
    while True:
        try:
            step = flow.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        result = perform(step)


async def drive_async(
    flow: Generator[Step, Any, _T], perform: Callable[[Step], Awaitable[Any]]
) -> _T:
    """Run a flow to its end with an asynchronous ``perform``."""
    sent: Any = None
    while True:
        try:
            current = flow.send(sent)
        except StopIteration as finished:
            return finished.value  # type: ignore[no-any-return]
        sent = await perform(current)


@functools.lru_cache(maxsize=512)
def render(sql: str, names: tuple[tuple[str, str], ...]) -> str:
    """A flow's engine-neutral SQL in an engine's terms.

    Each ``(name, value)`` of ``names`` is replaced in order (``%t`` before ``%s``). Flows
    use a small fixed set of statements, so the result is cached.
    """
    for name, value in names:
        sql = sql.replace(name, value)
    return sql


# -- what a conditional change touches -------------------------------------------------------


@attrs.frozen
class OneTask:
    """The task ``task_id``, still held by ``worker_id`` and at ``version`` when given."""

    task_id: str
    worker_id: str | None = None
    version: int | None = None


@attrs.frozen
class SessionTasks:
    """The session's tasks in the operation's source status, but those in ``keep``.

    The session is marked disconnected in the same transaction.
    """

    session_id: str
    keep: tuple[str, ...] = ()


@attrs.frozen
class ExpiredTasks:
    """Tasks in the source status whose lease ended by ``by``."""

    by: datetime


Target = OneTask | SessionTasks | ExpiredTasks


def _no_detail(_task: Task, _before: Task | None) -> Mapping[str, Any]:
    return {}


@attrs.frozen
class Change:
    """One operation of the state table, applied to its target in one transaction.

    ``assignments`` (neutral SQL) sets every changed column but ``updated_at`` and
    ``version``; ``detail`` gives each changed task's event detail (``before``: the task as
    it was, read first when ``read_before``). ``follow_up`` names the recurrences' reaction.
    """

    operation: str
    target: Target
    assignments: str
    params: tuple[Any, ...] = ()
    detail: Callable[[Task, Task | None], Mapping[str, Any]] = _no_detail
    read_before: bool = False
    follow_up: str | None = None


def _where(operation: str, target: Target) -> tuple[str, tuple[Any, ...]]:
    source = TRANSITIONS[operation].source.value
    if isinstance(target, OneTask):
        checks = tuple(v for v in (target.worker_id, target.version) if v is not None)
        where = conditional_where(
            source,
            "%s",
            worker_id=target.worker_id is not None,
            version=target.version is not None,
        )
        return where, (target.task_id, *checks)
    if isinstance(target, SessionTasks):
        spared = ", ".join(["%s"] * len(target.keep))
        where = f"session_id = %s AND status = '{source}'"
        return where + (f" AND id NOT IN ({spared})" if spared else ""), (
            target.session_id,
            *target.keep,
        )
    return f"status = '{source}' AND lease_expires_at <= %t", (target.by,)


def update_flow(
    operation: str, target: Target, assignments: str, params: tuple[Any, ...]
) -> Generator[Step, Any, list[Task]]:
    """Apply ``assignments`` to the target's tasks in the source status; return them.

    One statement; the version grows by one.

    A ``OneTask`` that matches nothing raises the refusal: ``TaskNotFound``,
    ``VersionConflict`` or ``TaskConflict`` naming the current status or holder.
    """
    where, where_params = _where(operation, target)
    table = "{in_flight}" if isinstance(target, SessionTasks) else "{tasks}"
    tasks: list[Task] = yield Tasks(
        f"UPDATE {table} SET {assignments}, version = version + 1 "
        f"WHERE {where} RETURNING {{columns}}",
        (*params, *where_params),
    )
    if not tasks and isinstance(target, OneTask):
        rows = yield Rows(
            "SELECT status, worker_id, version FROM {tasks} WHERE id = %s", (target.task_id,)
        )
        raise refusal(
            target.task_id,
            operation,
            rows[0] if rows else None,
            worker_id=target.worker_id,
            version=target.version,
        )
    return tasks


def change_flow(change: Change, now: datetime) -> Flow:
    """The statements of ``change`` at ``now``: the update, its events, the follow-up.

    Raises the refusal when its one task is not in the source status, not held by the
    worker or not at the version.
    """
    transition = TRANSITIONS[change.operation]
    target = change.target
    if isinstance(target, SessionTasks):
        marked = yield Count(
            "UPDATE {sessions} SET connected = %s, updated_at = %t WHERE id = %s",
            (False, now, target.session_id),
        )
        if not marked:
            raise SessionNotFound(target.session_id)
    before: Task | None = None
    if change.read_before and isinstance(target, OneTask):
        found = yield Tasks("SELECT {columns} FROM {tasks} WHERE id = %s{lock}", (target.task_id,))
        before = found[0] if found else None
    tasks: list[Task] = yield from update_flow(
        change.operation,
        target,
        f"{change.assignments}, updated_at = %t",
        (*change.params, now),
    )
    tasks.sort(key=lambda t: t.id)  # one order on every engine, whatever RETURNING gives
    events = [Event(t, transition.event_for(t.status), change.detail(t, before)) for t in tasks]
    yield Events(now, tuple(events))
    created = False
    if change.follow_up is not None and tasks:
        created = yield FollowUp(tuple(tasks), now, change.follow_up)
    return events, bool(created)


# -- the operations' changes, derived from the state table -----------------------------------

_FREE: Final = "worker_id = NULL, lease_expires_at = NULL"
"""A task leaving processing no longer has a holder or a lease."""

_CANCEL: Final = TRANSITIONS["cancel"].status_sql()
_RELEASE: Final = f"{TRANSITIONS['release'].status_sql()}, {_FREE}"
_RETRYING: Final = f"%t IS NOT NULL AND {RETRY_SQL}"
_FAIL: Final = (
    f"{TRANSITIONS['fail'].status_sql(_RETRYING)}, "
    f"scheduled_at = CASE WHEN {_RETRYING} THEN %t ELSE scheduled_at END, "
    f"attempts = attempts + 1, last_error = %s, {_FREE}"
)
_EXPIRE: Final = (
    f"{TRANSITIONS['expire'].status_sql(f'%s = 0 AND {RETRY_SQL}')}, attempts = attempts + 1, "
    "last_error = 'expired: lease of worker ' || coalesce(worker_id, '?') || ' ended', "
    f"{_FREE}"
)


def _expire_detail(task: Task, _before: Task | None) -> Mapping[str, Any]:
    return {"to": task.status.value}


@attrs.frozen
class Claim:
    """A validated ``claim_due``: what an engine's claim needs."""

    at: datetime
    limit: int
    worker_id: str | None
    expires: datetime
    send_by: datetime | None

    @property
    def detail(self) -> dict[str, Any]:
        """The ``claimed`` events' detail."""
        return {"worker_id": self.worker_id, "lease_expires_at": isoformat(self.expires)}


class StoreBase(WakeupMixin):
    """Every ``TaskStore`` operation, once; engines supply the hooks below.

    Subclasses set ``_clock`` and ``on_expired`` and implement the ``_`` hooks.
    """

    _clock: Clock
    on_expired: OnExpired

    # -- engine hooks -----------------------------------------------------------------------

    async def _run_change(self, change: Change, *, notify: bool) -> tuple[list[Event], bool]:
        """Run ``change_flow(change, now)`` in one write transaction; return its result."""
        raise NotImplementedError

    async def _add_session(self, session_id: str) -> None:
        raise NotImplementedError

    async def _mark_connected(self, session_id: str) -> None:
        """Set the session connected; ``SessionNotFound`` if unknown."""
        raise NotImplementedError

    async def _delete_session(self, session_id: str) -> None:
        raise NotImplementedError

    async def _is_connected(self, session_id: str) -> bool:
        raise NotImplementedError

    async def _insert(
        self, tasks: Sequence[NewTask], detail: Mapping[str, Any], *, single: bool
    ) -> list[Task]:
        """Insert pending tasks and their ``created`` events in one transaction."""
        raise NotImplementedError

    async def _get(self, task_id: str) -> Task:
        raise NotImplementedError

    async def _claim(self, claim: Claim) -> tuple[list[Event], bool]:
        """Claim, record ``claimed`` (and ``sending``) events; created a following task?"""
        raise NotImplementedError

    async def _complete(self, task_id: str, message_id: str | None, worker: str | None) -> Task:
        raise NotImplementedError

    async def _mark_sending(self, task_id: str, worker: str | None) -> None:
        raise NotImplementedError

    async def _next_due(self) -> datetime | None:
        raise NotImplementedError

    async def _history(self, query: HistoryQuery) -> Page:
        raise NotImplementedError

    async def _events(self, task_id: str) -> list[TaskEvent]:
        raise NotImplementedError

    async def open(self) -> None:
        """Open the store (create or migrate its tables); idempotent."""
        raise NotImplementedError

    async def close(self) -> None:
        """Close the store; idempotent."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- sessions ---------------------------------------------------------------------------

    async def add_session(self, session_id: str) -> None:
        """Register a session; idempotent. A new session starts connected."""
        await self._add_session(check_identifier(session_id, "session_id"))

    async def session_connected(self, session_id: str) -> None:
        """Mark the session connected and wake the schedulers using this store."""
        await self._mark_connected(check_identifier(session_id, "session_id"))
        self._wake()

    async def session_disconnected(self, session_id: str, *, keep: Collection[str] = ()) -> int:
        """Mark the session disconnected; its processing tasks go back to pending.

        Returns how many tasks were released. Their ``attempts`` are unchanged. Tasks whose
        ids are in ``keep`` (sends already under way) stay processing for their worker
        to complete, fail or release.
        """
        target = SessionTasks(check_identifier(session_id, "session_id"), check_keep(keep))
        change = Change(
            "release",
            target,
            _RELEASE,
            detail=lambda _t, _b: {"reason": "session disconnected"},
        )
        events, _ = await self._run_change(change, notify=False)
        log_events(events)
        return len(events)

    async def delete_session(self, session_id: str) -> None:
        """Delete the session and, by cascade, its tasks and their events."""
        await self._delete_session(check_identifier(session_id, "session_id"))

    async def is_connected(self, session_id: str) -> bool:
        """Whether the session is marked connected; ``SessionNotFound`` if it is unknown."""
        return await self._is_connected(check_identifier(session_id, "session_id"))

    # -- scheduling and editing -------------------------------------------------------------

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
        """Add a pending task; unknown session raises ``SessionNotFound``.

        ``detail`` (JSON-serialisable) is recorded in the task's ``created`` event.
        """
        prepared = prepare_task(session_id, group_id, payload, scheduled_at, max_attempts)
        extra = check_detail(detail)
        task = (await self._insert((prepared,), extra, single=True))[0]
        log_events((Event(task, "created", extra),))
        self._wake()
        return task

    async def schedule_many(
        self,
        items: Iterable[tuple[str, str, Payload, datetime | str]],
        *,
        max_attempts: int = 3,
    ) -> list[Task]:
        """Add many pending tasks in one transaction; one bad item rejects them all."""
        prepared = prepare_many(items, max_attempts)
        if not prepared:
            return []
        tasks = await self._insert(prepared, {}, single=False)
        for t in tasks:
            log_event("created", t.id, t.session_id, t.group_id, "pending", {})
        self._wake()
        return tasks

    async def get(self, task_id: str) -> Task:
        """Return the task, or raise ``TaskNotFound``."""
        return await self._get(check_identifier(task_id, "task_id"))

    async def edit(
        self,
        task_id: str,
        *,
        payload: Payload | None = None,
        scheduled_at: datetime | str | None = None,
        if_version: int | None = None,
    ) -> Task:
        """Change a pending task's payload and/or time; ``TaskConflict`` if not pending.

        With ``if_version``, only while the task is at that version (else
        ``VersionConflict``), checked in the same statement.
        """
        plan = prepare_edit(task_id, payload, scheduled_at)
        expected = check_version(if_version)
        columns = [*plan.columns]
        if plan.scheduled_at is not None:
            columns.append(("scheduled_at", plan.scheduled_at))

        def detail(_task: Task, before: Task | None) -> Mapping[str, Any]:
            if plan.scheduled_at is None or before is None:
                return plan.detail
            return {**plan.detail, "previous_scheduled_at": isoformat(before.scheduled_at)}

        change = Change(
            "edit",
            OneTask(task_id, version=expected),
            ", ".join(f"{c} = {'%t' if c == 'scheduled_at' else '%s'}" for c, _ in columns),
            tuple(v for _, v in columns),
            detail,
            read_before=plan.scheduled_at is not None,
            follow_up="edited",
        )
        events, _ = await self._run_change(change, notify=True)
        log_events(events)
        self._wake()
        return events[0].task

    async def cancel(self, task_id: str, *, if_version: int | None = None) -> Task:
        """Cancel a pending task; ``TaskConflict`` if it is not pending.

        With ``if_version``, only while the task is at that version (else
        ``VersionConflict``).
        """
        target = OneTask(check_identifier(task_id, "task_id"), version=check_version(if_version))
        # Cancelling a recurrence's pending occurrence cancels that day only.
        change = Change("cancel", target, _CANCEL, follow_up="cancelled")
        events, created = await self._run_change(change, notify=False)
        log_events(events)
        if created:
            self._wake()
        return events[0].task

    # -- claiming and finishing -------------------------------------------------------------

    async def claim_due(
        self,
        *,
        now: datetime | str | None = None,
        limit: int = 1,
        worker_id: str | None = None,
        lease: timedelta = timedelta(minutes=5),
        sending_due_by: datetime | str | None = None,
    ) -> list[Task]:
        """Atomically move up to ``limit`` due tasks to processing (see ``TaskStore``).

        Concurrent claimers (threads, processes, hosts) never receive the same task, and a
        group never has two tasks in flight.
        """
        at = now_or(now, self._clock)
        limit, lease, worker = prepare_claim(limit, lease, worker_id)
        claim = Claim(at, limit, worker, at + lease, sending_bound(sending_due_by))
        events, created = await self._claim(claim)
        log_events(events)
        if created:
            self._wake()
        return [e.task for e in events]

    async def complete(
        self, task_id: str, *, message_id: str | None = None, worker_id: str | None = None
    ) -> Task:
        """Mark a processing task completed (one more attempt).

        With ``worker_id``, only while that worker holds the claim (else ``TaskConflict``).
        Completes that meet on one store are committed together.
        """
        check_identifier(task_id, "task_id")
        check_optional_text(message_id, "message_id")
        worker = check_optional_text(worker_id, "worker_id")
        task = await self._complete(task_id, message_id, worker)
        log_events((Event(task, "completed", message_detail(message_id)),))
        return task

    async def mark_sending(self, task_id: str, *, worker_id: str | None = None) -> None:
        """Record that the send of a processing task starts now (event ``sending``).

        The status does not change. With ``worker_id``, the task must still be claimed by
        that worker: one whose lease ended while the task was claimed again gets
        ``TaskConflict`` instead of sending the post a second time.
        """
        check_identifier(task_id, "task_id")
        await self._mark_sending(task_id, check_optional_text(worker_id, "worker_id"))

    async def fail(
        self,
        task_id: str,
        error: str,
        *,
        retry_at: datetime | str | None = None,
        worker_id: str | None = None,
    ) -> Task:
        """Record a failed attempt of a processing task.

        With ``retry_at`` and attempts left it goes back to pending, due at ``retry_at``
        (event ``retried``); otherwise it is failed (event ``failed``). With ``worker_id``,
        only while that worker holds the claim (else ``TaskConflict``).
        """
        check_identifier(task_id, "task_id")
        reason = check_error(error)
        worker = check_optional_text(worker_id, "worker_id")
        retry = None if retry_at is None else parse_instant(retry_at, "retry_at")
        change = Change(
            "fail",
            OneTask(task_id, worker_id=worker),
            _FAIL,
            (retry, retry, retry, reason),
            lambda task, _before: fail_detail(task, reason),
        )
        events, _ = await self._run_change(change, notify=False)
        log_events(events)
        return events[0].task

    async def release(self, task_id: str, reason: str, *, worker_id: str | None = None) -> Task:
        """Return a processing task to pending without counting an attempt (event ``released``).

        With ``worker_id``, only while that worker holds the claim (else ``TaskConflict``).
        """
        check_identifier(task_id, "task_id")
        why = check_error(reason)
        worker = check_optional_text(worker_id, "worker_id")
        change = Change(
            "release",
            OneTask(task_id, worker_id=worker),
            _RELEASE,
            detail=lambda _t, _b: {"reason": why},
        )
        events, _ = await self._run_change(change, notify=False)
        log_events(events)
        return events[0].task

    async def recover_expired(self, *, now: datetime | str | None = None) -> int:
        """Return processing tasks whose lease ended to pending (or failed); return how many.

        An ended lease counts as an attempt: a post that keeps killing its worker fails
        after ``max_attempts`` instead of looping forever.
        """
        at = now_or(now, self._clock)
        give_up = 1 if self.on_expired == "fail" else 0
        change = Change("expire", ExpiredTasks(at), _EXPIRE, (give_up,), _expire_detail)
        events, _ = await self._run_change(change, notify=False)
        log_events(events)
        return len(events)

    async def next_due(self) -> datetime | None:
        """The earliest ``scheduled_at`` among pending tasks of connected sessions."""
        return await self._next_due()

    # -- reading ----------------------------------------------------------------------------

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
        recurrence_id: str | None = None,
    ) -> Page:
        """A page of a group's tasks with ``start <= scheduled_at < end``, by time then id.

        With ``recurrence_id``, only that recurrence's occurrences.
        """
        query = prepare_history(
            session_id, group_id, start, end, status, limit, offset, recurrence_id
        )
        return await self._history(query)

    async def events(self, task_id: str) -> list[TaskEvent]:
        """The task's audit trail, oldest first; ``TaskNotFound`` for an unknown task."""
        return await self._events(check_identifier(task_id, "task_id"))
