"""Recurring posts on PostgreSQL: the ``PostgresTaskStore`` methods and the hooks its writes call.

The methods and their flow live in ``_store_recurring``; this mixin gives them PostgreSQL's
SQL, row encoding, locking and connection handling (the hooks of ``RecurrenceChanges``). A
change locks the recurrence row (``FOR UPDATE``) and writes its plan in that transaction.
A claim locks the occurrence it takes (``FOR UPDATE SKIP LOCKED``) and creates the
following one in its own transaction, so no other store, process or host can claim the
same occurrence or repeat the creation; the other recurring writes take the row lock,
after the lock of the pending occurrence (the order ``cancel`` takes them in).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

from ._errors import SessionNotFound
from ._models import Task
from ._store_args import NewTask
from ._store_recurring import RecurrenceChanges, RecurrenceDialect

if TYPE_CHECKING:
    from psycopg import AsyncConnection

    from ._store_recurring import Flow, OccurrenceChange, RecurrenceState

    Connection = AsyncConnection[tuple[Any, ...]]

__all__ = ["RECURRENCE_MIGRATION", "PostgresRecurringMixin"]

_T = TypeVar("_T")

RECURRENCE_MIGRATION: Final = (
    "recurring posts: recurrences, their events, and each task's recurrence",
    """
    ALTER TABLE {s}.tasks ADD COLUMN recurrence_id text COLLATE "C";
    -- history(recurrence_id=...): one recurrence's occurrences in page order.
    CREATE INDEX tasks_recurrence ON {s}.tasks (recurrence_id, scheduled_at, id)
        WHERE recurrence_id IS NOT NULL;
    CREATE TABLE {s}.recurrences (
        seq          bigint GENERATED ALWAYS AS IDENTITY,
        id           text COLLATE "C" PRIMARY KEY,
        session_id   text NOT NULL REFERENCES {s}.sessions (id) ON DELETE CASCADE,
        group_id     text NOT NULL,
        media_type   text NOT NULL CHECK (media_type IN ('text', 'image', 'video', 'audio')),
        content      text,
        media_url    text,
        mimetype     text,
        filename     text,
        rule         text NOT NULL,
        timezone     text NOT NULL,
        starts_at    timestamptz NOT NULL,
        until        timestamptz,
        count        integer,
        status       text NOT NULL CHECK (status IN ('active', 'paused', 'ended')),
        max_attempts integer NOT NULL,
        issued       integer NOT NULL DEFAULT 0,
        next_task_id text COLLATE "C",
        next_at      timestamptz,
        head_at      timestamptz,
        last_at      timestamptz,
        head_edited  boolean NOT NULL DEFAULT false,
        created_at   timestamptz NOT NULL,
        updated_at   timestamptz NOT NULL
    );
    CREATE INDEX recurrences_group ON {s}.recurrences (session_id, group_id, seq);
    -- A task is the pending occurrence of at most one recurrence: claims find it here.
    CREATE UNIQUE INDEX recurrences_next ON {s}.recurrences (next_task_id)
        WHERE next_task_id IS NOT NULL;
    CREATE TABLE {s}.recurrence_events (
        seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        recurrence_id text COLLATE "C" NOT NULL
                          REFERENCES {s}.recurrences (id) ON DELETE CASCADE,
        at            timestamptz NOT NULL,
        kind          text NOT NULL,
        detail        text NOT NULL DEFAULT '{{}}'
    );
    CREATE INDEX recurrence_events_recurrence ON {s}.recurrence_events (recurrence_id, seq);
    """,
)
"""Schema version 3: recurrences, their events, and each task's recurrence."""


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _same(value: datetime) -> datetime:
    return value


def _any_of(column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
    return f"{column} = ANY(%s::text[])", [list(values)]


@functools.cache
def _dialect_of(schema: str) -> RecurrenceDialect:
    return RecurrenceDialect(
        f"{schema}.",
        "%s",
        any_of=_any_of,
        encode=_same,
        decode=_utc,
        # Rows locked in id order, so two transactions never wait on each other in turn.
        lock=" ORDER BY id FOR UPDATE",
        insert_tail=" ON CONFLICT (id) DO NOTHING",
    )


class PostgresRecurringMixin(RecurrenceChanges["Connection", datetime]):
    """The recurring methods of ``PostgresTaskStore`` (the promises: ``RecurringTaskStore``)."""

    if TYPE_CHECKING:
        _s: str
        _read: Callable[[Callable[[Connection], Awaitable[Any]]], Awaitable[Any]]
        _write: Callable[..., Awaitable[Any]]
        _insert_tasks: Callable[..., Awaitable[list[Task]]]
        _conditional: Callable[..., Awaitable[Task]]

    # -- hooks called by the task writes, inside their transaction -------------------------

    async def _advance_recurrences(
        self, conn: Connection, tasks: Iterable[Task], now: datetime, reason: str
    ) -> bool:
        """``tasks`` left pending (claimed or cancelled): create the following occurrences.

        Returns whether an occurrence was created (see ``RecurrenceChanges._advance``).
        """
        return await self._advance(conn, tasks, now, reason)

    async def _note_own_edit(self, conn: Connection, task: Task) -> None:
        """A pending occurrence was edited on its own: ``edit_recurrence`` leaves it alone."""
        if task.recurrence_id is None:
            return
        await conn.execute(
            f"UPDATE {self._s}.recurrences SET head_edited = true, next_at = %s "
            "WHERE next_task_id = %s",
            (task.scheduled_at, task.id),
        )

    # -- the hooks of RecurrenceChanges ----------------------------------------------------

    @property
    def _dialect(self) -> RecurrenceDialect:
        return _dialect_of(self._s)

    async def _recurrence_write(
        self, run: Callable[[Connection], Flow[_T]], *, idempotent: bool = False
    ) -> _T:
        done: _T = await self._write(run, on_unknown=run if idempotent else None)
        return done

    async def _recurrence_read(
        self, run: Callable[[Connection], Flow[_T]], *, snapshot: bool = False
    ) -> _T:
        async def read(conn: Connection) -> _T:
            if not snapshot:
                return await run(conn)
            async with conn.transaction():
                return await run(conn)

        done: _T = await self._read(read)
        return done

    async def _recurrence_execute(self, conn: Connection, sql: str, params: Sequence[Any]) -> None:
        await conn.execute(sql, params)

    async def _recurrence_rows(
        self, conn: Connection, sql: str, params: Sequence[Any]
    ) -> list[Sequence[Any]]:
        cursor = await conn.execute(sql, params)
        return list(await cursor.fetchall())

    async def _lock_pending_occurrence(self, conn: Connection, recurrence_id: str) -> None:
        # The task lock first, then the row's: the order ``cancel`` takes them in.
        s = self._s
        cursor = await conn.execute(
            f"SELECT next_task_id FROM {s}.recurrences WHERE id = %s", (recurrence_id,)
        )
        row = await cursor.fetchone()
        if row is not None and row[0] is not None:
            await conn.execute(f"SELECT 1 FROM {s}.tasks WHERE id = %s FOR UPDATE", (row[0],))

    async def _may_insert(self, conn: Connection, state: RecurrenceState) -> bool:
        cursor = await conn.execute(
            f"SELECT 1 FROM {self._s}.recurrences WHERE id = %s", (state.id,)
        )
        if await cursor.fetchone() is not None:
            return False  # an earlier try committed it
        session_id = state.recurrence.session_id
        cursor = await conn.execute(
            f"SELECT 1 FROM {self._s}.sessions WHERE id = %s FOR KEY SHARE", (session_id,)
        )
        if await cursor.fetchone() is None:
            raise SessionNotFound(session_id)
        return True

    async def _insert_occurrence(
        self, conn: Connection, task: NewTask, detail: dict[str, Any]
    ) -> None:
        await self._insert_tasks(conn, [task], detail)

    async def _conditional_change(self, conn: Connection, change: OccurrenceChange) -> None:
        await self._conditional(conn, *change)

    async def _insert_recurrence_events(
        self,
        conn: Connection,
        recurrence_id: str,
        at: datetime,
        events: Sequence[tuple[str, str]],
    ) -> None:
        await conn.execute(
            f"INSERT INTO {self._s}.recurrence_events (recurrence_id, at, kind, detail) "
            "SELECT %s, %s, e.kind, e.detail "
            "FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS e(kind, detail, ord) "
            "ORDER BY e.ord",
            (
                recurrence_id,
                at,
                [kind for kind, _ in events],
                [detail for _, detail in events],
            ),
        )
