"""Wake-ups across store objects, processes and hosts, on both engines.

A ``Scheduler`` polling every 30 s must still send at once a post that another OS process
schedules through its own store object: the bounds below (a few seconds) only prove that
nobody waited for the poll; they are not timings.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import engagequeue
from engagequeue import InMemoryTransport, Payload, Scheduler, SQLiteTaskStore, TaskStatus
from engagequeue._times import isoformat, utcnow
from store_support import POSTGRES_DSN

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from store_support import StoreFactory

POLL = 30.0
BOUND = 3.0
"""Seconds: far below the poll interval, far above any wake-up path."""
SRC = str(Path(engagequeue.__file__).resolve().parents[1])

SCHEDULE_ELSEWHERE = """
import asyncio, sys
from engagequeue import Payload, PostgresTaskStore, SQLiteTaskStore

async def main(kind, target, schema, when, text):
    if kind == "sqlite":
        store = SQLiteTaskStore(target)
    else:
        store = PostgresTaskStore(target, schema=schema)
    async with store:
        await store.schedule("s1", "g@g.us", Payload.text(text), when)

asyncio.run(main(*sys.argv[1:]))
"""


async def schedule_in_another_process(store: Any, when: str, text: str) -> float:
    """Schedule a post through a fresh store in a new OS process; return when it exited."""
    if isinstance(store, engagequeue.SQLiteTaskStore):
        args = ["sqlite", store.path, "-"]
    else:
        args = ["postgres", store.dsn, store.schema]
    env = {**os.environ, "PYTHONPATH": SRC}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SCHEDULE_ELSEWHERE, *args, when, text, env=env
    )
    assert await process.wait() == 0
    return time.monotonic()


async def sent_within(transport: InMemoryTransport, count: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if len(transport.sent) >= count:
            return True
        await asyncio.sleep(0.01)
    return len(transport.sent) >= count


async def test_a_post_scheduled_by_another_process_leaves_without_waiting_for_the_poll(
    store_factory: StoreFactory,
) -> None:
    store = await store_factory()
    await store.add_session("s1")
    transport = InMemoryTransport()
    async with Scheduler(store, transport, poll_interval=POLL):
        await asyncio.sleep(0.2)  # the loop has looked, found nothing, and sleeps for 30 s
        for n in range(3):
            await schedule_in_another_process(store, isoformat(utcnow()), f"now {n}")
            assert await sent_within(transport, n + 1, BOUND), f"post {n} waited for the poll"
    assert [m.payload.content for m in transport.sent] == ["now 0", "now 1", "now 2"]


async def test_a_later_post_from_another_process_shortens_the_schedulers_sleep(
    store_factory: StoreFactory,
) -> None:
    """A wake-up for a post due later makes the scheduler re-check how long it sleeps."""
    store = await store_factory()
    await store.add_session("s1")
    far = await store.schedule("s1", "far@g.us", Payload.text("far"), utcnow() + timedelta(hours=1))
    transport = InMemoryTransport()
    async with Scheduler(store, transport, poll_interval=POLL):
        await asyncio.sleep(0.2)  # sleeping until the poll (the far post is an hour away)
        due = utcnow() + timedelta(seconds=1.5)
        await schedule_in_another_process(store, isoformat(due), "soon")
        assert await sent_within(transport, 1, 1.5 + BOUND), "slept past the earlier post"
        assert utcnow() >= due  # and not early
    assert [m.payload.content for m in transport.sent] == ["soon"]
    assert (await store.get(far.id)).status is TaskStatus.PENDING


async def test_edits_and_reconnects_through_another_store_object_wake_the_scheduler(
    store_factory: StoreFactory,
) -> None:
    store = await store_factory()
    other = await store_factory()  # another store object on the same database
    await store.add_session("s1")
    later = utcnow() + timedelta(hours=1)
    task = await other.schedule("s1", "g@g.us", Payload.text("x"), later)
    parked = await other.schedule("s1", "h@g.us", Payload.text("y"), utcnow())
    await other.session_disconnected("s1")
    transport = InMemoryTransport()
    async with Scheduler(store, transport, poll_interval=POLL):
        await asyncio.sleep(0.2)
        await other.session_connected("s1")
        assert await sent_within(transport, 1, BOUND)
        await other.edit(task.id, scheduled_at=utcnow())
        assert await sent_within(transport, 2, BOUND)
        more = await other.schedule_many([("s1", "k@g.us", Payload.text("z"), utcnow())])
        assert await sent_within(transport, 3, BOUND)
    assert {(await store.get(t.id)).status for t in (task, parked, *more)} == {TaskStatus.COMPLETED}


@pytest.fixture
async def pg_pair() -> AsyncIterator[tuple[Any, Any]]:
    """Two PostgresTaskStore objects on one fresh schema."""
    from engagequeue import PostgresTaskStore

    schema = f"eq_test_{uuid.uuid4().hex[:12]}"
    stores = [PostgresTaskStore(POSTGRES_DSN, schema=schema) for _ in range(2)]
    for store in stores:
        await store.open()
    try:
        yield stores[0], stores[1]
    finally:
        await stores[0].drop_schema()
        for store in stores:
            await store.close()


@pytest.mark.postgres
async def test_a_lost_listener_reconnects_and_a_full_pass_sends_what_it_missed(
    pg_pair: tuple[Any, Any],
) -> None:
    import psycopg

    store, other = pg_pair
    await store.add_session("s1")
    name = f"engagequeue-listener {store.schema}"[:63]

    async def listener_pids() -> list[int]:
        async with await psycopg.AsyncConnection.connect(POSTGRES_DSN, autocommit=True) as c:
            cursor = await c.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (name,)
            )
            return [r[0] for r in await cursor.fetchall()]

    async def wait_for_listener(excluding: set[int]) -> list[int]:
        for _ in range(300):
            pids = [p for p in await listener_pids() if p not in excluding]
            if pids:
                return pids
            await asyncio.sleep(0.01)
        raise AssertionError("the listener never connected")

    transport = InMemoryTransport()
    async with Scheduler(store, transport, poll_interval=POLL):
        first = await wait_for_listener(set())
        assert len(first) == 1
        await asyncio.sleep(0.2)
        async with await psycopg.AsyncConnection.connect(POSTGRES_DSN, autocommit=True) as c:
            await c.execute("SELECT pg_terminate_backend(%s)", (first[0],))
        # Scheduled while the listener is down: its notification is lost.
        await other.schedule("s1", "g@g.us", Payload.text("in the gap"), utcnow())
        assert await sent_within(transport, 1, BOUND), "the post waited for the poll"
        second = await wait_for_listener(set(first))
        assert len(second) == 1
        # Reconnected: wake-ups flow again.
        await asyncio.sleep(0.2)
        await schedule_in_another_process(store, isoformat(utcnow()), "after")
        assert await sent_within(transport, 2, BOUND)
    assert [m.payload.content for m in transport.sent] == ["in the gap", "after"]


async def test_the_sockets_of_dead_sqlite_listeners_are_removed(tmp_path: Path) -> None:
    """A long path on purpose: socket addresses past the kernel's limit still work."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = deep / "store.sqlite3"
    async with SQLiteTaskStore(path) as store, SQLiteTaskStore(path) as other:
        await store.add_session("s1")
        woken: list[int] = []
        store.add_wakeup(lambda: woken.append(1))  # listening: its socket is in the directory
        directory = Path(f"{path}-eqwake")
        assert len(list(directory.iterdir())) == 1
        # A listener whose process died: its socket file stays, nobody reads it.
        fd = os.open(directory, os.O_RDONLY)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as gone:
                gone.bind(f"/proc/self/fd/{fd}/0-dead")
        finally:
            os.close(fd)
        dead = directory / "0-dead"
        assert dead.exists()
        await other.schedule("s1", "g@g.us", Payload.text("x"), utcnow())
        assert not dead.exists()
        for _ in range(100):
            if woken:
                break
            await asyncio.sleep(0.01)
        assert woken == [1]
    assert list(directory.iterdir()) == []
