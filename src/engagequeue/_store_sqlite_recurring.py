"""Recurring posts on SQLite: the ``SQLiteTaskStore`` methods and the hooks its writes call.

The rules live in ``_store_recurring`` (plans without SQL); this mixin reads a recurrence
row, asks for the plan and writes it in the transaction that read the row. SQLite runs one
write transaction at a time per file (and engagequeue's writers take turns on the file's
lock), so a claim and the creation of the following occurrence can never be split or
repeated by another store or process.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from ._errors import RecurrenceNotFound, TaskConflict
from ._models import Payload, Task, TaskEvent, check_identifier
from ._recurrence import Recurrence, RecurrenceStatus
from ._store_args import NewTask, new_task_id, now_or
from ._store_recurring import (
    RECURRENCE_COLUMNS,
    RecurrenceChanges,
    RecurrencePlan,
    RecurrenceState,
    cancel_detail,
    check_recurrence_status,
    occurrence_task,
    plan_add,
    plan_advance,
    recurrence_event,
    state_reader,
    state_values,
)
from ._times import from_micros, isoformat, to_micros

if TYPE_CHECKING:
    from ._store_args import Clock

__all__ = ["RECURRENCE_MIGRATION", "SQLiteRecurringMixin"]

RECURRENCE_MIGRATION: Final = """
    ALTER TABLE eq_tasks ADD COLUMN recurrence_id TEXT;
    -- history(recurrence_id=...): one recurrence's occurrences in page order.
    CREATE INDEX eq_tasks_recurrence ON eq_tasks (recurrence_id, scheduled_at, id)
        WHERE recurrence_id IS NOT NULL;
    CREATE TABLE eq_recurrences (
        seq          INTEGER PRIMARY KEY,
        id           TEXT NOT NULL UNIQUE,
        session_id   TEXT NOT NULL REFERENCES eq_sessions (id) ON DELETE CASCADE,
        group_id     TEXT NOT NULL,
        media_type   TEXT NOT NULL CHECK (media_type IN ('text', 'image', 'video', 'audio')),
        content      TEXT,
        media_url    TEXT,
        mimetype     TEXT,
        filename     TEXT,
        rule         TEXT NOT NULL,
        timezone     TEXT NOT NULL,
        starts_at    INTEGER NOT NULL,
        until        INTEGER,
        count        INTEGER,
        status       TEXT NOT NULL CHECK (status IN ('active', 'paused', 'ended')),
        max_attempts INTEGER NOT NULL,
        issued       INTEGER NOT NULL DEFAULT 0,
        next_task_id TEXT,
        next_at      INTEGER,
        head_at      INTEGER,
        last_at      INTEGER,
        head_edited  INTEGER NOT NULL DEFAULT 0,
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL
    );
    CREATE INDEX eq_recurrences_group ON eq_recurrences (session_id, group_id, seq);
    -- A task is the pending occurrence of at most one recurrence: claims find it here.
    CREATE UNIQUE INDEX eq_recurrences_next ON eq_recurrences (next_task_id)
        WHERE next_task_id IS NOT NULL;
    CREATE TABLE eq_recurrence_events (
        seq           INTEGER PRIMARY KEY,
        recurrence_id TEXT NOT NULL REFERENCES eq_recurrences (id) ON DELETE CASCADE,
        at            INTEGER NOT NULL,
        kind          TEXT NOT NULL,
        detail        TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX eq_recurrence_events_recurrence ON eq_recurrence_events (recurrence_id, seq);
"""
"""Schema version 4: recurrences, their events, and each task's recurrence."""

_read_state: Final = state_reader(from_micros)
_SELECT: Final = f"SELECT {RECURRENCE_COLUMNS} FROM eq_recurrences"
_PLACEHOLDERS: Final = ", ".join("?" * len(RECURRENCE_COLUMNS.split(",")))
_UPDATE: Final = (
    "UPDATE eq_recurrences SET "
    + ", ".join(f"{c.strip()} = ?" for c in RECURRENCE_COLUMNS.split(",")[1:])
    + " WHERE id = ?"
)
_PAYLOAD_COLUMNS: Final = ("media_type", "content", "media_url", "mimetype", "filename")


def _dumps(detail: Mapping[str, Any]) -> str:
    return json.dumps(dict(detail), default=str)


class SQLiteRecurringMixin(RecurrenceChanges):
    """The recurring methods of ``SQLiteTaskStore`` (the promises: ``RecurringTaskStore``)."""

    if TYPE_CHECKING:
        _clock: Clock

        async def _call(self, fn: Callable[..., Any], *args: Any) -> Any: ...  # noqa: ANN401
        async def _transact(self, fn: Callable[[sqlite3.Connection], Any]) -> Any: ...  # noqa: ANN401
        def _db(self) -> sqlite3.Connection: ...
        def _now(self) -> int: ...
        def _wake(self) -> None: ...
        def _require_session(self, conn: sqlite3.Connection, session_id: str) -> None: ...
        def _insert_tasks(
            self,
            conn: sqlite3.Connection,
            prepared: Sequence[NewTask],
            details: Sequence[Mapping[str, Any]] | None = None,
        ) -> list[Task]: ...
        def _conditional(
            self,
            conn: sqlite3.Connection,
            operation: str,
            task_id: str,
            assignments: str,
            params: Sequence[Any],
            *,
            worker_id: str | None = None,
            version: int | None = None,
        ) -> Task: ...

    # -- hooks called by the task writes, inside their transaction -------------------------

    def _advance_recurrences(
        self, conn: sqlite3.Connection, tasks: Iterable[Task], now: datetime, reason: str
    ) -> bool:
        """``tasks`` left pending (claimed or cancelled): create the following occurrences.

        Only a recurrence's pending occurrence moves it on; a retried past occurrence does
        not. Returns whether an occurrence was created.
        """
        ids = [t.id for t in tasks if t.recurrence_id is not None]
        if not ids:
            return False
        marks = ", ".join("?" * len(ids))
        rows = conn.execute(
            f"{_SELECT} WHERE next_task_id IN ({marks}) AND status = 'active'", ids
        ).fetchall()
        created = False
        for row in rows:
            plan = plan_advance(_read_state(row), now, reason=reason)
            self._write_plan(conn, plan)
            created = created or plan.new_task is not None
        return created

    def _note_own_edit(self, conn: sqlite3.Connection, task: Task) -> None:
        """A pending occurrence was edited on its own: ``edit_recurrence`` leaves it alone."""
        if task.recurrence_id is None:
            return
        conn.execute(
            "UPDATE eq_recurrences SET head_edited = 1, next_at = ? WHERE next_task_id = ?",
            (to_micros(task.scheduled_at), task.id),
        )

    # -- plumbing --------------------------------------------------------------------------

    def _write_plan(
        self, conn: sqlite3.Connection, plan: RecurrencePlan, *, insert: bool = False
    ) -> None:
        """Write ``plan``: the occurrence changes first, then the row and its events."""
        if not plan.changed:
            return
        now = self._now()
        if plan.cancel_task is not None:
            self._cancel_occurrence(conn, plan.cancel_task, now, cancel_detail(plan))
        if plan.update_task is not None:
            self._update_occurrence(conn, plan, now)
        values = state_values(plan.state, to_micros)
        if insert:
            conn.execute(
                f"INSERT INTO eq_recurrences ({RECURRENCE_COLUMNS}) VALUES ({_PLACEHOLDERS})",
                values,
            )
        task = occurrence_task(plan)
        if task is not None:
            self._insert_tasks(conn, [task], [plan.created_detail])
        if not insert:
            conn.execute(_UPDATE, (*values[1:], values[0]))
        conn.executemany(
            "INSERT INTO eq_recurrence_events (recurrence_id, at, kind, detail) "
            "VALUES (?, ?, ?, ?)",
            [(plan.state.id, now, kind, _dumps(detail)) for kind, detail in plan.events],
        )

    def _cancel_occurrence(
        self, conn: sqlite3.Connection, task_id: str, now: int, detail: Mapping[str, Any]
    ) -> None:
        try:
            self._conditional(
                conn, "cancel", task_id, "status = 'cancelled', updated_at = ?", [now]
            )
        except (TaskConflict, LookupError):
            return  # no longer pending (or gone): nothing to cancel
        conn.execute(
            "INSERT INTO eq_task_events (task_id, at, kind, detail) VALUES (?, ?, 'cancelled', ?)",
            (task_id, now, _dumps(detail)),
        )

    def _update_occurrence(self, conn: sqlite3.Connection, plan: RecurrencePlan, now: int) -> None:
        assert plan.update_task is not None  # noqa: S101 - checked by the caller
        task_id, payload, scheduled_at = plan.update_task
        assignments, params, detail = _occurrence_changes(payload, scheduled_at)
        if not params:
            return
        try:
            self._conditional(
                conn, "edit", task_id, f"updated_at = ?, {assignments}", [now, *params]
            )
        except (TaskConflict, LookupError):
            return
        conn.execute(
            "INSERT INTO eq_task_events (task_id, at, kind, detail) VALUES (?, ?, 'edited', ?)",
            (task_id, now, _dumps(detail)),
        )

    def _state(self, conn: sqlite3.Connection, recurrence_id: str) -> RecurrenceState:
        row = conn.execute(f"{_SELECT} WHERE id = ?", (recurrence_id,)).fetchone()
        if row is None:
            raise RecurrenceNotFound(recurrence_id)
        return _read_state(row)

    def _recurrence_now(self) -> datetime:
        return now_or(None, self._clock)

    async def _change(
        self, recurrence_id: str, plan: Callable[[RecurrenceState, datetime], RecurrencePlan]
    ) -> Recurrence:
        check_identifier(recurrence_id, "recurrence_id")
        now = self._recurrence_now()

        def run(conn: sqlite3.Connection) -> RecurrencePlan:
            planned = plan(self._state(conn, recurrence_id), now)
            self._write_plan(conn, planned)
            return planned

        done: RecurrencePlan = await self._transact(run)
        if done.new_task is not None or done.update_task is not None:
            self._wake()
        return done.state.recurrence

    # -- the recurring methods -------------------------------------------------------------

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
        """Add a recurrence and its first occurrence (a pending task), in one transaction."""
        plan = plan_add(
            new_task_id(),
            session_id,
            group_id,
            payload,
            rule,
            timezone=timezone,
            starts_at=starts_at,
            until=until,
            count=count,
            max_attempts=max_attempts,
            now=self._recurrence_now(),
        )

        def run(conn: sqlite3.Connection) -> None:
            self._require_session(conn, plan.state.recurrence.session_id)
            self._write_plan(conn, plan, insert=True)

        await self._transact(run)
        self._wake()
        return plan.state.recurrence

    async def get_recurrence(self, recurrence_id: str) -> Recurrence:
        """Return the recurrence, or raise ``RecurrenceNotFound``."""
        check_identifier(recurrence_id, "recurrence_id")
        state: RecurrenceState = await self._call(lambda: self._state(self._db(), recurrence_id))
        return state.recurrence

    async def recurrences(
        self,
        session_id: str,
        group_id: str,
        *,
        status: RecurrenceStatus | str | Collection[RecurrenceStatus | str] | None = None,
    ) -> list[Recurrence]:
        """The group's recurrences, oldest first, optionally of some statuses only."""
        check_identifier(session_id, "session_id")
        check_identifier(group_id, "group_id")
        statuses = check_recurrence_status(status)
        where = "session_id = ? AND group_id = ?"
        params: list[Any] = [session_id, group_id]
        if statuses is not None:
            where += f" AND status IN ({', '.join('?' * len(statuses))})"
            params += [s.value for s in statuses]

        def run() -> list[Recurrence]:
            rows = self._db().execute(f"{_SELECT} WHERE {where} ORDER BY seq", params).fetchall()
            return [_read_state(r).recurrence for r in rows]

        found: list[Recurrence] = await self._call(run)
        return found

    async def recurrence_events(self, recurrence_id: str) -> list[TaskEvent]:
        """The recurrence's audit trail, oldest first (``task_id`` holds the recurrence id)."""
        check_identifier(recurrence_id, "recurrence_id")

        def run() -> list[TaskEvent]:
            conn = self._db()
            conn.execute("BEGIN")
            try:
                self._state(conn, recurrence_id)
                rows = conn.execute(
                    "SELECT seq, recurrence_id, at, kind, detail FROM eq_recurrence_events "
                    "WHERE recurrence_id = ? ORDER BY seq",
                    (recurrence_id,),
                ).fetchall()
            finally:
                conn.execute("COMMIT")
            return [recurrence_event(r, from_micros) for r in rows]

        events: list[TaskEvent] = await self._call(run)
        return events


def _occurrence_changes(
    payload: Payload | None, scheduled_at: datetime | None
) -> tuple[str, list[Any], dict[str, Any]]:
    """The SET clause, its parameters and the ``edited`` detail of a recurrence's change."""
    parts: list[str] = []
    params: list[Any] = []
    detail: dict[str, Any] = {"by": "recurrence"}
    if payload is not None:
        parts += [f"{c} = ?" for c in _PAYLOAD_COLUMNS]
        params += [
            payload.media_type.value,
            payload.content,
            payload.media_url,
            payload.mimetype,
            payload.filename,
        ]
        detail["payload"] = True
        detail["media_type"] = payload.media_type.value
    if scheduled_at is not None:
        parts.append("scheduled_at = ?")
        params.append(to_micros(scheduled_at))
        detail["scheduled_at"] = isoformat(scheduled_at)
    return ", ".join(parts), params, detail
