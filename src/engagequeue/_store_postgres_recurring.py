"""Recurring posts on PostgreSQL: the ``PostgresTaskStore`` methods and the hooks its writes call.

The rules live in ``_store_recurring``; this mixin locks a recurrence row (``FOR UPDATE``),
asks for the plan and writes it in the same transaction. A claim locks the occurrence it
takes (``FOR UPDATE SKIP LOCKED``) and creates the following one in its own transaction,
so no other store, process or host can claim the same occurrence or repeat the creation;
the other recurring writes take the row lock, after the lock of the pending occurrence
(the order ``cancel`` takes them in).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from ._errors import RecurrenceNotFound, SessionNotFound, TaskConflict
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
from ._times import isoformat

if TYPE_CHECKING:
    from psycopg import AsyncConnection

    from ._store_args import Clock

    Connection = AsyncConnection[tuple[Any, ...]]

__all__ = ["RECURRENCE_MIGRATION", "PostgresRecurringMixin"]

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


_read_state: Final = state_reader(_utc)
_NAMES: Final = [c.strip() for c in RECURRENCE_COLUMNS.split(",")]
_PAYLOAD_COLUMNS: Final = ("media_type", "content", "media_url", "mimetype", "filename")


def _dumps(detail: Mapping[str, Any]) -> str:
    return json.dumps(dict(detail), default=str)


class PostgresRecurringMixin(RecurrenceChanges):
    """The recurring methods of ``PostgresTaskStore`` (the promises: ``RecurringTaskStore``)."""

    if TYPE_CHECKING:
        _clock: Clock
        _s: str

        async def _read(self, run: Callable[[Connection], Awaitable[Any]]) -> Any: ...  # noqa: ANN401
        async def _write(
            self,
            run: Callable[[Connection], Awaitable[Any]],
            *,
            on_unknown: Callable[[Connection], Awaitable[Any]] | None = None,
            notify: bool = False,
        ) -> Any: ...  # noqa: ANN401
        def _now(self) -> datetime: ...
        def _wake(self) -> None: ...
        async def _insert_tasks(
            self, conn: Connection, prepared: Sequence[NewTask], detail: Mapping[str, Any]
        ) -> list[Task]: ...
        async def _conditional(
            self,
            conn: Connection,
            operation: str,
            task_id: str,
            assignments: str,
            params: Sequence[Any],
            *,
            worker_id: str | None = None,
            version: int | None = None,
        ) -> Task: ...

    # -- hooks called by the task writes, inside their transaction -------------------------

    async def _advance_recurrences(
        self, conn: Connection, tasks: Iterable[Task], now: datetime, reason: str
    ) -> bool:
        """``tasks`` left pending (claimed or cancelled): create the following occurrences.

        Returns whether an occurrence was created.
        """
        ids = [t.id for t in tasks if t.recurrence_id is not None]
        if not ids:
            return False
        cursor = await conn.execute(
            f"SELECT {RECURRENCE_COLUMNS} FROM {self._s}.recurrences "
            "WHERE next_task_id = ANY(%s::text[]) AND status = 'active' ORDER BY id FOR UPDATE",
            (ids,),
        )
        created = False
        for row in await cursor.fetchall():
            plan = plan_advance(_read_state(row), now, reason=reason)
            await self._write_plan(conn, plan)
            created = created or plan.new_task is not None
        return created

    async def _note_own_edit(self, conn: Connection, task: Task) -> None:
        """A pending occurrence was edited on its own: ``edit_recurrence`` leaves it alone."""
        if task.recurrence_id is None:
            return
        await conn.execute(
            f"UPDATE {self._s}.recurrences SET head_edited = true, next_at = %s "
            "WHERE next_task_id = %s",
            (task.scheduled_at, task.id),
        )

    # -- plumbing --------------------------------------------------------------------------

    async def _write_plan(
        self, conn: Connection, plan: RecurrencePlan, *, insert: bool = False
    ) -> None:
        """Write ``plan``: the occurrence changes first, then the row and its events."""
        if not plan.changed:
            return
        s = self._s
        now = self._now()
        if plan.cancel_task is not None:
            await self._cancel_occurrence(conn, plan.cancel_task, now, cancel_detail(plan))
        if plan.update_task is not None:
            await self._update_occurrence(conn, plan, now)
        values = state_values(plan.state, _same)
        if insert:
            marks = ", ".join(["%s"] * len(_NAMES))
            await conn.execute(
                f"INSERT INTO {s}.recurrences ({RECURRENCE_COLUMNS}) VALUES ({marks}) "
                "ON CONFLICT (id) DO NOTHING",
                values,
            )
        task = occurrence_task(plan)
        if task is not None:
            await self._insert_tasks(conn, [task], plan.created_detail)
        if not insert:
            assignments = ", ".join(f"{c} = %s" for c in _NAMES[1:])
            await conn.execute(
                f"UPDATE {s}.recurrences SET {assignments} WHERE id = %s",
                (*values[1:], values[0]),
            )
        if plan.events:
            await conn.execute(
                f"INSERT INTO {s}.recurrence_events (recurrence_id, at, kind, detail) "
                "SELECT %s, %s, e.kind, e.detail "
                "FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS e(kind, detail, ord) "
                "ORDER BY e.ord",
                (
                    plan.state.id,
                    now,
                    [kind for kind, _ in plan.events],
                    [_dumps(detail) for _, detail in plan.events],
                ),
            )

    async def _task_event(
        self, conn: Connection, task_id: str, now: datetime, kind: str, detail: Mapping[str, Any]
    ) -> None:
        await conn.execute(
            f"INSERT INTO {self._s}.task_events (task_id, at, kind, detail) "
            "VALUES (%s, %s, %s, %s)",
            (task_id, now, kind, _dumps(detail)),
        )

    async def _cancel_occurrence(
        self, conn: Connection, task_id: str, now: datetime, detail: Mapping[str, Any]
    ) -> None:
        try:
            await self._conditional(
                conn, "cancel", task_id, "status = 'cancelled', updated_at = %s", [now]
            )
        except (TaskConflict, LookupError):
            return  # no longer pending (or gone): nothing to cancel
        await self._task_event(conn, task_id, now, "cancelled", detail)

    async def _update_occurrence(
        self, conn: Connection, plan: RecurrencePlan, now: datetime
    ) -> None:
        assert plan.update_task is not None  # noqa: S101 - checked by the caller
        task_id, payload, scheduled_at = plan.update_task
        parts: list[str] = []
        params: list[Any] = []
        detail: dict[str, Any] = {"by": "recurrence"}
        if payload is not None:
            parts += [f"{c} = %s" for c in _PAYLOAD_COLUMNS]
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
            parts.append("scheduled_at = %s")
            params.append(scheduled_at)
            detail["scheduled_at"] = isoformat(scheduled_at)
        if not params:
            return
        try:
            await self._conditional(
                conn, "edit", task_id, f"updated_at = %s, {', '.join(parts)}", [now, *params]
            )
        except (TaskConflict, LookupError):
            return
        await self._task_event(conn, task_id, now, "edited", detail)

    async def _state(self, conn: Connection, recurrence_id: str, lock: str = "") -> RecurrenceState:
        cursor = await conn.execute(
            f"SELECT {RECURRENCE_COLUMNS} FROM {self._s}.recurrences WHERE id = %s {lock}",
            (recurrence_id,),
        )
        row = await cursor.fetchone()
        if row is None:
            raise RecurrenceNotFound(recurrence_id)
        return _read_state(row)

    async def _locked_state(self, conn: Connection, recurrence_id: str) -> RecurrenceState:
        """The recurrence row locked, after its pending occurrence (as ``cancel`` locks them)."""
        s = self._s
        cursor = await conn.execute(
            f"SELECT next_task_id FROM {s}.recurrences WHERE id = %s", (recurrence_id,)
        )
        row = await cursor.fetchone()
        if row is None:
            raise RecurrenceNotFound(recurrence_id)
        if row[0] is not None:
            await conn.execute(f"SELECT 1 FROM {s}.tasks WHERE id = %s FOR UPDATE", (row[0],))
        return await self._state(conn, recurrence_id, "FOR UPDATE")

    async def _change(
        self, recurrence_id: str, plan: Callable[[RecurrenceState, datetime], RecurrencePlan]
    ) -> Recurrence:
        check_identifier(recurrence_id, "recurrence_id")
        now = now_or(None, self._clock)

        async def run(conn: Connection) -> RecurrencePlan:
            planned = plan(await self._locked_state(conn, recurrence_id), now)
            await self._write_plan(conn, planned)
            return planned

        done: RecurrencePlan = await self._write(run)
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
            now=now_or(None, self._clock),
        )

        async def run(conn: Connection) -> None:
            # Ids were drawn before the first try: a repeat after an unknown commit
            # finds the recurrence and its occurrence and inserts nothing twice.
            cursor = await conn.execute(
                f"SELECT 1 FROM {self._s}.recurrences WHERE id = %s", (plan.state.id,)
            )
            if await cursor.fetchone() is not None:
                return
            session_id = plan.state.recurrence.session_id
            cursor = await conn.execute(
                f"SELECT 1 FROM {self._s}.sessions WHERE id = %s FOR KEY SHARE", (session_id,)
            )
            if await cursor.fetchone() is None:
                raise SessionNotFound(session_id)
            await self._write_plan(conn, plan, insert=True)

        await self._write(run, on_unknown=run)
        self._wake()
        return plan.state.recurrence

    async def get_recurrence(self, recurrence_id: str) -> Recurrence:
        """Return the recurrence, or raise ``RecurrenceNotFound``."""
        check_identifier(recurrence_id, "recurrence_id")

        async def run(conn: Connection) -> Recurrence:
            return (await self._state(conn, recurrence_id)).recurrence

        found: Recurrence = await self._read(run)
        return found

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
        where = "session_id = %s AND group_id = %s"
        params: list[Any] = [session_id, group_id]
        if statuses is not None:
            where += " AND status = ANY(%s::text[])"
            params.append([s.value for s in statuses])

        async def run(conn: Connection) -> list[Recurrence]:
            cursor = await conn.execute(
                f"SELECT {RECURRENCE_COLUMNS} FROM {self._s}.recurrences WHERE {where} "
                "ORDER BY seq",
                params,
            )
            return [_read_state(r).recurrence for r in await cursor.fetchall()]

        found: list[Recurrence] = await self._read(run)
        return found

    async def recurrence_events(self, recurrence_id: str) -> list[TaskEvent]:
        """The recurrence's audit trail, oldest first (``task_id`` holds the recurrence id)."""
        check_identifier(recurrence_id, "recurrence_id")
        s = self._s

        async def run(conn: Connection) -> list[TaskEvent]:
            async with conn.transaction():
                await self._state(conn, recurrence_id)
                cursor = await conn.execute(
                    f"SELECT seq, recurrence_id, at, kind, detail FROM {s}.recurrence_events "
                    "WHERE recurrence_id = %s ORDER BY seq",
                    (recurrence_id,),
                )
                rows = await cursor.fetchall()
            return [recurrence_event(r, _utc) for r in rows]

        events: list[TaskEvent] = await self._read(run)
        return events
