"""``SQLiteTaskStore``: the embedded default store, one SQLite file, many processes.

Every write is one ``BEGIN IMMEDIATE`` transaction holding the state change and its
``TaskEvent`` rows. Instants are integer microseconds since the epoch, so ``<=`` and
``ORDER BY`` are exact. Short writes and reads run on the event loop's thread when every
lock they need is free at once; anything that may wait or take long runs on one worker
thread per store (see ``_Access``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from os import PathLike
from types import MappingProxyType
from typing import Any, Final, Generic, TypeVar

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: writers rely on SQLite's busy handler alone
    fcntl = None  # type: ignore[assignment]

from ._errors import EngageQueueError, SessionNotFound, TaskNotFound, ValidationError
from ._models import Page, Task, TaskEvent, TaskStatus
from ._store_args import (
    Clock,
    HistoryQuery,
    NewTask,
    check_durability,
    check_on_expired,
    default_clock,
)
from ._store_base import (
    Change,
    Claim,
    Count,
    Events,
    FollowUp,
    OneTask,
    Step,
    StoreBase,
    Tasks,
    change_flow,
    drive,
    render,
    update_flow,
)
from ._store_ops import Event, message_detail, sending_detail
from ._store_rows import (
    STATUSES,
    TASK_COLUMNS,
    builder,
    event_reader,
    pending_task,
    task_columns_ddl,
    task_reader,
)
from ._store_sqlite_recurring import RECURRENCE_MIGRATION, SQLiteRecurringMixin
from ._times import from_micros, parse_instant, to_micros
from ._wake_sockets import SocketWaker, supported

__all__ = ["SQLiteTaskStore"]

logger: Final = logging.getLogger("engagequeue")

_T = TypeVar("_T")
_I = TypeVar("_I")

SCHEMA_VERSION: Final = 4

MIN_SQLITE: Final = (3, 35, 0)
"""The oldest SQLite the store's SQL runs on (``RETURNING``, ``UPDATE ... FROM``)."""
_SQLITE_VERSION = sqlite3.sqlite_version_info

# Each entry migrates from version N to N + 1 (index 0: from an empty file to version 1).
_MIGRATIONS: Final[Sequence[str]] = (
    """
    CREATE TABLE eq_sessions (
        id          TEXT PRIMARY KEY,
        connected   INTEGER NOT NULL DEFAULT 1 CHECK (connected IN (0, 1)),
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE TABLE eq_tasks (
        seq              INTEGER PRIMARY KEY,
        id               TEXT NOT NULL UNIQUE,
        session_id       TEXT NOT NULL REFERENCES eq_sessions (id) ON DELETE CASCADE,
        group_id         TEXT NOT NULL,
    """
    + task_columns_ddl("TEXT", "INTEGER", "INTEGER")
    + """
    );
    -- Claims scan pending tasks in due order.
    CREATE INDEX eq_tasks_due ON eq_tasks (scheduled_at, id) WHERE status = 'pending';
    -- Finds the head (oldest pending task) of a group.
    CREATE INDEX eq_tasks_group_pending ON eq_tasks (session_id, group_id, scheduled_at, id)
        WHERE status = 'pending';
    -- The database itself refuses two tasks of one group in flight.
    CREATE UNIQUE INDEX eq_tasks_one_in_flight ON eq_tasks (session_id, group_id)
        WHERE status = 'processing';
    CREATE INDEX eq_tasks_lease ON eq_tasks (lease_expires_at) WHERE status = 'processing';
    CREATE INDEX eq_tasks_session_processing ON eq_tasks (session_id) WHERE status = 'processing';
    -- History: covering for the count, ordered for the page.
    CREATE INDEX eq_tasks_history ON eq_tasks (session_id, group_id, scheduled_at, id, status);
    CREATE TABLE eq_task_events (
        seq      INTEGER PRIMARY KEY,
        task_id  TEXT NOT NULL REFERENCES eq_tasks (id) ON DELETE CASCADE,
        at       INTEGER NOT NULL,
        kind     TEXT NOT NULL,
        detail   TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX eq_task_events_task ON eq_task_events (task_id, seq);
    """,
    # Version 2: status changes (claim, complete) no longer rewrite a history index entry.
    # The history index loses its status column, finished tasks get a partial index of
    # their own, and the session index duplicated the in-flight index's first column.
    """
    DROP INDEX IF EXISTS eq_tasks_session_processing;
    DROP INDEX IF EXISTS eq_tasks_history;
    -- History: every task of a group in page order, untouched by status changes.
    CREATE INDEX eq_tasks_group_time ON eq_tasks (session_id, group_id, scheduled_at, id);
    -- History filtered by status: finished tasks, written once when a task ends.
    CREATE INDEX eq_tasks_group_done ON eq_tasks (session_id, group_id, scheduled_at, id, status)
        WHERE status IN ('completed', 'failed', 'cancelled');
    """,
    # Version 3: every change of a task bumps its version, so an edit or a cancel can
    # apply to the version its caller read (tasks of older files start at 1).
    """
    ALTER TABLE eq_tasks ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    """,
    # Version 4: recurring posts (their tables, and each task's recurrence).
    RECURRENCE_MIGRATION,
)

_COLUMNS: Final = TASK_COLUMNS
_STATUS: Final = STATUSES
_row_to_task: Final = task_reader(from_micros)
_row_to_event: Final = event_reader(from_micros, json.loads)

# The window is every pending task up to the last of the ``window`` earliest due ones, in
# due order: a range of eq_tasks_due that SQLite walks in index order, so the ORDER BY
# needs no sort and the walk stops at :limit claimable tasks. (The window written as a
# LIMITed subquery in FROM had the outer ORDER BY evaluate and sort the whole window
# first: ~1.1 ms per claim instead of ~60 us with 200 due groups.)
_CLAIM_SQL: Final = """
    WITH w (last_at, last_id) AS (
        -- The window's last task; with fewer than :window due, (:now + 1, ''), which
        -- bounds the range at scheduled_at <= :now (ids are never empty). One row always:
        -- aggregates over the zero or one row the OFFSET leaves.
        SELECT coalesce(max(scheduled_at), :now + 1), coalesce(max(id), '') FROM (
            SELECT scheduled_at, id FROM eq_tasks INDEXED BY eq_tasks_due
            WHERE status = 'pending' AND scheduled_at <= :now
            ORDER BY scheduled_at, id
            LIMIT 1 OFFSET :window - 1))
    SELECT t.id FROM w CROSS JOIN eq_tasks AS t INDEXED BY eq_tasks_due
    WHERE t.status = 'pending' AND t.scheduled_at <= :now
      AND (t.scheduled_at, t.id) <= (w.last_at, w.last_id)
      AND EXISTS (SELECT 1 FROM eq_sessions AS s WHERE s.id = t.session_id AND s.connected = 1)
      AND NOT EXISTS (
          SELECT 1 FROM eq_tasks AS b
          WHERE b.session_id = t.session_id AND b.group_id = t.group_id
            AND b.status = 'processing')
      AND NOT EXISTS (
          -- The group's head only: no older pending task in the same group. INDEXED BY
          -- keeps the planner off the history index, which would walk finished rows too.
          SELECT 1 FROM eq_tasks AS e INDEXED BY eq_tasks_group_pending
          WHERE e.session_id = t.session_id AND e.group_id = t.group_id
            AND e.status = 'pending'
            AND (e.scheduled_at, e.id) < (t.scheduled_at, t.id))
    ORDER BY t.scheduled_at, t.id
    LIMIT :limit
"""
_DUE_COUNT_SQL: Final = """
    SELECT count(*) FROM (
        SELECT 1 FROM eq_tasks INDEXED BY eq_tasks_due
        WHERE status = 'pending' AND scheduled_at <= :now LIMIT :window + 1)
"""
_HEAD_COLUMNS: Final = "session_id, group_id, scheduled_at, id"
_FIRST_HEAD_SQL: Final = (
    f"SELECT {_HEAD_COLUMNS} FROM eq_tasks INDEXED BY eq_tasks_group_pending "
    "WHERE status = 'pending' ORDER BY session_id, group_id, scheduled_at, id LIMIT 1"
)
_NEXT_HEAD_SQL: Final = (
    f"SELECT {_HEAD_COLUMNS} FROM eq_tasks INDEXED BY eq_tasks_group_pending "
    "WHERE status = 'pending' AND (session_id, group_id) > (?, ?) "
    "ORDER BY session_id, group_id, scheduled_at, id LIMIT 1"
)
CLAIM_WINDOW: Final = 256
"""How many of the earliest due tasks a claim looks at before it walks group by group."""


def _claim_ids(conn: sqlite3.Connection, now: int, limit: int, window: int) -> list[str]:
    """The ids a claim takes: due group heads of connected sessions, not busy, oldest first.

    Usually the first ``window`` due tasks hold enough group heads. When they do not (a
    backlog of due tasks in groups that already have a post in flight), walk the groups
    instead, one index probe each, so a claim never scans a whole backlog.
    """
    params = {"now": now, "limit": limit, "window": window}
    ids = [r[0] for r in conn.execute(_CLAIM_SQL, params)]
    if len(ids) >= limit or conn.execute(_DUE_COUNT_SQL, params).fetchone()[0] <= window:
        return ids
    busy = set(
        conn.execute("SELECT session_id, group_id FROM eq_tasks WHERE status = 'processing'")
    )
    down = {r[0] for r in conn.execute("SELECT id FROM eq_sessions WHERE connected = 0")}
    heads: list[tuple[int, str]] = []
    row = conn.execute(_FIRST_HEAD_SQL).fetchone()
    while row is not None:
        session_id, group_id, scheduled_at, task_id = row
        if scheduled_at <= now and session_id not in down and (session_id, group_id) not in busy:
            heads.append((scheduled_at, task_id))
        row = conn.execute(_NEXT_HEAD_SQL, (session_id, group_id)).fetchone()
    heads.sort()
    return [task_id for _, task_id in heads[:limit]]


_FINISHED: Final = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})
# Where history finds a group's tasks of one status: finished ones in eq_tasks_group_done,
# pending ones in eq_tasks_group_pending, the one in flight in eq_tasks_one_in_flight. Each
# is ordered by (scheduled_at, id) (the in-flight one holds at most one task per group).
_STATUS_INDEX: Final = {
    TaskStatus.PENDING: ("eq_tasks_group_pending", "status = 'pending'"),
    TaskStatus.PROCESSING: ("eq_tasks_one_in_flight", "status = 'processing'"),
}


def _history_sql(query: HistoryQuery) -> tuple[str, str, list[Any]]:
    """The count query, the page query and their shared parameters for a ``history`` call.

    The page query takes ``limit`` and ``offset`` after the shared parameters.

    Without a status filter both walk eq_tasks_group_time. With one, each wanted status is
    read from an index that holds only tasks of that status (status changes then touch no
    history index but the finished one, once): the counts are added up and the page is a
    merge of the index arms by (scheduled_at, id), which reads table rows for the page alone.
    """
    where = "session_id = ? AND group_id = ?"
    base: list[Any] = [query.session_id, query.group_id]
    if query.start is not None:
        where += " AND scheduled_at >= ?"
        base.append(to_micros(query.start))
    if query.end is not None:
        where += " AND scheduled_at < ?"
        base.append(to_micros(query.end))
    if query.recurrence_id is not None:
        where += " AND recurrence_id = ?"
        base.append(query.recurrence_id)
    statuses = query.statuses
    if statuses is None or len(statuses) == len(STATUSES):
        table = f"eq_tasks INDEXED BY eq_tasks_group_time WHERE {where}"
        return (
            f"SELECT count(*) FROM {table}",
            f"SELECT {_COLUMNS} FROM {table} ORDER BY scheduled_at, id LIMIT ? OFFSET ?",
            base,
        )
    arms: list[str] = []
    params: list[Any] = []
    finished = sorted(s.value for s in statuses if s in _FINISHED)
    if finished:
        marks = ", ".join("?" * len(finished))
        arms.append(
            "eq_tasks INDEXED BY eq_tasks_group_done WHERE "
            f"{where} AND status IN ({marks}) AND status IN ('completed', 'failed', 'cancelled')"
        )
        params += [*base, *finished]
    for status, (index, condition) in _STATUS_INDEX.items():
        if status in statuses:
            arms.append(f"eq_tasks INDEXED BY {index} WHERE {where} AND {condition}")
            params += base
    counts = " + ".join(f"(SELECT count(*) FROM {arm})" for arm in arms)
    keys = " UNION ALL ".join(
        f"SELECT rowid AS r, scheduled_at AS a, id AS i FROM {arm}" for arm in arms
    )
    page = (
        f"SELECT {_COLUMNS} FROM eq_tasks WHERE rowid IN ("
        f"SELECT r FROM ({keys}) ORDER BY a, i LIMIT ? OFFSET ?) ORDER BY scheduled_at, id"
    )
    return f"SELECT {counts}", page, params


_encode: Final = json.JSONEncoder(default=str).encode
"""``json.dumps(value, default=str)``, without building an encoder per call."""


_NAMES: Final = (
    ("{tasks}", "eq_tasks"),
    ("{sessions}", "eq_sessions"),
    ("{columns}", TASK_COLUMNS),
    ("{lock}", ""),  # one writer at a time: a read in the write transaction holds
    # The in-flight index holds a session's processing tasks alone; the history index
    # would walk all its tasks.
    ("{in_flight}", "eq_tasks INDEXED BY eq_tasks_one_in_flight"),
    ("%t", "?"),
    ("%s", "?"),
)
"""How a flow's engine-neutral SQL (see ``_store_base``) reads in SQLite's terms."""


def _dumps(detail: Mapping[str, Any]) -> str:
    return _encode(detail) if detail else "{}"


def _created_detail(media_type: str, scheduled_at: datetime, extra: Mapping[str, Any]) -> str:
    """The JSON detail of a ``created`` event (``scheduled_at`` is a UTC instant)."""
    # isoformat() of a UTC datetime ends with "+00:00"; swapping it for "Z" gives exactly
    # _times.isoformat's text without its replace(tzinfo=None) copy (one per task).
    at = scheduled_at.isoformat(timespec="microseconds")[:-6] + "Z"
    if not extra:  # plain ASCII values: exactly what the encoder would write
        return f'{{"media_type": "{media_type}", "scheduled_at": "{at}"}}'
    return _encode({"media_type": media_type, "scheduled_at": at, **extra})


_TASK_BUILDER: Final = builder(Task)
"""``unchecked(Task, ...)`` without the per-call look-up."""

_Job = tuple[
    asyncio.AbstractEventLoop | None,
    "asyncio.Future[Any] | None",
    Callable[..., Any],
    tuple[Any, ...],
    bool,
]
"""``(loop, future, fn, args, write)``; a job without a loop (a checkpoint) hands nothing back."""
_Outcome = tuple[_Job, Any, BaseException | None]
_MAX_BATCH: Final = 64
INLINE_ROWS: Final = 64
"""The most rows a write may touch to run on the event loop's thread (see ``_Access``)."""
CHECKPOINT_FRAMES: Final = 4000
"""About how many WAL frames (pages) accumulate before the store's thread checkpoints."""
_SQLITE_BUSY: Final = 5


def _is_busy(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` is SQLITE_BUSY (any extended code): another connection holds a lock."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == _SQLITE_BUSY


def _deliver(future: asyncio.Future[Any] | None, result: Any, error: BaseException | None) -> None:  # noqa: ANN401
    if future is None or future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _deliver_all(
    results: list[tuple[asyncio.Future[Any] | None, Any, BaseException | None]],
) -> None:
    for future, result, error in results:
        _deliver(future, result, error)


class _Access:
    """A store's one sqlite3 connection and the locks its users take, on either thread.

    Writers of this connection take ``guard`` (this process's threads), an exclusive
    ``flock`` on the ``<file>-eqlock`` sidecar (other engagequeue stores on the file, in
    any process) and SQLite's write lock (``BEGIN IMMEDIATE``; every other program). The
    event loop's thread takes each without waiting (``try_write``, ``try_read``: the
    connection's busy timeout is zero); when one is held it hands the call to the store's
    thread, which waits for them (``write_patiently``, ``patient``) with the store's
    ``busy_timeout``.

    The connection never checkpoints on commit (``wal_autocheckpoint = 0``): commits count
    the WAL frames they add (an estimate from the rows they changed), and past
    ``CHECKPOINT_FRAMES`` the store's thread checkpoints on a connection of its own,
    beside the writers.
    """

    def __init__(self, busy_timeout: float) -> None:
        self.conn: sqlite3.Connection | None = None
        self.checkpointer: sqlite3.Connection | None = None
        self.lock_fd: int | None = None
        self.guard = threading.Lock()
        self._patience = f"PRAGMA busy_timeout = {max(0, round(busy_timeout * 1000))}"
        self._changes = 0
        self._frames = 0
        self._checkpoint_queued = False

    @contextlib.contextmanager
    def patient(self) -> Iterator[sqlite3.Connection | None]:
        """Hold ``guard`` with the busy timeout set (the store's thread); yield the connection."""
        with self.guard:
            conn = self.conn
            if conn is None:  # opening or closed: the call itself sets up or fails
                yield None
                return
            conn.execute(self._patience)
            try:
                yield conn
            finally:
                if self.conn is conn:  # not closed by the call
                    conn.execute("PRAGMA busy_timeout = 0")

    def write_patiently(self, jobs: list[_Job]) -> list[_Outcome]:
        """Run ``jobs`` in one write transaction, waiting for the locks (the store's thread)."""
        # The writers' turn first, without ``guard``: while another process writes, the
        # event loop's thread still reads. (The loop's thread never waits for the turn, so
        # taking the two in the other order there cannot deadlock.)
        lock = self.lock_fd
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with self.patient() as conn:
                if conn is None:
                    closed = EngageQueueError("the store is closed")
                    return [(job, None, closed) for job in jobs]
                outcomes = self._begin_and_run(conn, jobs, busy_gives_up=False)
        finally:
            if lock is not None:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return outcomes or []  # never None: only busy_gives_up gives up

    def try_write(self, jobs: list[_Job]) -> list[_Outcome] | None:
        """Run ``jobs`` in one write transaction now, or return None if a lock is held."""
        if not self.guard.acquire(blocking=False):
            return None
        try:
            conn = self.conn
            if conn is None:
                return None
            lock = self.lock_fd
            if lock is not None:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return None
            try:
                return self._begin_and_run(conn, jobs, busy_gives_up=True)
            finally:
                if lock is not None:
                    fcntl.flock(lock, fcntl.LOCK_UN)
        finally:
            self.guard.release()

    def _begin_and_run(
        self, conn: sqlite3.Connection, jobs: list[_Job], *, busy_gives_up: bool
    ) -> list[_Outcome] | None:
        """``BEGIN IMMEDIATE``, the jobs, ``COMMIT``; None if busy and ``busy_gives_up``."""
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            if busy_gives_up and _is_busy(exc):
                return None
            return [(job, None, exc) for job in jobs]
        outcomes = _transaction(conn, jobs)
        self._count(conn)
        return outcomes

    def try_read(self, fn: Callable[..., _T], args: tuple[Any, ...]) -> tuple[bool, _T | None]:
        """``(True, fn(*args))`` run now, or ``(False, None)`` if the connection is busy."""
        if not self.guard.acquire(blocking=False):
            return False, None
        try:
            if self.conn is None:
                return False, None
            try:
                return True, fn(*args)
            except sqlite3.OperationalError as exc:
                if _is_busy(exc):
                    return False, None
                raise
        finally:
            self.guard.release()

    def _count(self, conn: sqlite3.Connection) -> None:
        """Count a transaction's WAL frames (under ``guard``); queue a checkpoint past the mark.

        Measured on the store's tables: about 9 frames for a ``schedule`` alone, 6 for a
        ``complete`` alone, 14 for 50 completes together, 2,456 for 20,000 tasks through
        ``schedule_many``: a few pages per commit plus some per changed row.
        """
        changes = conn.total_changes
        self._frames += 8 + (changes - self._changes) // 8
        self._changes = changes

    def checkpoint_wanted(self) -> bool:
        """Whether the WAL has grown past the mark with no checkpoint queued (then queue one)."""
        if self._frames < CHECKPOINT_FRAMES or self._checkpoint_queued:
            return False
        self._checkpoint_queued = True
        return True

    def checkpoint(self) -> None:
        """Copy the WAL into the database file (the store's thread), beside the writers.

        A ``PASSIVE`` checkpoint takes no lock a writer or a reader waits for, so the
        event loop's writes go on during it. SQLite starts the WAL over only once every
        frame in it is copied, and the pass copies only the frames there when it began:
        a second pass copies those added meanwhile, with this process's writers held back
        (``guard``: they queue on the store's thread for its few pages).
        """
        ckpt = self.checkpointer
        self._frames = 0
        try:
            if ckpt is not None:
                ckpt.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                with self.guard:
                    ckpt.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # an optimisation only: the next checkpoint copies it
            logger.debug("engagequeue checkpoint failed: %s", exc)
        finally:
            self._checkpoint_queued = False


class _Worker:
    """The store's thread: sqlite3 calls that may wait, in submission order.

    Lighter than ``loop.run_in_executor`` on a ``ThreadPoolExecutor`` (no
    ``concurrent.futures.Future`` to chain): a call is one queue put, and its result one
    ``call_soon_threadsafe``. A call whose awaiting coroutine was cancelled before it
    started is skipped, as an executor would.

    Group commit: write transactions queued together (a scheduler completing several sends
    at once) run in one ``BEGIN IMMEDIATE ... COMMIT`` and share one commit (and one fsync
    with ``durability="full"``); see ``_transaction``. No result is handed back before its
    commit succeeded.
    """

    def __init__(self, access: _Access) -> None:
        self._access = access
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="engagequeue-sqlite", daemon=True)
        self._thread.start()

    def submit(
        self, fn: Callable[..., _T], args: tuple[Any, ...], *, write: bool = False
    ) -> asyncio.Future[_T]:
        """Queue ``fn(*args)`` (or, with ``write``, ``fn(conn)`` inside a write transaction)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._queue.put((loop, future, fn, args, write))
        return future

    def put(self, jobs: Iterable[_Job]) -> None:
        """Queue jobs made elsewhere (writes the event loop's thread could not run now)."""
        for job in jobs:
            self._queue.put(job)

    def checkpoint_soon(self) -> None:
        """Queue a checkpoint, which hands nothing back."""
        self._queue.put((None, None, self._access.checkpoint, (), False))

    def idle(self) -> bool:
        """Whether no call waits in the queue (a call may still be running)."""
        return self._queue.empty()

    def stop(self) -> None:
        """Let the thread finish the calls already queued, then end it."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        carried: list[_Job | None] = []
        while True:
            job = carried.pop() if carried else self._queue.get()
            if job is None:
                return
            if not job[4]:
                self._run_call(job)
                continue
            batch = [job]
            while len(batch) < _MAX_BATCH and not carried:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is not None and more[4]:
                    batch.append(more)
                else:
                    carried.append(more)  # a read or the stop: after this batch
            self._run_batch(batch)

    @staticmethod
    def _hand_back(job: _Job, result: Any, error: BaseException | None) -> None:  # noqa: ANN401
        loop = job[0]
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
                loop.call_soon_threadsafe(_deliver, job[1], result, error)

    def _run_call(self, job: _Job) -> None:
        future = job[1]
        if future is not None and future.cancelled():
            return
        if job[0] is None:  # a checkpoint: it takes its own locks
            job[2](*job[3])
            return
        result: Any = None
        error: BaseException | None = None
        try:
            with self._access.patient():
                result = job[2](*job[3])
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            error = exc
        self._hand_back(job, result, error)

    def _run_batch(self, batch: list[_Job]) -> None:
        jobs = [job for job in batch if job[1] is None or not job[1].cancelled()]
        if not jobs:
            return
        outcomes = self._access.write_patiently(jobs)
        # One call_soon_threadsafe per event loop for the whole batch (not one per job):
        # fewer self-pipe writes and loop wake-ups; results still go out in job order.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any, Any]]] = {}
        for job, result, error in outcomes:
            if job[0] is not None:
                by_loop.setdefault(job[0], []).append((job[1], result, error))
        for loop, results in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
                loop.call_soon_threadsafe(_deliver_all, results)
        if self._access.checkpoint_wanted():
            self._access.checkpoint()


def _transaction(conn: sqlite3.Connection, jobs: list[_Job]) -> list[_Outcome]:
    """Run write jobs in the transaction the caller began, then commit; one outcome each.

    First without a savepoint per operation: an operation alone in its transaction needs
    none (its error rolls back the whole transaction, which holds just it), and in a batch
    operations rarely fail (two statements fewer per operation: ~25 us of a ~120 us
    complete). If one operation of a batch fails, the batch is undone (to a savepoint
    taken once for the batch) and run again, each operation in its own savepoint, so only
    the failing one fails. Operations are pure functions of the database: safe to rerun.
    Nothing is handed back as a success unless the commit succeeded.
    """
    outcomes: list[_Outcome] = []
    try:
        if len(jobs) > 1:
            conn.execute("SAVEPOINT eq_batch")
        try:
            _run_optimistic(conn, jobs, outcomes)
        except Exception:
            if len(jobs) == 1:
                raise
            outcomes.clear()
            conn.execute("ROLLBACK TO eq_batch")
            outcomes.extend(_in_savepoint(conn, job) for job in jobs)
        conn.execute("COMMIT")
    except BaseException as exc:  # noqa: BLE001 - nothing of the batch was committed
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        outcomes = [(job, None, exc) for job in jobs]
    return outcomes


def _run_optimistic(
    conn: sqlite3.Connection,
    jobs: list[_Job],
    outcomes: list[_Outcome],
) -> None:
    """Run a batch's operations in order, consecutive ``_Mergeable`` calls of one kind as one."""
    i = 0
    while i < len(jobs):
        first = jobs[i][2]
        if not isinstance(first, _Mergeable):
            outcomes.append((jobs[i], first(conn), None))
            i += 1
            continue
        run = [first]
        for job in jobs[i + 1 :]:
            fn = job[2]
            if not isinstance(fn, _Mergeable) or fn.run_many != first.run_many:
                break
            run.append(fn)
        results = first.run_many(conn, [m.item for m in run]) if len(run) > 1 else [first(conn)]
        outcomes.extend(zip(jobs[i : i + len(run)], results, [None] * len(run), strict=True))
        i += len(run)


def _in_savepoint(conn: sqlite3.Connection, job: _Job) -> _Outcome:
    """Run one write operation of a batch; on error, undo it alone."""
    conn.execute("SAVEPOINT eq_op")
    try:
        result = job[2](conn)
    except Exception as exc:  # noqa: BLE001 - this operation alone fails
        conn.execute("ROLLBACK TO eq_op")
        conn.execute("RELEASE eq_op")
        return job, None, exc
    conn.execute("RELEASE eq_op")
    return job, result, None


_NO_DETAIL: Final[Mapping[str, Any]] = MappingProxyType({})


class _BatchRerun(Exception):  # noqa: N818 - control flow, never seen by callers
    """Operations run together could not all succeed: rerun them one by one."""


class _Mergeable(Generic[_I, _T]):
    """One call's write that can share a statement with the same writes queued beside it.

    ``run_many(conn, items)`` does the write for every item and returns one result per
    item (or raises, and the batch reruns call by call); alone, a call is ``run_many`` of
    its one item. The worker merges consecutive calls with the same ``run_many``.
    """

    __slots__ = ("item", "run_many")

    def __init__(
        self, run_many: Callable[[sqlite3.Connection, Sequence[_I]], list[_T]], item: _I
    ) -> None:
        self.run_many = run_many
        self.item = item

    def __call__(self, conn: sqlite3.Connection) -> _T:
        return self.run_many(conn, [self.item])[0]


class SQLiteTaskStore(StoreBase, SQLiteRecurringMixin):
    """The embedded default ``TaskStore``: one SQLite file that survives restarts and crashes.

    Args:
        path: the database file (created if missing). Several processes may share it.
        durability: ``"normal"`` (default; WAL with ``synchronous=NORMAL``: every committed
            change survives a crash or kill of the process, the last commits before a power
            loss or OS crash may be lost) or ``"full"`` (``synchronous=FULL``: commits also
            survive power loss, at the cost of an fsync per commit).
        on_expired: what ``recover_expired`` does with a processing task whose lease ended:
            ``"retry"`` (default; back to pending, at-least-once) or ``"fail"`` (failed,
            at-most-once).
        clock: a zero-argument callable returning an aware ``datetime``; the store's notion
            of now for timestamps and, when ``now`` is not given, for claims.
        busy_timeout: seconds to wait for SQLite's write lock when another program holds
            it (on the store's thread: the event loop never waits for a lock). engagequeue
            stores sharing the file (in any process) take turns on a ``<file>-eqlock``
            sidecar first, handed from one writer to the next by the kernel; a process
            that dies releases it.
    """

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        durability: str = "normal",
        on_expired: str = "retry",
        clock: Clock | None = None,
        busy_timeout: float = 30.0,
    ) -> None:
        self.path = str(path)
        self.durability = check_durability(durability)
        self.on_expired = check_on_expired(on_expired)
        self._clock: Clock = clock or default_clock
        self._busy_timeout = busy_timeout
        self._access = _Access(busy_timeout)
        self._worker: _Worker | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Writes run on the event loop's thread only without an fsync per commit: with
        # durability="full" every commit waits for the disk, which the loop must not.
        self._inline_writes = self.durability == "normal"
        self._pending: list[_Job] = []  # writes waiting for this loop turn's group commit
        self._wakeups = []
        self._claim_window = CLAIM_WINDOW
        # Wake-ups between processes on this file (see _wake_sockets).
        self._waker = (
            SocketWaker(self.path) if supported() and self.path not in ("", ":memory:") else None
        )

    def __repr__(self) -> str:
        return f"SQLiteTaskStore({self.path!r}, durability={self.durability!r})"

    # -- life cycle -----------------------------------------------------------------------

    async def open(self) -> None:
        """Open the file, creating or migrating its schema. Idempotent."""
        if self._worker is not None:
            return
        worker = self._worker = _Worker(self._access)
        try:
            await self._call(self._open_sync)
        except BaseException:
            self._worker = None
            worker.stop()
            raise
        self._loop = asyncio.get_running_loop()
        self._listen_changed()

    async def close(self) -> None:
        """Close the file. Idempotent."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        if self._waker is not None:
            self._waker.close()
        # Writes waiting for this loop turn's commit go first, as they were called first.
        pending, self._pending = self._pending, []
        worker.put(pending)
        try:
            await worker.submit(self._close_sync, ())
        finally:
            worker.stop()

    def _open_sync(self) -> None:
        if _SQLITE_VERSION < MIN_SQLITE:
            have = ".".join(map(str, _SQLITE_VERSION))
            need = ".".join(map(str, MIN_SQLITE))
            raise EngageQueueError(
                f"SQLiteTaskStore needs SQLite {need} or newer; this Python's sqlite3 module "
                f"uses SQLite {have} (upgrade Python, or use PostgresTaskStore)"
            )
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise ValidationError(
                f"cannot open SQLite database {self.path!r}: {exc}", field="path"
            ) from exc
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            sync = "FULL" if self.durability == "full" else "NORMAL"
            conn.execute(f"PRAGMA synchronous = {sync}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA temp_store = MEMORY")
            # 16 MiB of page cache instead of SQLite's 2 MiB: inserts touch the tail of
            # several indexes, and with the default cache a 100,000-row file already
            # rereads index pages from the OS (schedule_many: 41 -> 20 us per task row).
            conn.execute("PRAGMA cache_size = -16384")
            # No checkpoint on commit (it would run on the event loop's thread after an
            # inline write): the store's thread checkpoints every CHECKPOINT_FRAMES or so
            # (16 MiB; SQLite's default is 1,000: each checkpoint copies pages to the file
            # and fsyncs, and the hot index pages a queue rewrites all the time are copied
            # once per checkpoint however often they changed).
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            self._access.lock_fd = self._open_lock_file()
            self._migrate(conn)
            self._access.checkpointer = self._open_checkpointer()
            # From now on the connection never waits for a lock on its own: the event
            # loop's thread must not (see _Access); the store's thread sets the timeout.
            conn.execute("PRAGMA busy_timeout = 0")
        except sqlite3.DatabaseError as exc:
            self._close_sync(conn)
            raise ValidationError(
                f"{self.path!r} is not a usable engagequeue SQLite database: {exc}", field="path"
            ) from exc
        except BaseException:
            self._close_sync(conn)
            raise
        self._access.conn = conn

    def _open_checkpointer(self) -> sqlite3.Connection | None:
        """The store thread's connection for checkpoints (none for a database in memory)."""
        if self.path in ("", ":memory:"):
            return None
        conn = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
        # A checkpoint syncs as the writers' level says (FULL or NORMAL: the WAL, then the
        # database file).
        conn.execute(f"PRAGMA synchronous = {'FULL' if self.durability == 'full' else 'NORMAL'}")
        return conn

    def _open_lock_file(self) -> int | None:
        """Open the ``<file>-eqlock`` sidecar whose lock orders this file's writers.

        SQLite's busy handler polls for the write lock with sleeps of 1 to 100 ms, so
        processes sharing a file leave it idle between transactions and go slower together
        than one alone. engagequeue's writers first take an exclusive ``flock`` on the
        sidecar: the kernel hands it straight to the next writer in line. SQLite's own lock
        still guards the data against every other program.
        """
        if fcntl is None or self.path in ("", ":memory:"):
            return None
        try:
            return os.open(f"{self.path}-eqlock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise ValidationError(
                f"cannot open the lock file {self.path!r}-eqlock: {exc}", field="path"
            ) from exc

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS eq_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            row = conn.execute("SELECT value FROM eq_meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                msg = (
                    f"the database has schema version {version}, newer than this engagequeue "
                    f"knows ({SCHEMA_VERSION}); upgrade engagequeue"
                )
                raise EngageQueueError(msg)
            for script in _MIGRATIONS[version:]:
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute(
                "INSERT INTO eq_meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _close_sync(self, conn: sqlite3.Connection | None = None) -> None:
        access = self._access
        conn, access.conn = conn or access.conn, None
        lock, access.lock_fd = access.lock_fd, None
        ckpt, access.checkpointer = access.checkpointer, None
        if ckpt is not None:
            ckpt.close()
        if conn is not None:
            conn.close()  # the last connection to the file checkpoints it
        if lock is not None:
            os.close(lock)

    # -- plumbing -------------------------------------------------------------------------

    def _listen_changed(self) -> None:
        """Listen on this file's wake-up socket while callbacks wait and the store is open."""
        waker = self._waker
        if waker is None:
            return
        if self._wakeups and self._worker is not None:
            if not waker.listening:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:
                    return  # added outside a loop: open() starts listening
                waker.listen(loop, self._wake_local)
        elif waker.listening:
            waker.stop()

    def _announce(self) -> None:
        if self._waker is not None:
            self._waker.announce()

    def _open_worker(self) -> _Worker:
        worker = self._worker
        if worker is None:
            raise EngageQueueError(
                "the store is not open; use 'async with store:' or 'await store.open()'"
            )
        return worker

    async def _call(self, fn: Callable[..., _T], *args: Any) -> _T:  # noqa: ANN401
        """Run ``fn(*args)`` on the store's thread (reads that may take a while)."""
        return await self._open_worker().submit(fn, args)

    async def _read(self, fn: Callable[..., _T], *args: Any) -> _T:  # noqa: ANN401
        """Run a short read ``fn(*args)`` now on the event loop's thread, if it can.

        That is when no call waits for the connection; otherwise on the store's thread.
        """
        worker = self._open_worker()
        if asyncio.get_running_loop() is self._loop and worker.idle():
            # Yield once first, as a call to the store's thread would: a caller's loop of
            # reads never starves the event loop's other tasks.
            await asyncio.sleep(0)
            if self._worker is worker and worker.idle():
                done, result = self._access.try_read(fn, args)
                if done:
                    return result  # type: ignore[return-value]
        return await worker.submit(fn, args)

    async def _transact(self, fn: Callable[[sqlite3.Connection], _T], *, short: bool = True) -> _T:
        """Run ``fn(conn)`` in a write transaction (shared with writes issued beside it).

        A ``short`` write (at most ``INLINE_ROWS`` rows) runs on the event loop's thread
        when its locks are free at once (see ``_flush``); any other on the store's thread.
        """
        worker = self._open_worker()
        loop = asyncio.get_running_loop()
        if not (short and self._inline_writes and loop is self._loop):
            return await worker.submit(fn, (), write=True)
        future: asyncio.Future[_T] = loop.create_future()
        pending = self._pending
        pending.append((loop, future, fn, (), True))
        if len(pending) == 1:
            # The writes issued during this loop turn (a gather of completes) wait for the
            # turn's end and share one commit, as they would on the store's thread.
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        """Commit the writes issued during the last loop turn, on the event loop's thread.

        Only when no call waits for the store's thread (so writes keep their order) and
        every lock is free at once; otherwise they go to the store's thread, which waits.
        """
        pending = self._pending
        jobs = [job for job in pending[:_MAX_BATCH] if not job[1].cancelled()]  # type: ignore[union-attr]
        self._pending = pending[_MAX_BATCH:]
        if self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        worker = self._worker
        if not jobs or worker is None:  # closed: close() handed them to the thread
            return
        outcomes = self._access.try_write(jobs) if worker.idle() else None
        if outcomes is None:
            worker.put(jobs)
            return
        for job, result, error in outcomes:
            _deliver(job[1], result, error)
        if self._access.checkpoint_wanted():
            worker.checkpoint_soon()

    def _db(self) -> sqlite3.Connection:
        conn = self._access.conn
        if conn is None:
            raise EngageQueueError("the store is closed")
        return conn

    def _now(self) -> int:
        if self._clock is default_clock:
            return time.time_ns() // 1000  # the same instant, without building a datetime
        return to_micros(parse_instant(self._clock(), "clock()"))

    @staticmethod
    def _insert_events(conn: sqlite3.Connection, at: int, events: Sequence[Event]) -> None:
        sql = "INSERT INTO eq_task_events (task_id, at, kind, detail) VALUES (?, ?, ?, ?)"
        if len(events) == 1:
            e = events[0]
            conn.execute(sql, (e.task.id, at, e.kind, _dumps(e.detail)))
            return
        encoded: dict[int, str] = {}  # a batch's events often share one detail mapping
        rows = []
        for e in events:
            text = encoded.get(id(e.detail))
            if text is None:
                text = encoded[id(e.detail)] = _dumps(e.detail)
            rows.append((e.task.id, at, e.kind, text))
        conn.executemany(sql, rows)

    @staticmethod
    def _fetch(conn: sqlite3.Connection, task_id: str) -> Task:
        row = conn.execute(f"SELECT {_COLUMNS} FROM eq_tasks WHERE id = ?", (task_id,)).fetchone()
        if row is None:
            raise TaskNotFound(task_id)
        return _row_to_task(row)

    @staticmethod
    def _require_session(conn: sqlite3.Connection, session_id: str) -> None:
        if conn.execute("SELECT 1 FROM eq_sessions WHERE id = ?", (session_id,)).fetchone() is None:
            raise SessionNotFound(session_id)

    def _conditional(
        self,
        conn: sqlite3.Connection,
        operation: str,
        task_id: str,
        *change: Any,  # noqa: ANN401 - the assignments and their parameters
        **checks: Any,  # noqa: ANN401 - worker_id, version
    ) -> Task:
        """``update_flow`` of one task (``checks``: ``worker_id``, ``version``) on ``conn``.

        ``change`` is the assignments and their parameters; the recurrences use it.
        """
        assignments, params = change
        flow = update_flow(operation, OneTask(task_id, **checks), assignments, tuple(params))
        return drive(flow, functools.partial(self._step, conn))[0]

    def _step(self, conn: sqlite3.Connection, step: Step) -> Any:  # noqa: ANN401 - per step
        """Run one step of a flow (see ``_store_base``) on ``conn``."""
        if isinstance(step, Events):
            self._insert_events(conn, to_micros(step.at), step.events)
            return None
        if isinstance(step, FollowUp):
            return self._follow_up(conn, list(step.tasks), step.at, step.reason)
        values = [to_micros(v) if isinstance(v, datetime) else v for v in step.params]
        cursor = conn.execute(render(step.sql, _NAMES), values)
        if isinstance(step, Count):
            return cursor.rowcount
        rows = cursor.fetchall()
        return list(map(_row_to_task, rows)) if isinstance(step, Tasks) else rows

    def _follow_up(
        self, conn: sqlite3.Connection, tasks: list[Task], at: datetime, reason: str
    ) -> bool:
        if reason == "edited":
            for task in tasks:
                self._note_own_edit(conn, task)
            return False
        return self._advance_recurrences(conn, tasks, at, reason)

    async def _run_change(self, change: Change, *, notify: bool) -> tuple[list[Event], bool]:
        del notify  # other processes hear of it from _wake (_announce), after the commit

        def run(conn: sqlite3.Connection) -> tuple[list[Event], bool]:
            flow = change_flow(change, from_micros(self._now()))
            return drive(flow, functools.partial(self._step, conn))

        return await self._transact(run)

    # -- sessions -------------------------------------------------------------------------

    async def _add_session(self, session_id: str) -> None:
        def run(conn: sqlite3.Connection) -> None:
            now = self._now()
            conn.execute(
                "INSERT INTO eq_sessions (id, connected, created_at, updated_at) "
                "VALUES (?, 1, ?, ?) ON CONFLICT (id) DO NOTHING",
                (session_id, now, now),
            )

        await self._transact(run)

    async def _mark_connected(self, session_id: str) -> None:
        def run(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "UPDATE eq_sessions SET connected = 1, updated_at = ? WHERE id = ?",
                (self._now(), session_id),
            )
            if cursor.rowcount == 0:
                raise SessionNotFound(session_id)

        await self._transact(run)

    async def _delete_session(self, session_id: str) -> None:
        def run(conn: sqlite3.Connection) -> None:
            if conn.execute("DELETE FROM eq_sessions WHERE id = ?", (session_id,)).rowcount == 0:
                raise SessionNotFound(session_id)

        await self._transact(run, short=False)  # the cascade deletes any number of rows

    async def _is_connected(self, session_id: str) -> bool:
        def run() -> bool:
            row = (
                self._db()
                .execute("SELECT connected FROM eq_sessions WHERE id = ?", (session_id,))
                .fetchone()
            )
            if row is None:
                raise SessionNotFound(session_id)
            return bool(row[0])

        return await self._read(run)

    # -- scheduling and editing -----------------------------------------------------------

    def _insert_items(
        self, conn: sqlite3.Connection, items: Sequence[tuple[NewTask, Mapping[str, Any]]]
    ) -> list[Task]:
        """``_insert_tasks`` for ``schedule`` calls: one ``(task, created detail)`` each."""
        return self._insert_tasks(conn, [task for task, _ in items], [d for _, d in items])

    def _insert_tasks(
        self,
        conn: sqlite3.Connection,
        prepared: Sequence[NewTask],
        details: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[Task]:
        """Insert new tasks and their ``created`` events (``details[i]`` extends task i's)."""
        now = self._now()
        sessions = {p.session_id for p in prepared}
        for session_id in sessions:
            self._require_session(conn, session_id)
        created = from_micros(now)
        build_task = _TASK_BUILDER
        # One pass builds the rows, the events and the returned tasks (this loop runs once
        # per task of a schedule_many batch on the worker thread, so attribute look-ups
        # are hoisted and the enum's value is read from its slot).
        rows, events, tasks = [], [], []
        for i, p in enumerate(prepared):
            payload = p.payload
            media_type: str = payload.media_type._value_
            rows.append(
                (
                    p.id,
                    p.session_id,
                    p.group_id,
                    media_type,
                    payload.content,
                    payload.media_url,
                    payload.mimetype,
                    payload.filename,
                    to_micros(p.scheduled_at),
                    p.max_attempts,
                    now,
                    now,
                    p.recurrence_id,
                )
            )
            extra = details[i] if details else _NO_DETAIL
            events.append((p.id, now, _created_detail(media_type, p.scheduled_at, extra)))
            tasks.append(pending_task(build_task, p, created))
        conn.executemany(
            "INSERT INTO eq_tasks (id, session_id, group_id, media_type, content, media_url, "
            "mimetype, filename, scheduled_at, status, attempts, max_attempts, created_at, "
            "updated_at, recurrence_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany(
            "INSERT INTO eq_task_events (task_id, at, kind, detail) VALUES (?, ?, 'created', ?)",
            events,
        )
        return tasks

    async def _insert(
        self, tasks: Sequence[NewTask], detail: Mapping[str, Any], *, single: bool
    ) -> list[Task]:
        if single:  # one schedule call: may share a statement with the calls beside it
            return [await self._transact(_Mergeable(self._insert_items, (tasks[0], detail)))]
        return await self._transact(
            lambda c: self._insert_tasks(c, tasks), short=len(tasks) <= INLINE_ROWS
        )

    async def _get(self, task_id: str) -> Task:
        return await self._read(lambda: self._fetch(self._db(), task_id))

    # -- claiming and finishing -----------------------------------------------------------

    async def _claim(self, claim: Claim) -> tuple[list[Event], bool]:
        at = to_micros(claim.at)
        limit, worker_id, send_by = claim.limit, claim.worker_id, claim.send_by
        expires = to_micros(claim.expires)

        def run(conn: sqlite3.Connection) -> tuple[list[Event], bool]:
            ids = _claim_ids(conn, at, limit, self._claim_window)
            if not ids:
                return [], False
            stamp = self._now()
            marks = ", ".join("?" * len(ids))
            rows = conn.execute(
                "UPDATE eq_tasks SET status = 'processing', worker_id = ?, "
                "lease_expires_at = ?, updated_at = ?, version = version + 1 "
                f"WHERE id IN ({marks}) RETURNING {_COLUMNS}",
                (worker_id, expires, stamp, *ids),
            ).fetchall()
            tasks = sorted(map(_row_to_task, rows), key=lambda t: (t.scheduled_at, t.id))
            detail = claim.detail
            events = [Event(t, "claimed", detail) for t in tasks]
            self._insert_events(conn, stamp, events)
            if send_by is not None:
                sending = [
                    Event(t, "sending", sending_detail(t, None))
                    for t in tasks
                    if t.scheduled_at <= send_by
                ]
                self._insert_events(conn, stamp, sending)
            # A claimed occurrence creates the following one in this same transaction.
            return events, self._advance_recurrences(conn, tasks, claim.at, "claimed")

        return await self._transact(run, short=limit <= INLINE_ROWS)

    async def _complete(self, task_id: str, message_id: str | None, worker: str | None) -> Task:
        return await self._transact(_Mergeable(self._complete_tasks, (task_id, message_id, worker)))

    def _complete_tasks(
        self, conn: sqlite3.Connection, items: Sequence[tuple[str, str | None, str | None]]
    ) -> list[Task]:
        """Complete processing tasks ``(task_id, message_id, worker_id)``; all or raise."""
        now = self._now()
        if len(items) == 1:
            task_id, message_id, worker = items[0]
            tasks = [
                self._conditional(
                    conn,
                    "complete",
                    task_id,
                    "status = 'completed', attempts = attempts + 1, message_id = ?, "
                    "lease_expires_at = NULL, updated_at = ?",
                    [message_id, now],
                    worker_id=worker,
                )
            ]
        else:
            # One statement for the batch. A task that is not processing (or named twice)
            # is missing from RETURNING: the batch then reruns call by call, where that
            # call alone gets its TaskConflict or TaskNotFound.
            values = ", ".join(["(?, ?, ?)"] * len(items))
            rows = conn.execute(
                "UPDATE eq_tasks SET status = 'completed', attempts = attempts + 1, "
                "message_id = v.column2, lease_expires_at = NULL, updated_at = ?, "
                f"version = version + 1 FROM (VALUES {values}) AS v "
                "WHERE eq_tasks.id = v.column1 AND eq_tasks.status = 'processing' "
                "AND (v.column3 IS NULL OR eq_tasks.worker_id = v.column3) "
                f"RETURNING {_COLUMNS}",
                (now, *(value for item in items for value in item)),
            ).fetchall()
            if len(rows) != len(items):
                raise _BatchRerun
            by_id = {row[0]: row for row in rows}
            tasks = [_row_to_task(by_id[item[0]]) for item in items]
        self._insert_events(
            conn,
            now,
            [
                Event(task, "completed", message_detail(message_id))
                for task, (_, message_id, _) in zip(tasks, items, strict=True)
            ],
        )
        return tasks

    async def _mark_sending(self, task_id: str, worker: str | None) -> None:
        # The usual case in one statement (the Scheduler marks every send): the detail is
        # exactly what sending_detail would give, the task's attempt number appended in SQL.
        head = None if worker is None else f'{{"worker_id": {_encode(worker)}, "attempt": '

        def run(conn: sqlite3.Connection) -> None:
            now = self._now()
            if head is not None:
                written = conn.execute(
                    "INSERT INTO eq_task_events (task_id, at, kind, detail) "
                    "SELECT id, ?, 'sending', ? || (attempts + 1) || '}' FROM eq_tasks "
                    "WHERE id = ? AND status = 'processing' AND worker_id = ?",
                    (now, head, task_id, worker),
                ).rowcount
                if written:
                    return
            task = self._fetch(conn, task_id)
            self._insert_events(conn, now, [Event(task, "sending", sending_detail(task, worker))])

        await self._transact(run)

    async def _next_due(self) -> datetime | None:

        def run() -> datetime | None:
            row = (
                self._db()
                .execute(
                    "SELECT min(t.scheduled_at) FROM eq_tasks AS t "
                    "JOIN eq_sessions AS s ON s.id = t.session_id "
                    "WHERE t.status = 'pending' AND s.connected = 1"
                )
                .fetchone()
            )
            return None if row is None or row[0] is None else from_micros(row[0])

        return await self._read(run)

    # -- reading --------------------------------------------------------------------------

    async def _history(self, query: HistoryQuery) -> Page:
        count_sql, page_sql, params = _history_sql(query)

        def run() -> Page:
            conn = self._db()
            conn.execute("BEGIN")
            try:
                self._require_session(conn, query.session_id)
                total = conn.execute(count_sql, params).fetchone()[0]
                rows = conn.execute(page_sql, [*params, query.limit, query.offset]).fetchall()
            finally:
                conn.execute("COMMIT")
            return Page(
                items=[_row_to_task(r) for r in rows],
                total=total,
                limit=query.limit,
                offset=query.offset,
            )

        return await self._call(run)

    async def _events(self, task_id: str) -> list[TaskEvent]:

        def run() -> list[TaskEvent]:
            conn = self._db()
            conn.execute("BEGIN")
            try:
                found = conn.execute("SELECT 1 FROM eq_tasks WHERE id = ?", (task_id,))
                if found.fetchone() is None:
                    raise TaskNotFound(task_id)
                rows = conn.execute(
                    "SELECT seq, task_id, at, kind, detail FROM eq_task_events "
                    "WHERE task_id = ? ORDER BY seq",
                    (task_id,),
                ).fetchall()
            finally:
                conn.execute("COMMIT")
            return [_row_to_event(r) for r in rows]

        return await self._read(run)
