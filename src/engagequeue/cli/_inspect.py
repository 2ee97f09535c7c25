"""Read-only looks at a database that the ``TaskStore`` protocol has no method for.

``health`` must tell whether the schema is current *without* migrating it, ``sessions
list`` lists sessions, and the worker's status line and metrics count pending posts per
session. These read the stores' tables directly, with the schema versions the store
modules declare, and never write: no transaction is opened for writing and SQLite files
are opened read-only (a missing file is reported, not created).
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs

from engagequeue._connect import DEFAULT_SCHEMA, is_postgres
from engagequeue._errors import EngageQueueError
from engagequeue._times import from_micros, to_micros

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Inspector", "SchemaState", "SessionRow"]

_SQLITE_NOT_A_DB: Final = "file is not a database"


@attrs.frozen
class SessionRow:
    """A session as ``sessions list`` shows it."""

    id: str
    connected: bool
    created_at: datetime
    updated_at: datetime
    pending: int

    def to_json(self) -> dict[str, Any]:
        """The JSON form: camelCase keys and ISO 8601 UTC instants, like the HTTP API's."""
        from engagequeue._converters import isoformat  # noqa: PLC0415 - keeps startup light

        return {
            "id": self.id,
            "connected": self.connected,
            "pending": self.pending,
            "createdAt": isoformat(self.created_at),
            "updatedAt": isoformat(self.updated_at),
        }


@attrs.frozen
class SchemaState:
    """What ``health`` found: the database's schema version and the one this code needs."""

    found: int
    needed: int

    @property
    def current(self) -> bool:
        """Whether the schema is exactly the version this engagequeue writes."""
        return self.found == self.needed


@attrs.frozen
class QueueCounts:
    """Pending posts per session, and the oldest due one (for the lag)."""

    pending: dict[str, int]
    oldest_due: datetime | None


class Inspector:
    """Read-only queries on the database named by ``db`` (and ``schema`` for PostgreSQL)."""

    def __init__(self, db: str, schema: str | None = None) -> None:
        self.db = db
        self.schema = schema or DEFAULT_SCHEMA
        self.postgres = is_postgres(db)
        self._pg: Any = None  # a psycopg.AsyncConnection, kept open between calls

    async def close(self) -> None:
        """Close the PostgreSQL connection, if one was opened."""
        conn, self._pg = self._pg, None
        if conn is not None:
            await conn.close()

    # -- PostgreSQL -----------------------------------------------------------------------

    async def _pg_rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            import psycopg  # noqa: PLC0415 - only with a DSN
        except ImportError:
            raise EngageQueueError(
                "a postgresql:// database needs psycopg: pip install 'engagequeue[postgres]'"
            ) from None

        if self._pg is None or self._pg.closed:
            try:
                self._pg = await psycopg.AsyncConnection.connect(
                    self.db, autocommit=True, connect_timeout=10
                )
            except psycopg.OperationalError as exc:
                raise EngageQueueError(f"cannot connect to PostgreSQL: {_one_line(exc)}") from exc
        try:
            cursor = await self._pg.execute(sql.format(s=f'"{self.schema}"'), params)
            return list(await cursor.fetchall())
        except psycopg.errors.UndefinedTable:
            raise EngageQueueError(
                f"the schema {self.schema!r} holds no engagequeue tables; "
                "run 'engagequeue migrate' (or start a worker) to create them"
            ) from None
        except psycopg.Error as exc:
            await self.close()
            raise EngageQueueError(f"PostgreSQL: {_one_line(exc)}") from exc

    # -- SQLite ---------------------------------------------------------------------------

    def _sqlite_rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        path = Path(self.db)
        if not path.is_file():
            raise EngageQueueError(f"no database at {self.db!r}")
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
        except sqlite3.Error as exc:
            raise EngageQueueError(f"cannot open {self.db!r}: {exc}") from exc
        try:
            return list(conn.execute(sql, params).fetchall())
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                raise EngageQueueError(
                    f"{self.db!r} holds no engagequeue tables; "
                    "run 'engagequeue migrate' (or start a worker) to create them"
                ) from None
            raise EngageQueueError(f"SQLite {self.db!r}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise EngageQueueError(f"{self.db!r} is not a usable SQLite database: {exc}") from exc
        finally:
            conn.close()

    async def _sqlite(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self._sqlite_rows, sql, params)

    # -- queries --------------------------------------------------------------------------

    async def schema_state(self) -> SchemaState:
        """The schema version found, and the one this engagequeue needs."""
        if self.postgres:
            from engagequeue._store_postgres import SCHEMA_VERSION as PG_VERSION  # noqa: PLC0415

            rows = await self._pg_rows("SELECT coalesce(max(version), 0) FROM {s}.schema_version")
            return SchemaState(found=int(rows[0][0]), needed=PG_VERSION)
        from engagequeue._store_sqlite import SCHEMA_VERSION as SQLITE_VERSION  # noqa: PLC0415

        rows = await self._sqlite("SELECT value FROM eq_meta WHERE key = 'schema_version'")
        return SchemaState(found=int(rows[0][0]) if rows else 0, needed=SQLITE_VERSION)

    async def sessions(self) -> list[SessionRow]:
        """Every session, by id, with its number of pending posts."""
        if self.postgres:
            rows = await self._pg_rows(
                "SELECT s.id, s.connected, s.created_at, s.updated_at, "
                "(SELECT count(*) FROM {s}.tasks t WHERE t.session_id = s.id "
                "AND t.status = 'pending') FROM {s}.sessions s ORDER BY s.id"
            )
            return [
                SessionRow(r[0], bool(r[1]), r[2].astimezone(UTC), r[3].astimezone(UTC), r[4])
                for r in rows
            ]
        rows = await self._sqlite(
            "SELECT s.id, s.connected, s.created_at, s.updated_at, "
            "(SELECT count(*) FROM eq_tasks t WHERE t.session_id = s.id "
            "AND t.status = 'pending') FROM eq_sessions s ORDER BY s.id"
        )
        return [
            SessionRow(r[0], bool(r[1]), from_micros(r[2]), from_micros(r[3]), int(r[4]))
            for r in rows
        ]

    async def queue(self, now: datetime) -> QueueCounts:
        """Pending posts per session, and the earliest ``scheduled_at`` of those due by ``now``."""
        if self.postgres:
            rows = await self._pg_rows(
                "SELECT session_id, count(*), min(scheduled_at) FILTER (WHERE scheduled_at <= %s) "
                "FROM {s}.tasks WHERE status = 'pending' GROUP BY session_id",
                (now,),
            )
            due = [r[2] for r in rows if r[2] is not None]
            oldest = min(due).astimezone(UTC) if due else None
            return QueueCounts({r[0]: int(r[1]) for r in rows}, oldest)
        rows = await self._sqlite(
            "SELECT session_id, count(*), min(CASE WHEN scheduled_at <= ? THEN scheduled_at END) "
            "FROM eq_tasks WHERE status = 'pending' GROUP BY session_id",
            (to_micros(now),),
        )
        micros = [r[2] for r in rows if r[2] is not None]
        return QueueCounts(
            {r[0]: int(r[1]) for r in rows}, from_micros(min(micros)) if micros else None
        )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
