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

import pytest

import engagequeue
from engagequeue import EngageQueueError, Payload, SQLiteTaskStore, TaskStatus, ValidationError

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
    assert conn.execute("SELECT value FROM eq_meta WHERE key = 'schema_version'").fetchone() == ("1",)
    conn.execute("UPDATE eq_meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(EngageQueueError, match="newer"):
        await SQLiteTaskStore(db_path).open()


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

        plan = store._db().execute(f"EXPLAIN QUERY PLAN {_CLAIM_SQL}", {"now": 0, "limit": 1})
        details = " ".join(row[3] for row in plan)
    assert "eq_tasks_due" in details
    assert "eq_tasks_one_in_flight" in details
    assert "eq_tasks_group_pending" in details


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
