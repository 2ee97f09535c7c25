"""What only the SQLite backend has: the file, its pragmas, its schema, several processes."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engagequeue
from engagequeue import EngageQueueError, Payload, SQLiteTaskStore, TaskStatus, ValidationError
from engagequeue._store_sqlite import SCHEMA_VERSION
from store_support import populate_every_status

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SRC = str(Path(engagequeue.__file__).resolve().parents[1])


@pytest.mark.parametrize(("durability", "synchronous"), [("normal", 1), ("full", 2)])
async def test_durability_sets_wal_and_the_synchronous_level(
    db_path: Path, durability: str, synchronous: int
) -> None:
    async with SQLiteTaskStore(db_path, durability=durability) as store:
        conn = store._db()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == synchronous
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


async def test_tasks_survive_closing_and_reopening_the_file(db_path: Path) -> None:
    async with SQLiteTaskStore(db_path) as store:
        await store.add_session("s")
        task = await store.schedule("s", "g", Payload.text("persist me"), T0)
    async with SQLiteTaskStore(db_path) as reopened:
        assert await reopened.get(task.id) == task
        assert [e.kind for e in await reopened.events(task.id)] == ["created"]


async def test_schema_version_is_recorded_and_a_newer_file_is_refused(db_path: Path) -> None:
    async with SQLiteTaskStore(db_path):
        pass
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT value FROM eq_meta WHERE key = 'schema_version'").fetchone() == (
        str(SCHEMA_VERSION),
    )
    conn.execute("UPDATE eq_meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(EngageQueueError, match="newer"):
        await SQLiteTaskStore(db_path).open()


def _index_names(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        )
        return {r[0] for r in rows}
    finally:
        conn.close()


async def test_a_version_1_file_is_migrated_in_place_and_keeps_its_tasks(db_path: Path) -> None:
    """Version 2 replaced two indexes; a file written by version 1 is migrated on open."""
    from engagequeue._store_sqlite import _MIGRATIONS

    async with SQLiteTaskStore(db_path) as store:
        await store.add_session("s1")
        tasks = [
            await store.schedule("s1", "g", Payload.text(str(i)), T0 + timedelta(minutes=i))
            for i in range(6)
        ]
        for task in await store.claim_due(now=T0 + timedelta(hours=1), limit=1):
            await store.complete(task.id)
        await store.cancel(tasks[3].id)
        before = [await store.history("s1", "g", status=s) for s in (None, "pending", "completed")]
    # Turn the file back into what version 1 wrote: its indexes, its version number.
    version_1_indexes = [
        statement.strip()
        for statement in _MIGRATIONS[0].split(";")
        if "eq_tasks_history" in statement or "eq_tasks_session_processing" in statement
    ]
    assert len(version_1_indexes) == 2
    conn = sqlite3.connect(db_path)
    for undo in (
        "DROP TABLE eq_recurrence_events",
        "DROP TABLE eq_recurrences",
        "DROP INDEX eq_tasks_recurrence",
        "ALTER TABLE eq_tasks DROP COLUMN recurrence_id",
    ):
        conn.execute(undo)  # version 4's additions
    conn.execute("ALTER TABLE eq_tasks DROP COLUMN version")
    conn.execute("DROP INDEX eq_tasks_group_time")
    conn.execute("DROP INDEX eq_tasks_group_done")
    for statement in version_1_indexes:
        conn.execute(statement.split("\n")[-1] if statement.startswith("--") else statement)
    conn.execute("UPDATE eq_meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    assert {"eq_tasks_history", "eq_tasks_session_processing"} <= _index_names(db_path)

    async with SQLiteTaskStore(db_path) as store:
        after = [await store.history("s1", "g", status=s) for s in (None, "pending", "completed")]
        # Versions start at 1 in a migrated file (schema 3 added them).
        assert after == [
            attrs.evolve(p, items=[attrs.evolve(t, version=1) for t in p.items]) for p in before
        ]
        assert [t.status for t in after[0].items][:4] == [
            TaskStatus.COMPLETED,
            TaskStatus.PENDING,
            TaskStatus.PENDING,
            TaskStatus.CANCELLED,
        ]
    names = _index_names(db_path)
    assert {"eq_tasks_group_time", "eq_tasks_group_done"} <= names
    assert not {"eq_tasks_history", "eq_tasks_session_processing"} & names
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT value FROM eq_meta WHERE key = 'schema_version'").fetchone() == (
        str(SCHEMA_VERSION),
    )
    conn.close()


async def test_history_and_disconnect_read_the_indexes_made_for_them(db_path: Path) -> None:
    from engagequeue._store_args import prepare_history
    from engagequeue._store_sqlite import _history_sql

    def plan(conn: sqlite3.Connection, sql: str, params: list[object]) -> str:
        return " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))

    async with SQLiteTaskStore(db_path) as store:
        conn = store._db()
        expected = {
            None: {"eq_tasks_group_time"},
            "completed": {"eq_tasks_group_done"},
            ("failed", "pending"): {"eq_tasks_group_done", "eq_tasks_group_pending"},
            ("processing",): {"eq_tasks_one_in_flight"},
        }
        for status, indexes in expected.items():
            query = prepare_history("s1", "g", T0, None, status, 50, 0)
            count_sql, page_sql, params = _history_sql(query)
            for sql, args in ((count_sql, params), (page_sql, [*params, 50, 0])):
                details = plan(conn, sql, args)
                assert all(index in details for index in indexes), (status, details)
                assert "SCAN eq_tasks" not in details, details
        await store.add_session("s1")
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        await store.session_disconnected("s1")
        conn.set_trace_callback(None)
        (release,) = [s for s in statements if s.startswith("UPDATE eq_tasks")]
        assert "eq_tasks_one_in_flight" in plan(conn, release, [])


async def test_a_file_that_is_not_a_database_gives_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ValidationError, match="not a usable"):
        await SQLiteTaskStore(junk).open()
    with pytest.raises(ValidationError, match="cannot open"):
        await SQLiteTaskStore(tmp_path / "missing-dir" / "q.sqlite3").open()


async def test_a_closed_store_says_so() -> None:
    store = SQLiteTaskStore(":memory:")
    with pytest.raises(EngageQueueError, match="not open"):
        await store.get("x")
    async with store:
        await store.add_session("s")
    await store.close()


async def test_the_database_itself_refuses_two_tasks_of_a_group_in_flight(db_path: Path) -> None:
    async with SQLiteTaskStore(db_path) as store:
        await store.add_session("s")
        a = await store.schedule("s", "g", Payload.text("a"), T0)
        b = await store.schedule("s", "g", Payload.text("b"), T0)
        await store.claim_due(now=T0)
    conn = sqlite3.connect(db_path)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        conn.execute("UPDATE eq_tasks SET status = 'processing' WHERE id = ?", (b.id,))
    conn.close()
    async with SQLiteTaskStore(db_path) as store:
        assert (await store.get(a.id)).status is TaskStatus.PROCESSING
        assert (await store.get(b.id)).status is TaskStatus.PENDING


async def test_claims_use_the_partial_indexes(db_path: Path) -> None:
    async with SQLiteTaskStore(db_path) as store:
        from engagequeue._store_sqlite import _CLAIM_SQL

        plan = store._db().execute(
            f"EXPLAIN QUERY PLAN {_CLAIM_SQL}", {"now": 0, "limit": 1, "window": 256}
        )
        details = " ".join(row[3] for row in plan)
    assert "eq_tasks_due" in details
    assert "eq_tasks_one_in_flight" in details
    assert "eq_tasks_group_pending" in details


async def test_a_backlog_in_a_busy_group_does_not_hide_other_groups(db_path: Path) -> None:
    """Past the window of earliest due tasks, the claim walks group by group."""
    async with SQLiteTaskStore(db_path) as store:
        await store.add_session("s")
        await store.add_session("down")
        backlog = await store.schedule_many(
            ("s", "busy", Payload.text(str(i)), T0 + timedelta(seconds=i)) for i in range(600)
        )
        late = [
            await store.schedule(
                "s", f"g{i}", Payload.text("late"), T0 + timedelta(hours=1, minutes=i)
            )
            for i in range(3)
        ]
        await store.schedule("down", "g", Payload.text("not claimable"), T0 + timedelta(hours=1))
        await store.session_disconnected("down")
        now = T0 + timedelta(days=1)
        (first,) = await store.claim_due(now=now)
        assert first.id == backlog[0].id
        claimed = await store.claim_due(now=now, limit=10)
        assert [t.id for t in claimed] == [t.id for t in late]
        await store.complete(first.id)
        assert [t.id for t in await store.claim_due(now=now, limit=10)] == [backlog[1].id]


_WORKER = textwrap.dedent(
    """
    import asyncio, json, sys
    from datetime import timedelta
    from engagequeue import SQLiteTaskStore

    async def main(path, worker):
        done = []
        async with SQLiteTaskStore(path) as store:
            while True:
                claimed = await store.claim_due(limit=25, worker_id=worker)
                if not claimed:
                    if await store.next_due() is None:
                        break
                    await asyncio.sleep(0.001)
                    continue
                for task in claimed:
                    await store.complete(task.id, message_id=worker)
                    done.append(task.id)
        print(json.dumps(done))

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


@pytest.mark.slow
async def test_four_processes_complete_5000_tasks_exactly_once(db_path: Path) -> None:
    total = 5_000
    async with SQLiteTaskStore(db_path) as store:
        await store.add_session("s")
        tasks = await store.schedule_many(
            ("s", f"g{i % 200}", Payload.text(f"post {i}"), T0 + timedelta(seconds=i % 97))
            for i in range(total)
        )
    env = {**os.environ, "PYTHONPATH": SRC}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _WORKER,
            str(db_path),
            f"worker-{n}",
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        for n in range(4)
    ]
    outputs = [await asyncio.wait_for(p.communicate(), timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0]
    per_worker = [json.loads(out) for out, _ in outputs]
    completed = [task_id for ids in per_worker for task_id in ids]

    assert len(completed) == total, "a task was completed twice or not at all"
    assert set(completed) == {t.id for t in tasks}
    assert sum(1 for ids in per_worker if ids) >= 2, "the work was not shared"
    conn = sqlite3.connect(db_path)
    rows = conn.execute(
        "SELECT t.status, sum(e.kind = 'claimed'), sum(e.kind = 'completed') "
        "FROM eq_tasks t JOIN eq_task_events e ON e.task_id = t.id GROUP BY t.id"
    ).fetchall()
    conn.close()
    assert len(rows) == total
    assert set(rows) == {("completed", 1, 1)}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tasks=st.lists(
        st.tuples(st.sampled_from(["s1", "s2"]), st.sampled_from("abcde"), st.integers(-5, 5)),
        min_size=1,
        max_size=25,
    ),
    first_limit=st.integers(0, 4),
    limit=st.integers(1, 6),
    drop_s2=st.booleans(),
)
def test_the_group_walk_claims_exactly_what_the_window_scan_claims(
    tmp_path_factory: pytest.TempPathFactory,
    tasks: list[tuple[str, str, int]],
    first_limit: int,
    limit: int,
    drop_s2: bool,
) -> None:
    """Two stores get the same operations; one may only look at one due task before it
    walks group by group. Both claim the same posts, in the same order."""

    async def run(window: int) -> list[list[str | None]]:
        path = tmp_path_factory.mktemp("walk") / "q.sqlite3"
        async with SQLiteTaskStore(path) as store:
            store._claim_window = window
            for session in ("s1", "s2"):
                await store.add_session(session)
            await store.schedule_many(
                (s, g, Payload.text(f"post {i}"), T0 + timedelta(minutes=m))
                for i, (s, g, m) in enumerate(tasks)
            )
            rounds = []
            if first_limit:
                rounds.append(await store.claim_due(now=T0, limit=first_limit))
            if drop_s2:
                await store.session_disconnected("s2", keep=[t.id for r in rounds for t in r])
            rounds.append(await store.claim_due(now=T0, limit=limit))
            return [[t.payload.content for t in r] for r in rounds]

    assert asyncio.run(run(1)) == asyncio.run(run(10_000))


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX-only; Windows has no sidecar")
async def test_writers_take_turns_on_the_sidecar_lock_and_readers_do_not_wait(
    db_path: Path,
) -> None:
    """engagequeue writers queue on ``<file>-eqlock`` (handed over by the kernel) instead of
    polling SQLite's lock; a write waits while another holder has it, another store's read
    does not."""
    import fcntl

    async with SQLiteTaskStore(db_path) as store:
        await store.add_session("s1")
        first = await store.schedule("s1", "g", Payload.text("first"), T0)
        lock_path = Path(f"{db_path}-eqlock")
        assert lock_path.exists()
        with lock_path.open("a") as other_writer:
            fcntl.flock(other_writer, fcntl.LOCK_EX)
            write = asyncio.ensure_future(store.schedule("s1", "g", Payload.text("second"), T0))
            await asyncio.sleep(0.3)
            assert not write.done()
            async with SQLiteTaskStore(db_path) as reader:  # opening writes nothing new
                assert (await reader.get(first.id)).status is TaskStatus.PENDING
            fcntl.flock(other_writer, fcntl.LOCK_UN)
            second = await asyncio.wait_for(write, 5)
        assert (await store.history("s1", "g")).total == 2
        assert second.payload.content == "second"


async def test_an_sqlite_too_old_for_the_stores_sql_is_refused_clearly(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engagequeue._store_sqlite as module

    monkeypatch.setattr(module, "_SQLITE_VERSION", (3, 31, 1))
    with pytest.raises(EngageQueueError, match=r"needs SQLite 3\.35\.0 or newer.*3\.31\.1"):
        await SQLiteTaskStore(db_path).open()
    assert not db_path.exists()  # nothing written


def _event_rows(events: dict[str, list[Any]]) -> dict[str, list[tuple[Any, ...]]]:
    return {i: [(e.id, e.kind, e.at, dict(e.detail)) for e in es] for i, es in events.items()}


async def test_a_file_of_the_previous_release_opens_with_every_post_and_event_kept(
    db_path: Path,
) -> None:
    """Schema 3 added task versions: a schema-2 file with posts in every status upgrades."""
    async with SQLiteTaskStore(db_path) as store:
        before = await populate_every_status(store)
    # Make the file exactly what the previous release (schema 2) wrote: no version column.
    conn = sqlite3.connect(db_path)
    for undo in (
        "DROP TABLE eq_recurrence_events",
        "DROP TABLE eq_recurrences",
        "DROP INDEX eq_tasks_recurrence",
        "ALTER TABLE eq_tasks DROP COLUMN recurrence_id",
    ):
        conn.execute(undo)  # schema 4's additions
    conn.execute("ALTER TABLE eq_tasks DROP COLUMN version")
    conn.execute("UPDATE eq_meta SET value = '2' WHERE key = 'schema_version'")
    conn.commit()
    columns = {r[1] for r in conn.execute("PRAGMA table_info(eq_tasks)")}
    conn.close()
    assert "version" not in columns

    async with SQLiteTaskStore(db_path) as store:
        after = {i: await store.get(i) for i in before["tasks"]}
        assert after == {i: attrs.evolve(t, version=1) for i, t in before["tasks"].items()}
        events = {i: await store.events(i) for i in before["tasks"]}
        assert _event_rows(events) == _event_rows(before["events"])
        # The upgraded tasks take part in versioned edits like new ones.
        pending = next(t for t in after.values() if t.status is TaskStatus.PENDING)
        edited = await store.edit(pending.id, payload=Payload.text("again"), if_version=1)
        assert edited.version == 2
