# Copyright 2026 engagequeue developers. Licensed under the MIT license.
"""The peers' side of ``peers.py``: huey, litequeue and pgqueuer, timed with their own APIs.

Runs inside the throw-away virtual environment that ``peers.py`` builds (never imports
engagequeue). One measurement per call; the spec is one JSON argument and the result is
one JSON object on stdout::

    python _peer_harness.py '{"part": "litequeue_put", "path": "/tmp/x.sqlite3", "tasks": 1000}'

Parts: ``litequeue_put`` (``put`` one after the other, autocommit), ``litequeue_batch``
(``put`` inside ``transaction()`` per batch), ``huey_drain`` (``SqliteHuey``'s worker loop,
``dequeue`` then ``execute``, after the tasks were enqueued), ``pgqueuer_drain``
(``QueueManager.run`` in drain mode in N processes on one schema). Every part audits what
it did: rows stored, tasks executed once, none left.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import resource
import sqlite3
import sys
import time
from collections import Counter
from datetime import timedelta
from importlib.metadata import version
from typing import Any

import asyncpg
from huey import SqliteHuey
from litequeue import LiteQueue
from pgqueuer import Queries, QueueManager
from pgqueuer.models import Job
from pgqueuer.types import QueueExecutionMode


def _cpu() -> float:
    """CPU seconds (user + system) of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rate(count: int, seconds: float) -> int | None:
    return round(count / seconds) if seconds > 0 else None


# -- litequeue -----------------------------------------------------------------------------


def litequeue_put(spec: dict[str, Any]) -> dict[str, Any]:
    queue = LiteQueue(spec["path"])
    data = [
        json.dumps({"group": f"g{i % 200}@g.us", "text": f"post {i}"}) for i in range(spec["tasks"])
    ]
    start = time.perf_counter()
    for item in data:
        queue.put(item)
    elapsed = time.perf_counter() - start
    stored = queue.conn.execute("SELECT count(*) FROM Queue").fetchone()[0]
    synchronous = queue.conn.execute("PRAGMA synchronous").fetchone()[0]
    queue.conn.close()
    return {
        "peer": "litequeue",
        "calls": "put, one after the other (autocommit: one transaction each)",
        "tasks": spec["tasks"],
        "seconds": round(elapsed, 3),
        "tasks_per_s": _rate(spec["tasks"], elapsed),
        "stored": stored,
        "pragma_synchronous": synchronous,
    }


def litequeue_batch(spec: dict[str, Any]) -> dict[str, Any]:
    queue = LiteQueue(spec["path"])
    tasks, batch = spec["tasks"], spec["batch"]
    data = [json.dumps({"group": f"g{i % 200}@g.us", "text": f"bulk {i}"}) for i in range(tasks)]
    start = time.perf_counter()
    for lo in range(0, tasks, batch):
        with queue.transaction():
            for item in data[lo : lo + batch]:
                queue.put(item)
    elapsed = time.perf_counter() - start
    stored = queue.conn.execute("SELECT count(*) FROM Queue").fetchone()[0]
    queue.conn.close()
    return {
        "peer": "litequeue",
        "calls": f"put inside one transaction() per batch of {batch}",
        "tasks": tasks,
        "batch": batch,
        "seconds": round(elapsed, 3),
        "tasks_per_s": _rate(tasks, elapsed),
        "stored": stored,
    }


# -- huey ----------------------------------------------------------------------------------


def huey_drain(spec: dict[str, Any]) -> dict[str, Any]:
    """``SqliteHuey``'s worker loop: ``dequeue`` then ``execute`` until the queue is empty.

    ``fsync``: ``"default"`` leaves huey's default (``fsync=None``: no pragma, so SQLite's
    compiled-in ``synchronous``), ``"full"`` passes ``fsync=True`` (``synchronous=FULL``).
    """
    kwargs: dict[str, Any] = {} if spec["fsync"] == "default" else {"fsync": True}
    huey = SqliteHuey("bench", filename=spec["path"], **kwargs)
    executed: list[int] = []

    @huey.task()
    def post(number: int, group: str, text: str) -> None:
        del group, text  # carried like a post's fields; the send is a no-op
        executed.append(number)

    tasks = spec["tasks"]
    fill_start = time.perf_counter()
    for i in range(tasks):
        post(i, f"g{i % 200}@g.us", f"post {i}")
    fill = time.perf_counter() - fill_start
    synchronous = huey.storage.conn.execute("PRAGMA synchronous").fetchone()[0]
    cpu = _cpu()
    start = time.perf_counter()
    while True:
        task = huey.dequeue()
        if task is None:
            break
        huey.execute(task)
    elapsed = time.perf_counter() - start
    cpu = _cpu() - cpu
    counts = Counter(executed)
    left = huey.pending_count()
    return {
        "peer": "huey",
        "loop": "SqliteHuey worker loop: dequeue() then execute(task), one task at a time",
        "fsync": spec["fsync"],
        "huey_kwargs": dict(kwargs),
        "pragma_synchronous": synchronous,
        "tasks": tasks,
        "fill_seconds": round(fill, 3),
        "seconds": round(elapsed, 3),
        "tasks_per_s": _rate(len(executed), elapsed),
        "cpu_us_per_task": round(1e6 * cpu / max(len(executed), 1)),
        "executed": len(executed),
        "lost": tasks - len(counts),
        "duplicates": sum(1 for c in counts.values() if c > 1),
        "left_in_queue": left,
    }


# -- pgqueuer ------------------------------------------------------------------------------


async def _pgq_connect(dsn: str) -> Any:
    return await asyncpg.connect(dsn)


def _pgq_worker(spec: dict[str, Any], ready: Any, go: Any, out: Any) -> None:
    async def main() -> dict[str, Any]:
        conn = await _pgq_connect(spec["dsn"])
        qm = QueueManager(Queries.from_asyncpg_connection(conn))
        executed: list[int] = []

        @qm.entrypoint("post")
        async def post(job: Job) -> None:
            executed.append(int(job.payload or b"-1"))

        await qm.queries.queued_work(["post"])  # warm the connection before the start
        ready.release()
        await asyncio.get_running_loop().run_in_executor(None, go.wait)
        cpu = _cpu()
        start = time.monotonic()
        await qm.run(
            dequeue_timeout=timedelta(seconds=spec["dequeue_timeout"]),
            batch_size=spec["batch_size"],
            mode=QueueExecutionMode.drain,
        )
        end = time.monotonic()
        cpu = _cpu() - cpu
        if not conn.is_closed():
            await conn.close()
        return {"executed": executed, "start": start, "end": end, "cpu": cpu}

    out.put(asyncio.run(main()))


def pgqueuer_drain(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec["processes"]`` processes each run ``QueueManager.run(mode=drain)``.

    The schema comes from ``PGQUEUER_SCHEMA`` (set by the caller, with its own
    ``PGQUEUER_CHANNEL``), installed here and dropped at the end.
    """
    tasks, processes = spec["tasks"], spec["processes"]

    async def setup() -> None:
        conn = await _pgq_connect(spec["dsn"])
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {spec['schema']} CASCADE")
            queries = Queries.from_asyncpg_connection(conn)
            await queries.install()
            for lo in range(0, tasks, 5_000):
                n = min(5_000, tasks - lo)
                await queries.enqueue(
                    ["post"] * n, [str(i).encode() for i in range(lo, lo + n)], [0] * n
                )
        finally:
            await conn.close()

    async def audit() -> dict[str, Any]:
        conn = await _pgq_connect(spec["dsn"])
        try:
            s = spec["schema"]
            left = await conn.fetchval(f"SELECT count(*) FROM {s}.pgqueuer")
            logged = await conn.fetchval(
                f"SELECT count(DISTINCT job_id) FROM {s}.pgqueuer_log WHERE status = 'successful'"
            )
            return {"left_in_queue": left, "logged_successful": logged}
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await _pgq_connect(spec["dsn"])
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {spec['schema']} CASCADE")
        finally:
            await conn.close()

    asyncio.run(setup())
    try:
        ctx = mp.get_context("spawn")
        ready, go, out = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
        procs = [
            ctx.Process(target=_pgq_worker, args=(spec, ready, go, out)) for _ in range(processes)
        ]
        for p in procs:
            p.start()
        for _ in procs:
            ready.acquire()
        go.set()
        results = [out.get() for _ in procs]
        for p in procs:
            p.join()
        checked = asyncio.run(audit())
    finally:
        asyncio.run(drop())
    counts = Counter(n for r in results for n in r["executed"])
    executed = sum(counts.values())
    elapsed = max(r["end"] for r in results) - min(r["start"] for r in results)
    return {
        "peer": "pgqueuer",
        "loop": "QueueManager.run(mode=drain) on an asyncpg connection per process",
        "processes": processes,
        "batch_size": spec["batch_size"],
        "tasks": tasks,
        "seconds": round(elapsed, 3),
        "tasks_per_s": _rate(executed, elapsed),
        "cpu_us_per_task": round(1e6 * sum(r["cpu"] for r in results) / max(executed, 1)),
        "executed": executed,
        "per_worker_executed": [len(r["executed"]) for r in results],
        "lost": tasks - len(counts),
        "duplicates": sum(1 for c in counts.values() if c > 1),
        **checked,
    }


PARTS = {
    "litequeue_put": litequeue_put,
    "litequeue_batch": litequeue_batch,
    "huey_drain": huey_drain,
    "pgqueuer_drain": pgqueuer_drain,
}


def versions() -> dict[str, Any]:
    return {
        **{name: version(name) for name in ("huey", "litequeue", "pgqueuer", "asyncpg")},
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
    }


if __name__ == "__main__":
    request = json.loads(sys.argv[1])
    if request["part"] == "versions":
        print(json.dumps(versions()))
    else:
        os.environ.setdefault("PYTHONHASHSEED", "0")
        print(json.dumps(PARTS[request["part"]](request)))
