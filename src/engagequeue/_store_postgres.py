# Copyright 2026 engagequeue developers. Licensed under the MIT license.
"""``PostgresTaskStore``: the same ``TaskStore`` on PostgreSQL, for many hosts and workers.

Every table lives in one schema (``engagequeue`` by default), created and migrated on
``open``. Instants are ``timestamptz`` (microsecond precision, exactly what SQLite's integer
microseconds hold). Connections come from a ``psycopg_pool.AsyncConnectionPool``; an
operation that loses its connection before its transaction could commit is retried with
tenacity on a fresh one, so the store carries on after a server restart.

Claims run in parallel across workers and hosts: each picks group heads from its
snapshot, locks them with ``FOR UPDATE SKIP LOCKED`` (so concurrent claimers take
different tasks instead of waiting for each other), holds its sessions ``FOR SHARE`` (so a
disconnect cannot slip between the check and the claim), and the unique partial index on
``(session_id, group_id) WHERE status = 'processing'`` makes the database itself refuse a
second task of one group in flight. See docs/postgres.md.

This module is imported only on first use of ``engagequeue.PostgresTaskStore``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import secrets
import zlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

import tenacity

from . import _errors, _store_args, _store_rows
from . import _store_base as base
from ._errors import EngageQueueError, OutcomeUnknownError, SessionNotFound, TaskNotFound
from ._models import Page, Task, TaskEvent
from ._state import TRANSITIONS
from ._store_args import Clock, HistoryQuery, NewTask
from ._store_ops import Event, message_detail, refusal, sending_detail
from ._store_postgres_recurring import RECURRENCE_MIGRATION, PostgresRecurringMixin
from ._times import isoformat, parse_instant

try:
    import psycopg
    from psycopg import conninfo as _conninfo
    from psycopg_pool import AsyncConnectionPool, PoolClosed
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "PostgresTaskStore needs psycopg 3 and psycopg-pool: pip install 'engagequeue[postgres]'"
    ) from exc

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

    from psycopg.rows import TupleRow

    Connection = psycopg.AsyncConnection[TupleRow]

__all__ = ["PostgresTaskStore"]

_T = TypeVar("_T")

logger: Final = logging.getLogger("engagequeue.postgres")

SCHEMA_VERSION: Final = 3

# Each entry migrates from version N to N + 1 (index 0: from an empty schema to version 1).
# ``{s}`` is the quoted schema name.
_MIGRATIONS: Final[Sequence[tuple[str, str]]] = (
    (
        "sessions, tasks and their events",
        """
        CREATE TABLE {s}.sessions (
            id          text PRIMARY KEY,
            connected   boolean NOT NULL DEFAULT true,
            created_at  timestamptz NOT NULL,
            updated_at  timestamptz NOT NULL
        );
        CREATE TABLE {s}.tasks (
            id               text COLLATE "C" PRIMARY KEY,
            session_id       text NOT NULL REFERENCES {s}.sessions (id) ON DELETE CASCADE,
            group_id         text NOT NULL,
        """
        + _store_rows.task_columns_ddl("text", "timestamptz", "integer")
        + """
        );
        -- Claims scan pending tasks in due order.
        CREATE INDEX tasks_due ON {s}.tasks (scheduled_at, id) WHERE status = 'pending';
        -- Finds the head (oldest pending task) of a group.
        CREATE INDEX tasks_group_pending ON {s}.tasks (session_id, group_id, scheduled_at, id)
            WHERE status = 'pending';
        -- The database itself refuses two tasks of one group in flight; also serves
        -- "this session's processing tasks".
        CREATE UNIQUE INDEX tasks_one_in_flight ON {s}.tasks (session_id, group_id)
            WHERE status = 'processing';
        CREATE INDEX tasks_lease ON {s}.tasks (lease_expires_at) WHERE status = 'processing';
        -- History: ordered for the page, covering (index-only) for the count.
        CREATE INDEX tasks_history ON {s}.tasks (session_id, group_id, scheduled_at, id)
            INCLUDE (status);
        CREATE TABLE {s}.task_events (
            seq      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            task_id  text COLLATE "C" NOT NULL REFERENCES {s}.tasks (id) ON DELETE CASCADE,
            at       timestamptz NOT NULL,
            kind     text NOT NULL,
            detail   text NOT NULL DEFAULT '{{}}'
        );
        CREATE INDEX task_events_task ON {s}.task_events (task_id, seq);
        """,
    ),
    (
        "task versions: every change bumps it, edits and cancels can require one",
        """
        ALTER TABLE {s}.tasks ADD COLUMN version integer NOT NULL DEFAULT 1;
        """,
    ),
    RECURRENCE_MIGRATION,
)

_COLUMNS: Final = _store_rows.TASK_COLUMNS
_STATUS: Final = _store_rows.STATUSES
_SCHEMA_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# synchronous_commit levels, weakest first.
_SYNC_LEVELS: Final = ("off", "local", "remote_write", "on", "remote_apply")
_DURABILITY_FLOOR: Final = {"normal": "local", "full": "on"}
# Advisory lock classes (first key of the two-int form); the second key is the schema's.
# Retry waits: 50 ms doubling up to 1 s, plus jitter so reconnecting clients spread out.
_WAIT: Final = tenacity.wait_exponential(multiplier=0.05, max=1.0) + tenacity.wait_random(0, 0.05)
# Steps the due-order claim walk takes before switching to the per-group walk.
_CLAIM_WALK: Final = 256
_CLAIM_SPREAD: Final = 200
"""Claimable candidates a claim picks beyond its limit (up to 3x it), so claimers working
from one snapshot still find tasks that the others did not lock."""
_CLAIM_TRIES: Final = 20
_MIGRATE_LOCK_CLASS: Final = 0x6551_0002
_LISTEN_RETRY_MAX: Final = 2.0
"""The longest pause, in seconds, between two reconnects of the wake-up listener."""
# A listener on a dead network path would wait forever without TCP keepalives.
_KEEPALIVES: Final[dict[str, Any]] = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


def _int32(text: str) -> int:
    """A stable signed 32-bit key for ``text``."""
    value = zlib.crc32(text.encode())
    return value - (1 << 32) if value >= (1 << 31) else value


def _utc(value: datetime) -> datetime:
    # psycopg returns timestamptz in the session's TimeZone, which the pool sets to UTC.
    return value if value.tzinfo is UTC else value.astimezone(UTC)


_row_to_task: Final = _store_rows.task_reader(_utc)
_row_to_event: Final = _store_rows.event_reader(_utc, json.loads)


def _dumps(detail: Mapping[str, Any]) -> str:
    return json.dumps(detail, default=str)


def _redact(dsn: str) -> str:
    try:
        params = _conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<invalid dsn>"
    if "password" not in params:
        return dsn
    params["password"] = "***"  # noqa: S105 - a mask, not a password
    return _conninfo.make_conninfo("", **params)


def _transient(exc: BaseException) -> bool:
    """Errors after which the transaction certainly did not commit and a retry may work."""
    return isinstance(exc, psycopg.OperationalError) and not isinstance(exc, PoolClosed)


_Complete = tuple[str, str | None, str | None, asyncio.Future[Task]]
"""A complete waiting for its batch: task id, message id, worker id, the caller's future."""

_COMPLETE_BATCH: Final = 500
"""The most completes committed in one statement."""

_EMPTY: Final = "{}"


def _settle(calls: Iterable[_Complete], outcomes: Iterable[Task | BaseException]) -> None:
    """Hand each waiting call its outcome (a call whose caller gave up is skipped)."""
    for call, outcome in zip(calls, outcomes, strict=True):
        future = call[3]
        if future.done():
            continue
        if isinstance(outcome, asyncio.CancelledError):
            future.cancel()
        elif isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class PostgresTaskStore(base.StoreBase, PostgresRecurringMixin):
    """The ``TaskStore`` on PostgreSQL: same behaviour as ``SQLiteTaskStore``, many hosts.

    Needs the ``engagequeue[postgres]`` extra (psycopg 3 and psycopg-pool).

    Args:
        dsn: a libpq connection string or URI (``postgresql://user@host:5432/db``).
        schema: the schema holding the store's tables; created and migrated on ``open``.
            Several independent stores can share one database under different schemas.
        durability: the least ``synchronous_commit`` level of the store's transactions.
            ``"normal"`` (default): at least ``local``, every commit is flushed to the
            server's WAL before it returns, so it survives a server crash, restart or power
            loss. ``"full"``: at least ``on``, which with synchronous replication also
            waits for the standbys. A stronger server setting is never lowered.
        on_expired: what ``recover_expired`` does with a processing task whose lease ended:
            ``"retry"`` (default; back to pending, at-least-once) or ``"fail"`` (failed,
            at-most-once).
        clock: a zero-argument callable returning an aware ``datetime``; the store's notion
            of now for timestamps and, when ``now`` is not given, for claims.
        min_pool_size: connections the pool keeps open.
        max_pool_size: the most connections the pool opens.
        connect_timeout: seconds ``open`` keeps trying to reach the server, and the longest
            wait for a free pooled connection.
        retry_timeout: seconds an operation keeps retrying after losing its connection
            (a server restart or failover) before the error is raised.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "engagequeue",
        durability: str = "normal",
        on_expired: str = "retry",
        clock: Clock | None = None,
        min_pool_size: int = 1,
        max_pool_size: int = 10,
        connect_timeout: float = 30.0,
        retry_timeout: float = 30.0,
    ) -> None:
        if not isinstance(dsn, str):
            raise _errors.ValidationError("dsn must be a string", field="dsn")
        try:
            _conninfo.conninfo_to_dict(dsn)
        except psycopg.ProgrammingError as exc:
            raise _errors.ValidationError(
                f"dsn is not a valid connection string: {exc}", field="dsn"
            ) from exc
        if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
            raise _errors.ValidationError(
                "schema must be an unquoted SQL identifier: a letter or _, then letters, "
                f"digits or _, at most 63 characters; got {schema!r}",
                field="schema",
            )
        for name, size in (("min_pool_size", min_pool_size), ("max_pool_size", max_pool_size)):
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise _errors.ValidationError(
                    f"{name} must be an integer >= 0, got {size!r}", field=name
                )
        if max_pool_size < max(min_pool_size, 1):
            raise _errors.ValidationError(
                f"max_pool_size must be at least 1 and at least min_pool_size, got {max_pool_size}",
                field="max_pool_size",
            )
        for name, seconds in (
            ("connect_timeout", connect_timeout),
            ("retry_timeout", retry_timeout),
        ):
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
                raise _errors.ValidationError(
                    f"{name} must be a number of seconds >= 0", field=name
                )
        self.dsn = dsn
        self.schema = schema
        self.durability = _store_args.check_durability(durability)
        self.on_expired = _store_args.check_on_expired(on_expired)
        self._clock: Clock = clock or _store_args.default_clock
        self._min_size = min_pool_size
        self._max_size = max_pool_size
        self._connect_timeout = float(connect_timeout)
        self._retry_timeout = float(retry_timeout)
        self._pool: AsyncConnectionPool[Connection] | None = None
        self._wakeups = []
        self._s = f'"{schema}"'
        key = _int32(schema)
        self._migrate_lock = f"SELECT pg_advisory_xact_lock({_MIGRATE_LOCK_CLASS}, {key})"
        self._sync_sql = ""  # "SET LOCAL synchronous_commit = ...; " when the server's is weaker
        # Wake-ups across processes and hosts: writes that wake schedulers notify this
        # channel in their transaction; a listener connection per store with callbacks
        # wakes them. The payload is this store's token, so it skips its own (its
        # callbacks ran already). Schema names are [A-Za-z0-9_]: safe as literals.
        self._channel = f"eqwake_{schema}"[:63]
        self._token = secrets.token_hex(8)
        self._notify_commit = f"SELECT pg_notify('{self._channel}', '{self._token}'); COMMIT"
        self._listener: asyncio.Task[None] | None = None
        self._claim_sql = self._build_claim_sql()
        self._complete_sql = self._build_complete_sql()
        self._completes: list[_Complete] = []
        self._completer: asyncio.Task[None] | None = None
        s = self._s
        self._names = (  # how a flow's neutral SQL (see _store_base) reads here
            ("%t", "%s::timestamptz"),
            ("{tasks}", f"{s}.tasks"),
            ("{sessions}", f"{s}.sessions"),
            ("{columns}", _store_rows.TASK_COLUMNS),
            # Lock the row first, so what is read is what the update replaces.
            ("{lock}", " FOR UPDATE"),
            ("{in_flight}", f"{s}.tasks"),
        )

    def __repr__(self) -> str:
        return (
            f"PostgresTaskStore({_redact(self.dsn)!r}, schema={self.schema!r}, "
            f"durability={self.durability!r})"
        )

    # -- life cycle -----------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, create the schema or migrate it, and start the pool. Idempotent.

        Keeps trying to reach the server for ``connect_timeout`` seconds.
        """
        if self._pool is not None:
            return
        conn = await self._connect_direct(self._connect_timeout)
        try:
            await self._migrate(conn)
            cursor = await conn.execute("SELECT current_setting('synchronous_commit')")
            row = await cursor.fetchone()
            server = row[0] if row else "on"
        finally:
            await conn.close()
        floor = _DURABILITY_FLOOR[self.durability]
        if server not in _SYNC_LEVELS or _SYNC_LEVELS.index(server) < _SYNC_LEVELS.index(floor):
            self._sync_sql = f"SET LOCAL synchronous_commit = {floor}; "
        else:
            self._sync_sql = ""
        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            self.dsn,
            min_size=self._min_size,
            max_size=self._max_size,
            kwargs={"autocommit": True},
            configure=self._configure,
            timeout=self._connect_timeout,
            name=f"engagequeue-{self.schema}",
            open=False,
        )
        await pool.open(wait=False)
        self._pool = pool
        self._listen_changed()

    async def close(self) -> None:
        """Close the pool's connections and the wake-up listener. Idempotent."""
        pool, self._pool = self._pool, None
        await self._stop_listener()
        if pool is not None:
            await pool.close()

    async def drop_schema(self) -> None:
        """Drop the store's schema with everything in it (``DROP SCHEMA ... CASCADE``).

        Irreversible: every session, task and event of this store is deleted. Meant for
        tests and for tearing an installation down; ``open`` creates a fresh schema again.
        """
        sql = f"DROP SCHEMA IF EXISTS {self._s} CASCADE"
        if self._pool is None:
            conn = await self._connect_direct(self._connect_timeout)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()
            return

        async def run(conn: Connection) -> None:
            await conn.execute(sql)

        await self._read(run)

    @staticmethod
    async def _configure(conn: Connection) -> None:
        await conn.execute("SET TimeZone TO 'UTC'")

    async def _connect_direct(self, within: float) -> Connection:
        """One connection outside the pool, retried for up to ``within`` seconds."""
        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception(_transient),
            stop=tenacity.stop_after_delay(within),
            wait=_WAIT,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
                    await self._configure(conn)
                    return conn
        except psycopg.OperationalError as exc:
            raise EngageQueueError(
                f"cannot connect to PostgreSQL at {_redact(self.dsn)}: {exc}"
            ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _migrate(self, conn: Connection) -> None:
        s = self._s
        await conn.execute("BEGIN")
        try:
            # Serialises concurrent opens, CREATE SCHEMA included.
            await conn.execute(self._migrate_lock)
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {s}.schema_version ("
                "version integer PRIMARY KEY, description text NOT NULL, "
                "applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cursor = await conn.execute(f"SELECT coalesce(max(version), 0) FROM {s}.schema_version")
            row = await cursor.fetchone()
            version = int(row[0]) if row else 0
            self._check_version(version)
            for number, (description, script) in enumerate(_MIGRATIONS[version:], version + 1):
                await conn.execute(script.format(s=s))
                await conn.execute(
                    f"INSERT INTO {s}.schema_version (version, description) VALUES (%s, %s)",
                    (number, description),
                )
                logger.info("engagequeue schema %s migrated to version %d", self.schema, number)
            await conn.execute("COMMIT")
        except BaseException:
            if not conn.closed:
                await conn.execute("ROLLBACK")
            raise

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            msg = (
                f"the schema {self.schema!r} has version {version}, newer than this "
                f"engagequeue knows ({SCHEMA_VERSION}); upgrade engagequeue"
            )
            raise EngageQueueError(msg)

    # -- wake-ups from other processes and hosts -------------------------------------------

    def _listen_changed(self) -> None:
        """Run the listener while wake-up callbacks wait and the store is open."""
        if self._wakeups and self._pool is not None:
            if self._listener is None or self._listener.done():
                try:
                    asyncio.get_running_loop()
                except RuntimeError:
                    return  # added outside a loop: open() starts listening
                self._listener = asyncio.create_task(
                    self._listen(), name=f"engagequeue-listen {self.schema}"
                )
        elif self._listener is not None:
            self._listener.cancel()
            self._listener = None

    async def _stop_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _listen(self) -> None:
        """LISTEN on the schema's channel on a dedicated connection, reconnecting forever.

        Notifications sent while the connection was down are lost, so every reconnect
        (and the loss itself) wakes the callbacks: the scheduler's next pass claims
        everything due, whatever it missed.
        """
        failures = 0
        listened = False
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.dsn,
                    autocommit=True,
                    application_name=f"engagequeue-listener {self.schema}"[:63],
                    **_KEEPALIVES,
                )
                try:
                    await conn.execute(f'LISTEN "{self._channel}"')
                    if listened:
                        logger.info("engagequeue wake-up listener of %s reconnected", self.schema)
                        self._wake_local()  # a full claim pass after the gap
                    listened, failures = True, 0
                    await self._receive(conn)
                finally:
                    await conn.close()
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, OSError) as exc:
                failures += 1
                delay = min(_LISTEN_RETRY_MAX, 0.05 * 2**failures)
                logger.warning(
                    "engagequeue wake-up listener of %s lost its connection (%s); "
                    "reconnecting in %.2f s",
                    self.schema,
                    exc,
                    delay,
                )
                if listened:
                    self._wake_local()  # changes may be missed until it is back
                await asyncio.sleep(delay)

    async def _receive(self, conn: Connection) -> None:
        """Wake the callbacks for each notification of another store until the link fails.

        Reads the idle connection's socket from the event loop itself: psycopg's
        ``notifies()`` wakes every 100 ms to look for interrupts (about 3 ms of CPU per
        second per idle listener); this costs nothing until the server sends something.
        """
        pgconn = conn.pgconn
        token = self._token.encode()
        readable = asyncio.Event()
        loop = asyncio.get_running_loop()
        fd = pgconn.socket
        loop.add_reader(fd, readable.set)
        try:
            while True:
                await readable.wait()
                readable.clear()
                pgconn.consume_input()  # raises OperationalError once the link is gone
                if pgconn.status != psycopg.pq.ConnStatus.OK:
                    raise psycopg.OperationalError("the listener connection was closed")
                woken = False
                while (notice := pgconn.notifies()) is not None:
                    woken = woken or notice.extra != token
                if woken:
                    self._wake_local()
        finally:
            loop.remove_reader(fd)

    # -- plumbing -------------------------------------------------------------------------

    def _get_pool(self) -> AsyncConnectionPool[Connection]:
        pool = self._pool
        if pool is None:
            raise EngageQueueError(
                "the store is not open; use 'async with store:' or 'await store.open()'"
            )
        return pool

    def _retrying(self) -> tenacity.AsyncRetrying:
        return tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception(_transient),
            stop=tenacity.stop_after_delay(self._retry_timeout),
            wait=_WAIT,
            reraise=True,
            before_sleep=self._log_retry,
        )

    @staticmethod
    def _log_retry(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logger.warning(
            "PostgreSQL connection problem (attempt %d), retrying: %s", state.attempt_number, exc
        )

    async def _read(self, run: Callable[[Connection], Awaitable[_T]]) -> _T:
        """Run ``run`` on a pooled autocommit connection; retried after connection errors."""
        pool = self._get_pool()
        async for attempt in self._retrying():
            with attempt:
                async with pool.connection() as conn:
                    return await run(conn)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _write(
        self,
        run: Callable[[Connection], Awaitable[_T]],
        *,
        on_unknown: Callable[[Connection], Awaitable[_T]] | None = None,
        notify: bool = False,
    ) -> _T:
        """Run ``run`` in one transaction.

        A connection error before ``COMMIT`` was sent means the transaction rolled back:
        it is retried. One during ``COMMIT`` leaves the outcome unknown: the write is
        repeated with ``on_unknown`` when one is given (an idempotent form), else
        ``EngageQueueError`` is raised rather than risk doing it twice. With ``notify``,
        the transaction also notifies the schema's wake-up channel (delivered at commit).
        """
        pool = self._get_pool()
        begin = f"BEGIN; {self._sync_sql}".rstrip("; ")
        current = run
        async for attempt in self._retrying():
            with attempt:
                async with pool.connection() as conn:
                    committing = False
                    try:
                        await conn.execute(begin)
                        result = await current(conn)
                        committing = True
                        await conn.execute(self._notify_commit if notify else "COMMIT")
                    except psycopg.OperationalError as exc:
                        if not committing:
                            await self._rollback(conn)
                            raise
                        if on_unknown is None or isinstance(exc, PoolClosed):
                            raise OutcomeUnknownError(
                                "the connection to PostgreSQL broke while committing; the "
                                "change may or may not have been applied (check with get() "
                                f"or events()): {exc}"
                            ) from exc
                        current = on_unknown
                        raise
                    except BaseException:
                        if not committing:
                            await self._rollback(conn)
                        raise
                    return result
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    async def _rollback(conn: Connection) -> None:
        if conn.closed or conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            return
        try:
            await conn.execute("ROLLBACK")
        except psycopg.Error:
            logger.debug("rollback failed; the pool discards the connection", exc_info=True)

    def _now(self) -> datetime:
        return parse_instant(self._clock(), "clock()")

    async def _insert_events(self, conn: Connection, at: datetime, events: Sequence[Event]) -> None:
        if not events:
            return
        await conn.execute(
            f"INSERT INTO {self._s}.task_events (task_id, at, kind, detail) "
            "SELECT e.task_id, %s, e.kind, e.detail "
            "FROM unnest(%s::text[], %s::text[], %s::text[]) WITH ORDINALITY "
            "AS e(task_id, kind, detail, ord) ORDER BY e.ord",
            (
                at,
                [e.task.id for e in events],
                [e.kind for e in events],
                [_dumps(e.detail) for e in events],
            ),
        )

    async def _conditional(
        self,
        conn: Connection,
        operation: str,
        task_id: str,
        *change: Any,  # noqa: ANN401 - the assignments and their parameters
        **checks: Any,  # noqa: ANN401 - worker_id, version
    ) -> Task:
        """``_store_sqlite``'s ``_conditional``, on PostgreSQL."""
        flow = base.update_flow(
            operation, base.OneTask(task_id, **checks), change[0], (*change[1],)
        )
        changed = await base.drive_async(flow, functools.partial(self._step, conn))
        return changed[0]

    async def _step(self, conn: Connection, step: base.Step) -> Any:  # noqa: ANN401 - per step
        """Run one step of a flow (see ``_store_base``) on ``conn``."""
        match step:
            case base.Events(at=at, events=events):
                await self._insert_events(conn, at, events)
                return None
            case base.FollowUp(tasks=tasks, at=at, reason="edited"):
                for task in tasks:
                    await self._note_own_edit(conn, task)
                return False
            case base.FollowUp(tasks=tasks, at=at, reason=reason):
                return await self._advance_recurrences(conn, list(tasks), at, reason)
            case base.Count(sql=sql, params=params):
                return (await conn.execute(base.render(sql, self._names), params)).rowcount
            case base.Tasks(sql=sql, params=params):
                cursor = await conn.execute(base.render(sql, self._names), params)
                return [_row_to_task(r) for r in await cursor.fetchall()]
            case _:
                cursor = await conn.execute(base.render(step.sql, self._names), step.params)
                return await cursor.fetchall()

    async def _run_change(self, change: base.Change, *, notify: bool) -> tuple[list[Event], bool]:
        async def run(conn: Connection) -> tuple[list[Event], bool]:
            flow = base.change_flow(change, self._now())
            return await base.drive_async(flow, functools.partial(self._step, conn))

        return await self._write(run, notify=notify)

    # -- sessions -------------------------------------------------------------------------

    async def _add_session(self, session_id: str) -> None:

        async def run(conn: Connection) -> None:
            now = self._now()
            await conn.execute(
                f"INSERT INTO {self._s}.sessions (id, connected, created_at, updated_at) "
                "VALUES (%s, true, %s, %s) ON CONFLICT (id) DO NOTHING",
                (session_id, now, now),
            )

        await self._write(run, on_unknown=run)

    async def _mark_connected(self, session_id: str) -> None:

        async def run(conn: Connection) -> None:
            cursor = await conn.execute(
                f"UPDATE {self._s}.sessions SET connected = true, updated_at = %s WHERE id = %s",
                (self._now(), session_id),
            )
            if cursor.rowcount == 0:
                raise SessionNotFound(session_id)

        await self._write(run, on_unknown=run, notify=True)

    async def _delete_session(self, session_id: str) -> None:
        sql = f"DELETE FROM {self._s}.sessions WHERE id = %s"

        async def run(conn: Connection) -> None:
            cursor = await conn.execute(sql, (session_id,))
            if cursor.rowcount == 0:
                raise SessionNotFound(session_id)

        async def again(conn: Connection) -> None:
            # The first try may have committed: the session being gone is success.
            await conn.execute(sql, (session_id,))

        await self._write(run, on_unknown=again)

    async def _is_connected(self, session_id: str) -> bool:

        async def run(conn: Connection) -> bool:
            cursor = await conn.execute(
                f"SELECT connected FROM {self._s}.sessions WHERE id = %s", (session_id,)
            )
            row = await cursor.fetchone()
            if row is None:
                raise SessionNotFound(session_id)
            return bool(row[0])

        return await self._read(run)

    # -- scheduling and editing -----------------------------------------------------------

    async def _insert_tasks(
        self, conn: Connection, prepared: Sequence[NewTask], detail: Mapping[str, Any]
    ) -> list[Task]:
        """Insert tasks and their ``created`` events.

        Idempotent: ids are drawn before the first try, so a repeat after an unknown
        commit finds them and returns the stored tasks instead of inserting twice.
        """
        s = self._s
        now = self._now()
        wanted = list(dict.fromkeys(p.session_id for p in prepared))
        cursor = await conn.execute(
            f"SELECT id FROM {s}.sessions WHERE id = ANY(%s::text[]) FOR KEY SHARE", (wanted,)
        )
        found = {r[0] for r in await cursor.fetchall()}
        for session_id in wanted:
            if session_id not in found:
                raise SessionNotFound(session_id)
        ids = [p.id for p in prepared]
        details = [
            _dumps(
                {
                    "media_type": p.payload.media_type.value,
                    "scheduled_at": isoformat(p.scheduled_at),
                    **detail,
                }
            )
            for p in prepared
        ]
        cursor = await conn.execute(
            f"""
            INSERT INTO {s}.tasks (id, session_id, group_id, media_type, content, media_url,
                mimetype, filename, scheduled_at, status, attempts, max_attempts,
                created_at, updated_at, recurrence_id)
            SELECT n.id, n.session_id, n.group_id, n.media_type, n.content, n.media_url,
                n.mimetype, n.filename, n.scheduled_at, 'pending', 0, n.max_attempts,
                %(now)s, %(now)s, n.recurrence_id
            FROM unnest(%(ids)s::text[], %(sessions)s::text[], %(groups)s::text[],
                %(media)s::text[], %(content)s::text[], %(urls)s::text[],
                %(mimetypes)s::text[], %(filenames)s::text[], %(times)s::timestamptz[],
                %(max)s::integer[], %(recurrences)s::text[])
                WITH ORDINALITY AS n(id, session_id, group_id, media_type, content,
                media_url, mimetype, filename, scheduled_at, max_attempts, recurrence_id, ord)
            ORDER BY n.ord
            ON CONFLICT (id) DO NOTHING
            RETURNING id
            """,
            {
                "now": now,
                "ids": ids,
                "sessions": [p.session_id for p in prepared],
                "groups": [p.group_id for p in prepared],
                "media": [p.payload.media_type.value for p in prepared],
                "content": [p.payload.content for p in prepared],
                "urls": [p.payload.media_url for p in prepared],
                "mimetypes": [p.payload.mimetype for p in prepared],
                "filenames": [p.payload.filename for p in prepared],
                "times": [p.scheduled_at for p in prepared],
                "max": [p.max_attempts for p in prepared],
                "recurrences": [p.recurrence_id for p in prepared],
            },
        )
        inserted = {r[0] for r in await cursor.fetchall()}
        if inserted:
            keep = [n for n, p in enumerate(prepared) if p.id in inserted]
            await conn.execute(
                f"INSERT INTO {s}.task_events (task_id, at, kind, detail) "
                "SELECT e.id, %s, 'created', e.detail "
                "FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS e(id, detail, ord) "
                "ORDER BY e.ord",
                (now, [ids[n] for n in keep], [details[n] for n in keep]),
            )
        if len(inserted) != len(prepared):
            # An earlier try committed these very ids: return what it stored.
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM {s}.tasks WHERE id = ANY(%s::text[])", (ids,)
            )
            stored = {r[0]: _row_to_task(r) for r in await cursor.fetchall()}
            return [stored[i] for i in ids]
        build = _store_rows.builder(Task)
        return [_store_rows.pending_task(build, p, now) for p in prepared]

    async def _insert(
        self, tasks: Sequence[NewTask], detail: Mapping[str, Any], *, single: bool
    ) -> list[Task]:
        del single  # every insert is one statement, however many tasks

        async def run(conn: Connection) -> list[Task]:
            return await self._insert_tasks(conn, tasks, detail)

        return await self._write(run, on_unknown=run, notify=True)

    async def _get(self, task_id: str) -> Task:
        return await self._read(lambda conn: self._fetch(conn, task_id))

    async def _fetch(self, conn: Connection, task_id: str, lock: str = "") -> Task:
        """The task (``lock``: a row-locking clause such as ``FOR SHARE``), or TaskNotFound."""
        cursor = await conn.execute(
            f"SELECT {_COLUMNS} FROM {self._s}.tasks WHERE id = %s {lock}", (task_id,)
        )
        row = await cursor.fetchone()
        if row is None:
            raise TaskNotFound(task_id)
        return _row_to_task(row)

    # -- claiming and finishing -----------------------------------------------------------

    def _build_claim_sql(self) -> tuple[str, str, str]:
        """The claim's three statements: walk by due time, walk by group, take.

        Both walks are recursive CTEs that step through an index one probe at a time
        (a recursive CTE is evaluated only as far as it is read), and check each
        candidate with scalar sub-selects (one index probe each), so no step depends on
        planner statistics and a freshly filled table claims as fast as an analysed one.
        A candidate is claimable when it is its group's head (oldest pending task), of a
        connected session, with nothing of its group in flight.

        1. ``by_time`` walks pending due tasks in (scheduled_at, id) order and keeps the
           claimable ones: cheap while due tasks are mostly heads, but a backlog in busy
           groups would make it walk the whole backlog, so it stops after ``cap`` steps.
        2. ``by_group`` (only when the first walk hit its cap) visits each group's head
           once, a loose index scan over (session_id, group_id), and sorts the claimable
           ones by (scheduled_at, id): bounded by the number of groups, whatever the
           backlog.
        3. ``take`` moves the chosen ids to processing and records their events.
        """
        s = self._s
        claimable = f"""
            (SELECT s.connected FROM {s}.sessions AS s WHERE s.id = w.session_id)
            AND w.id = (
                SELECT e.id FROM {s}.tasks AS e
                WHERE e.session_id = w.session_id AND e.group_id = w.group_id
                  AND e.status = 'pending'
                ORDER BY e.scheduled_at, e.id LIMIT 1)
            AND (
                SELECT b.id FROM {s}.tasks AS b
                WHERE b.session_id = w.session_id AND b.group_id = w.group_id
                  AND b.status = 'processing') IS NULL"""
        due = f"""
            SELECT t.scheduled_at, t.id, t.session_id, t.group_id FROM {s}.tasks AS t
            WHERE t.status = 'pending' AND t.scheduled_at <= %(now)s"""
        by_time = f"""
            WITH RECURSIVE walk AS (
                SELECT f.*, 1 AS step FROM ({due} ORDER BY t.scheduled_at, t.id LIMIT 1) AS f
                UNION ALL
                SELECT n.*, w.step + 1 FROM walk AS w CROSS JOIN LATERAL ({due}
                    AND (t.scheduled_at, t.id) > (w.scheduled_at, w.id)
                    ORDER BY t.scheduled_at, t.id LIMIT 1) AS n
                WHERE w.step < %(cap)s
            )
            SELECT w.id, w.step, {claimable} FROM walk AS w
            WHERE w.step = %(cap)s OR ({claimable})
            LIMIT %(limit)s + 1
        """
        head = f"""
            SELECT t.session_id, t.group_id, t.scheduled_at, t.id FROM {s}.tasks AS t
            WHERE t.status = 'pending'"""
        by_group = f"""
            WITH RECURSIVE w AS (
                ({head} ORDER BY t.session_id, t.group_id, t.scheduled_at, t.id LIMIT 1)
                UNION ALL
                SELECT n.* FROM w AS h CROSS JOIN LATERAL ({head}
                    AND (t.session_id, t.group_id) > (h.session_id, h.group_id)
                    ORDER BY t.session_id, t.group_id, t.scheduled_at, t.id LIMIT 1) AS n
            )
            SELECT w.id FROM w
            WHERE w.scheduled_at <= %(now)s AND {claimable}
            ORDER BY w.scheduled_at, w.id
            LIMIT %(limit)s
        """
        returning = ", ".join("t." + c for c in _COLUMNS.split(", "))
        take = f"""
            WITH picked AS (
                -- Candidates another claimer holds are skipped, not waited for; a row
                -- changed since the snapshot is checked again at its latest version.
                SELECT t.id, t.session_id FROM {s}.tasks AS t
                WHERE t.id = ANY(%(ids)b::text[])
                  -- Written as a sub-select so that the planner looks the rows up by
                  -- primary key instead of scanning a partial index on status.
                  AND t.status = (SELECT 'pending'::text)
                ORDER BY t.scheduled_at, t.id
                LIMIT %(limit)s
                FOR UPDATE OF t SKIP LOCKED
            ), live AS (
                -- FOR SHARE: a concurrent disconnect waits for this claim to commit (and
                -- then releases what it took), or this waits for it and sees it.
                SELECT x.id FROM {s}.sessions AS x
                WHERE x.id IN (SELECT p.session_id FROM picked AS p) AND x.connected
                FOR SHARE
            ), claimed AS (
                UPDATE {s}.tasks AS t
                SET status = 'processing', worker_id = %(worker)s,
                    lease_expires_at = %(expires)s, updated_at = %(stamp)s,
                    version = t.version + 1
                FROM picked AS p
                WHERE t.id = p.id AND p.session_id IN (SELECT l.id FROM live AS l)
                RETURNING {returning}
            ), logged AS (
                INSERT INTO {s}.task_events (task_id, at, kind, detail)
                SELECT c.id, %(stamp)s, 'claimed', %(detail)s
                FROM claimed AS c ORDER BY c.scheduled_at, c.id
            )
            SELECT * FROM claimed ORDER BY scheduled_at, id
        """
        return by_time, by_group, take

    def _build_complete_sql(self) -> str:
        """Complete a batch: one ``UPDATE ... FROM unnest`` and its events, one statement.

        Returns each completed task with its call's position (1-based); a call whose task
        is not in the source status, or is claimed by another worker, returns nothing.
        A task named twice is updated once (through one of its calls).
        """
        s = self._s
        source = TRANSITIONS["complete"].source.value
        returning = ", ".join("t." + c for c in _COLUMNS.split(", "))
        return f"""
            WITH v AS (
                -- Arrays in binary format: psycopg dumps them several times faster.
                SELECT * FROM unnest(%(ids)b::text[], %(messages)b::text[],
                    %(workers)b::text[], %(details)b::text[])
                    WITH ORDINALITY AS v(id, message_id, worker_id, detail, ord)
            ), done AS (
                UPDATE {s}.tasks AS t
                SET status = 'completed', attempts = t.attempts + 1,
                    message_id = v.message_id, lease_expires_at = NULL,
                    updated_at = %(now)s, version = t.version + 1
                FROM v
                WHERE t.id = v.id AND t.status = '{source}'
                  AND (v.worker_id IS NULL OR t.worker_id = v.worker_id)
                RETURNING v.ord, v.detail, {returning}
            ), logged AS (
                INSERT INTO {s}.task_events (task_id, at, kind, detail)
                SELECT d.id, %(now)s, 'completed', d.detail FROM done AS d ORDER BY d.ord
            )
            SELECT d.ord, {", ".join("d." + c for c in _COLUMNS.split(", "))}
            FROM done AS d ORDER BY d.ord
        """

    async def _pick(self, conn: Connection, at: datetime, limit: int) -> list[str]:
        """The ids of the first ``limit`` claimable tasks of the snapshot, by (scheduled_at, id).

        Called with ``limit`` above the claim's own, so that concurrent claimers, which
        see the same heads, lock different ones.
        """
        by_time, by_group, _ = self._claim_sql
        cap = _CLAIM_WALK + limit
        cursor = await conn.execute(by_time, {"now": at, "limit": limit, "cap": cap})
        rows = await cursor.fetchall()
        ids = [r[0] for r in rows if r[2]][:limit]
        if len(ids) == limit or not any(r[1] == cap for r in rows):
            return ids
        cursor = await conn.execute(by_group, {"now": at, "limit": limit})
        return [r[0] for r in await cursor.fetchall()]

    async def _claim(self, claim: base.Claim) -> tuple[list[Event], bool]:
        """Claim with ``FOR UPDATE SKIP LOCKED``: concurrent claimers never wait.

        Claimers (threads, processes, hosts) lock different tasks and never receive the
        same one; two claims from
        different snapshots that pick two tasks of one group meet the unique in-flight
        index, and the later one is run again.
        """
        at, limit, worker_id, expires, send_by = (
            claim.at,
            claim.limit,
            claim.worker_id,
            claim.expires,
            claim.send_by,
        )
        detail = claim.detail
        want = limit + min(3 * limit, _CLAIM_SPREAD)

        async def run(conn: Connection) -> tuple[list[Event], bool]:
            ids = await self._pick(conn, at, want)
            if not ids:
                return [], False
            stamp = self._now()
            cursor = await conn.execute(
                self._claim_sql[2],
                {
                    "limit": limit,
                    "ids": ids,
                    "worker": worker_id,
                    "expires": expires,
                    "stamp": stamp,
                    "detail": _dumps(detail),
                },
            )
            events = [Event(_row_to_task(r), "claimed", detail) for r in await cursor.fetchall()]
            if send_by is not None:
                sending = [
                    Event(e.task, "sending", sending_detail(e.task, None))
                    for e in events
                    if e.task.scheduled_at <= send_by
                ]
                await self._insert_events(conn, stamp, sending)
            # A claimed occurrence creates the following one in this same transaction.
            tasks = [e.task for e in events]
            return events, await self._advance_recurrences(conn, tasks, at, "claimed")

        # No on_unknown: a claim whose commit is in doubt is not repeated; if it did
        # commit, its lease expires and recover_expired hands the tasks out again.
        for _ in range(_CLAIM_TRIES - 1):
            try:
                events, created = await self._write(run)
                break
            except psycopg.errors.UniqueViolation:
                continue  # another claim took this group meanwhile: look again
        else:
            events, created = await self._write(run)
        return events, created

    async def _complete(self, task_id: str, message_id: str | None, worker: str | None) -> Task:
        """Completes that meet on one store are committed together (see ``_run_completes``)."""
        self._get_pool()
        future: asyncio.Future[Task] = asyncio.get_running_loop().create_future()
        self._completes.append((task_id, message_id, worker, future))
        if self._completer is None:
            self._completer = asyncio.create_task(self._run_completes())
        return await future

    async def _run_completes(self) -> None:
        """Commit the waiting completes, a batch per transaction, until none wait.

        One batch is in flight at a time: completes that arrive meanwhile wait for the
        next one, so the busier the store, the larger its batches, while a lone complete
        is sent at once. A batch is one statement; a call refused there (not processing,
        another worker's claim, unknown, named twice) gets its own error and the others
        commit. An error of the whole statement (a bad value, say) reruns the batch one
        call per transaction, so only the call at fault fails; a lost connection is
        retried as one transaction, and a commit in doubt is reported to every call.
        """
        try:
            while self._completes:
                batch = [c for c in self._completes[:_COMPLETE_BATCH] if not c[3].done()]
                del self._completes[:_COMPLETE_BATCH]
                if not batch:
                    continue
                try:
                    outcomes = await self._write(functools.partial(self._complete_batch, batch))
                except psycopg.Error as exc:
                    if len(batch) == 1 or isinstance(exc, psycopg.OperationalError):
                        _settle(batch, [exc] * len(batch))
                        continue
                    outcomes = []
                    for one in batch:
                        try:
                            outcomes += await self._write(
                                functools.partial(self._complete_batch, [one])
                            )
                        except Exception as error:  # noqa: BLE001 - that call's outcome
                            outcomes.append(error)
                except Exception as exc:  # noqa: BLE001 - every call of the batch gets it
                    outcomes = [exc] * len(batch)
                _settle(batch, outcomes)
        except BaseException as exc:
            # Cancelled (the loop is closing): nobody else would answer the waiting calls.
            _settle(self._completes, [exc] * len(self._completes))
            self._completes.clear()
            raise
        finally:
            self._completer = None

    async def _complete_batch(
        self, batch: Sequence[_Complete], conn: Connection
    ) -> list[Task | Exception]:
        """Complete ``batch`` in one statement with its events: each call's task or error."""
        now = self._now()
        cursor = await conn.execute(
            self._complete_sql,
            {
                "ids": [c[0] for c in batch],
                "messages": [c[1] for c in batch],
                "workers": [c[2] for c in batch],
                "details": [
                    _EMPTY if c[1] is None else _dumps(message_detail(c[1])) for c in batch
                ],
                "now": now,
            },
        )
        outcomes: list[Task | Exception | None] = [None] * len(batch)
        for row in await cursor.fetchall():
            outcomes[row[0] - 1] = _row_to_task(row[1:])
        missed = [c for c, o in zip(batch, outcomes, strict=True) if o is None]
        if missed:
            # Read in this transaction, after the update: a task named twice shows completed.
            cursor = await conn.execute(
                f"SELECT id, status, worker_id, version FROM {self._s}.tasks "
                "WHERE id = ANY(%s::text[])",
                ([c[0] for c in missed],),
            )
            found = {r[0]: r[1:] for r in await cursor.fetchall()}
            for n, (c, o) in enumerate(zip(batch, outcomes, strict=True)):
                if o is None:
                    outcomes[n] = refusal(c[0], "complete", found.get(c[0]), worker_id=c[2])
        return [o for o in outcomes if o is not None]

    async def _mark_sending(self, task_id: str, worker: str | None) -> None:
        async def run(conn: Connection) -> Event:
            # FOR SHARE: no claim, completion or recovery changes the task before the
            # event is committed.
            task = await self._fetch(conn, task_id, "FOR SHARE")
            event = Event(task, "sending", sending_detail(task, worker))
            await self._insert_events(conn, self._now(), [event])
            return event

        await self._write(run)

    async def _next_due(self) -> datetime | None:
        s = self._s

        async def run(conn: Connection) -> datetime | None:
            cursor = await conn.execute(
                f"SELECT t.scheduled_at FROM {s}.tasks AS t "
                "WHERE t.status = 'pending' AND EXISTS ("
                f"SELECT 1 FROM {s}.sessions AS s WHERE s.id = t.session_id AND s.connected) "
                "ORDER BY t.scheduled_at LIMIT 1"
            )
            row = await cursor.fetchone()
            return None if row is None else _utc(row[0])

        return await self._read(run)

    # -- reading --------------------------------------------------------------------------

    async def _history(self, query: HistoryQuery) -> Page:
        where = ["session_id = %(session)s", "group_id = %(group)s"]
        params: dict[str, Any] = {
            "session": query.session_id,
            "group": query.group_id,
            "limit": query.limit,
            "offset": query.offset,
        }
        if query.start is not None:
            where.append("scheduled_at >= %(start)s")
            params["start"] = query.start
        if query.end is not None:
            where.append("scheduled_at < %(end)s")
            params["end"] = query.end
        if query.recurrence_id is not None:
            where.append("recurrence_id = %(recurrence)s")
            params["recurrence"] = query.recurrence_id
        if query.statuses is not None:
            where.append("status = ANY(%(statuses)s::text[])")
            params["statuses"] = [st.value for st in query.statuses]
        clause = " AND ".join(where)
        s = self._s
        # One statement, so the count and the page come from one snapshot.
        sql = f"""
            SELECT k.known, c.total, {", ".join("p." + col for col in _COLUMNS.split(", "))}
            FROM (SELECT EXISTS (SELECT 1 FROM {s}.sessions WHERE id = %(session)s) AS known) k
            CROSS JOIN (SELECT count(*) AS total FROM {s}.tasks WHERE {clause}) c
            LEFT JOIN LATERAL (
                SELECT {_COLUMNS} FROM {s}.tasks WHERE {clause}
                ORDER BY scheduled_at, id LIMIT %(limit)s OFFSET %(offset)s
            ) p ON true
            ORDER BY p.scheduled_at, p.id
        """

        async def run(conn: Connection) -> Page:
            cursor = await conn.execute(sql, params)
            rows = await cursor.fetchall()
            if not rows or not rows[0][0]:
                raise SessionNotFound(query.session_id)
            # unchecked: rows the store wrote (and attrs' tuple converter confuses mypy).
            page: Page = _store_rows.unchecked(
                Page,
                items=tuple(_row_to_task(r[2:]) for r in rows if r[2] is not None),
                total=rows[0][1],
                limit=query.limit,
                offset=query.offset,
            )
            return page

        return await self._read(run)

    async def _events(self, task_id: str) -> list[TaskEvent]:
        s = self._s
        sql = f"""
            SELECT k.known, e.seq, e.task_id, e.at, e.kind, e.detail
            FROM (SELECT EXISTS (SELECT 1 FROM {s}.tasks WHERE id = %(id)s) AS known) k
            LEFT JOIN {s}.task_events AS e ON e.task_id = %(id)s
            ORDER BY e.seq
        """

        async def run(conn: Connection) -> list[TaskEvent]:
            cursor = await conn.execute(sql, {"id": task_id})
            rows = await cursor.fetchall()
            if not rows or not rows[0][0]:
                raise TaskNotFound(task_id)
            return [_row_to_event(r[1:]) for r in rows if r[1] is not None]

        return await self._read(run)
