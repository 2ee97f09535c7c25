"""SQLite calls on the event loop's thread: the loop keeps running while a write waits for a
lock someone else holds, writes issued together still share a commit, the WAL still gets
checkpointed into the file, and a caller's loop of reads still lets other tasks run."""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engagequeue import Payload, SQLiteTaskStore, TaskStatus
from engagequeue._store_sqlite import CHECKPOINT_FRAMES

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


async def _other_tasks_run_while(pending: asyncio.Task[object], turns: int = 5) -> int:
    """Run ``turns`` sleeps of other work while ``pending`` cannot finish; return how many ran."""
    ran = 0
    for _ in range(turns):
        await asyncio.sleep(0.01)
        assert not pending.done(), "the write finished while the lock was held"
        ran += 1
    return ran


async def test_the_loop_runs_other_tasks_while_a_write_waits_for_another_programs_lock(
    db_path: Path,
) -> None:
    async with SQLiteTaskStore(db_path) as store:
        await store.add_session("s")
        other = sqlite3.connect(db_path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another program holds SQLite's write lock
        try:
            write = asyncio.create_task(store.schedule("s", "g", Payload.text("x"), T0))
            assert await _other_tasks_run_while(write) == 5
        finally:
            other.execute("COMMIT")
            other.close()
        task = await write
        assert (await store.get(task.id)).status is TaskStatus.PENDING
        assert [e.kind for e in await store.events(task.id)] == ["created"]


async def test_the_loop_runs_other_tasks_while_another_store_holds_the_writers_turn(
    db_path: Path,
) -> None:
    async with SQLiteTaskStore(db_path) as store:
        await store.add_session("s")
        first = await store.schedule("s", "g", Payload.text("first"), T0)
        # Another engagequeue process's turn on the sidecar lock all writers take first.
        fd = os.open(f"{db_path}-eqlock", os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            claim = asyncio.create_task(store.claim_due(now=T0, worker_id="w"))
            assert await _other_tasks_run_while(claim) == 5
            # Reads do not wait for the writers' turn.
            assert (await store.get(first.id)).status is TaskStatus.PENDING
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        assert [t.id for t in await claim] == [first.id]


async def test_writes_issued_together_share_one_commit(db_path: Path) -> None:
    async with SQLiteTaskStore(db_path) as store:
        await store.add_session("s")
        tasks = [await store.schedule("s", f"g{i}", Payload.text(str(i)), T0) for i in range(5)]
        await store.claim_due(now=T0, limit=5, worker_id="w")
        done = await asyncio.gather(*(store.complete(t.id, worker_id="w") for t in tasks))
        # One transaction, one statement for the five: one instant on all of them.
        assert len({t.updated_at for t in done}) == 1
        assert all(t.status is TaskStatus.COMPLETED for t in done)


async def test_writes_made_on_the_loop_are_checkpointed_into_the_database_file(
    db_path: Path, tmp_path: Path
) -> None:
    async with SQLiteTaskStore(db_path) as store:
        await store.add_session("s")
        # Enough one-task commits to pass the checkpoint mark (each counts at least 8 frames).
        calls = CHECKPOINT_FRAMES // 8 + 50
        for i in range(calls):
            await store.schedule("s", f"g{i % 7}", Payload.text(str(i)), T0)
        # Calls on the store's thread run in order: the checkpoint queued by then is done.
        await store.history("s", "g0")
        copy = tmp_path / "file-alone.sqlite3"
        shutil.copyfile(db_path, copy)  # the database file without its WAL
    conn = sqlite3.connect(copy)
    try:
        in_file = conn.execute("SELECT count(*) FROM eq_tasks").fetchone()[0]
    finally:
        conn.close()
    assert in_file > 0


@pytest.mark.parametrize("durability", ["normal", "full"])
async def test_a_loop_of_reads_lets_other_tasks_run(db_path: Path, durability: str) -> None:
    async with SQLiteTaskStore(db_path, durability=durability) as store:
        await store.add_session("s")
        task = await store.schedule("s", "g", Payload.text("x"), T0)
        ran = asyncio.Event()
        asyncio.get_running_loop().call_soon(ran.set)  # another task's work, queued
        reads = 0
        while not ran.is_set():  # would spin forever if a read never yielded to it
            await store.get(task.id)
            reads += 1
        assert reads >= 1
