"""Recurring posts on SQLite: the ``SQLiteTaskStore`` methods and the hooks its writes call.

The methods and their flow live in ``_store_recurring``; this mixin gives them SQLite's
SQL, row encoding and connection handling (the hooks of ``RecurrenceChanges``). SQLite runs one
write transaction at a time per file (and engagequeue's writers take turns on the file's
lock), so a claim and the creation of the following occurrence can never be split or
repeated by another store or process.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

from ._models import Task
from ._store_args import NewTask
from ._store_recurring import RecurrenceChanges, RecurrenceDialect
from ._times import from_micros, to_micros

if TYPE_CHECKING:
    from ._store_recurring import Flow, OccurrenceChange, RecurrenceState

__all__ = ["RECURRENCE_MIGRATION", "SQLiteRecurringMixin"]

_T = TypeVar("_T")

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


def _any_of(column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
    return f"{column} IN ({', '.join('?' * len(values))})", list(values)


# The write transaction excludes every other writer of the file: selects need no lock.
_DIALECT: Final = RecurrenceDialect(
    "eq_", "?", any_of=_any_of, encode=to_micros, decode=from_micros
)


def _finish(flow: Flow[_T]) -> _T:
    """Run a flow of ``RecurrenceChanges`` over this mixin's hooks to its end, here.

    The hooks make blocking calls and never suspend, so the coroutine ends at its first
    step, on the thread that holds the connection (inside ``_transact`` or ``_call``).
    """
    try:
        flow.send(None)
    except StopIteration as done:
        result: _T = done.value
        return result
    flow.close()
    raise RuntimeError("a SQLite recurrence hook suspended")  # pragma: no cover


class SQLiteRecurringMixin(RecurrenceChanges[sqlite3.Connection, int]):
    """The recurring methods of ``SQLiteTaskStore`` (the promises: ``RecurringTaskStore``)."""

    if TYPE_CHECKING:
        _call: Callable[..., Awaitable[Any]]
        _transact: Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]
        _db: Callable[[], sqlite3.Connection]
        _require_session: Callable[[sqlite3.Connection, str], None]
        _insert_tasks: Callable[..., list[Task]]
        _conditional: Callable[..., Task]

    # -- hooks called by the task writes, inside their transaction -------------------------

    def _advance_recurrences(
        self, conn: sqlite3.Connection, tasks: Iterable[Task], now: datetime, reason: str
    ) -> bool:
        """``tasks`` left pending (claimed or cancelled): create the following occurrences.

        Returns whether an occurrence was created (see ``RecurrenceChanges._advance``).
        """
        return _finish(self._advance(conn, tasks, now, reason))

    def _note_own_edit(self, conn: sqlite3.Connection, task: Task) -> None:
        """A pending occurrence was edited on its own: ``edit_recurrence`` leaves it alone."""
        if task.recurrence_id is None:
            return
        conn.execute(
            "UPDATE eq_recurrences SET head_edited = 1, next_at = ? WHERE next_task_id = ?",
            (to_micros(task.scheduled_at), task.id),
        )

    # -- the hooks of RecurrenceChanges ----------------------------------------------------

    @property
    def _dialect(self) -> RecurrenceDialect:
        return _DIALECT

    async def _recurrence_write(
        self,
        run: Callable[[sqlite3.Connection], Flow[_T]],
        *,
        idempotent: bool = False,  # noqa: ARG002 - a commit's outcome is never unknown here
    ) -> _T:
        done: _T = await self._transact(lambda conn: _finish(run(conn)))
        return done

    async def _recurrence_read(
        self, run: Callable[[sqlite3.Connection], Flow[_T]], *, snapshot: bool = False
    ) -> _T:
        def read() -> _T:
            conn = self._db()
            if not snapshot:
                return _finish(run(conn))
            conn.execute("BEGIN")
            try:
                return _finish(run(conn))
            finally:
                conn.execute("COMMIT")

        done: _T = await self._call(read)
        return done

    async def _recurrence_execute(
        self, conn: sqlite3.Connection, sql: str, params: Sequence[Any]
    ) -> None:
        conn.execute(sql, params)

    async def _recurrence_rows(
        self, conn: sqlite3.Connection, sql: str, params: Sequence[Any]
    ) -> list[Sequence[Any]]:
        return conn.execute(sql, params).fetchall()

    async def _lock_pending_occurrence(
        self,
        conn: sqlite3.Connection,  # noqa: ARG002
        recurrence_id: str,  # noqa: ARG002
    ) -> None:
        return  # the write transaction already excludes every other writer of the file

    async def _may_insert(self, conn: sqlite3.Connection, state: RecurrenceState) -> bool:
        self._require_session(conn, state.recurrence.session_id)
        return True

    async def _insert_occurrence(
        self, conn: sqlite3.Connection, task: NewTask, detail: dict[str, Any]
    ) -> None:
        self._insert_tasks(conn, [task], [detail])

    async def _conditional_change(self, conn: sqlite3.Connection, change: OccurrenceChange) -> None:
        self._conditional(conn, *change)

    async def _insert_recurrence_events(
        self,
        conn: sqlite3.Connection,
        recurrence_id: str,
        at: int,
        events: Sequence[tuple[str, str]],
    ) -> None:
        conn.executemany(
            "INSERT INTO eq_recurrence_events (recurrence_id, at, kind, detail) "
            "VALUES (?, ?, ?, ?)",
            [(recurrence_id, at, kind, detail) for kind, detail in events],
        )
