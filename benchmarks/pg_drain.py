"""PostgreSQL drain: ``PostgresTaskStore`` workers against a bare psycopg loop, as JSON.

Run from the repository root, with a PostgreSQL server to write to::

    .venv/bin/python benchmarks/pg_drain.py                       # 1, 4 and 8 processes
    .venv/bin/python benchmarks/pg_drain.py --processes 4 --modes concurrent
    .venv/bin/python benchmarks/pg_drain.py --quick               # smoke run, seconds
    .venv/bin/python benchmarks/pg_drain.py --profile 4           # cProfile one of 4 workers

Each run fills a fresh schema with due tasks over 200 groups (2 sessions) through
``schedule_many``; then every worker process (spawned, its own store, started together
after opening) loops ``claim_due(limit=N)`` and completes each claimed task, the completes
issued together (``concurrent``, as the Scheduler does) or awaited one after the other
(``sequential``), until ``next_due()`` says nothing is pending. ``bare`` runs the same
statements as the store (its claim, and one ``UPDATE ... FROM unnest`` with the events
per claimed batch, one transaction each) from plain psycopg with no engagequeue code in
the loop: the yardstick for what the store's own Python costs. After every run the
schema is audited (lost, duplicated, out-of-order tasks, versions) and dropped.

See benchmarks/README.md ("PostgreSQL drain") for what the figures mean.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import multiprocessing as mp
import os
import platform
import pstats
import resource
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import psycopg  # noqa: E402 - after the path fix

from engagequeue import Payload, PostgresTaskStore  # noqa: E402

DSN = os.environ.get("ENGAGEQUEUE_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
BASE = datetime(2026, 1, 1, tzinfo=UTC)


def _cpu() -> float:
    """CPU seconds (user + system) this process has used, all threads included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- the store's workers ----------------------------------------------------------------------


async def _store_loop(store: PostgresTaskStore, claim_limit: int, worker: str, mode: str) -> dict[str, Any]:
    completed = claims = empty = 0
    errors: list[str] = []
    while True:
        tasks = await store.claim_due(limit=claim_limit, worker_id=worker)
        claims += 1
        if not tasks:
            empty += 1
            # Other workers may hold the remaining groups' heads: wait for them.
            if await store.next_due() is None:
                break
            await asyncio.sleep(0.0005)
            continue
        if mode == "concurrent":
            outcomes: list[Any] = await asyncio.gather(
                *(store.complete(t.id, message_id=f"m-{t.id}", worker_id=worker) for t in tasks),
                return_exceptions=True,
            )
        else:
            outcomes = []
            for t in tasks:
                try:
                    outcomes.append(
                        await store.complete(t.id, message_id=f"m-{t.id}", worker_id=worker)
                    )
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    outcomes.append(exc)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                errors.append(f"{type(outcome).__name__}: {outcome}")
            else:
                completed += 1
        if len(errors) > 100:
            break  # broken: tasks left processing would make this loop forever
    return {"completed": completed, "claims": claims, "empty_claims": empty, "errors": errors}


# -- the bare loop ------------------------------------------------------------------------------


async def _bare_loop(
    schema: str, claim_limit: int, worker: str, conn: psycopg.AsyncConnection[Any]
) -> dict[str, Any]:
    """The store's statements from plain psycopg: claim, then one batched complete."""
    s = f'"{schema}"'
    by_time, by_group, take = PostgresTaskStore(DSN, schema=schema)._claim_sql
    complete = f"""
        WITH v AS (
            SELECT * FROM unnest(%s::text[], %s::text[], %s::text[])
                WITH ORDINALITY AS v(id, message_id, detail, ord)
        ), done AS (
            UPDATE {s}.tasks AS t SET status = 'completed', attempts = t.attempts + 1,
                message_id = v.message_id, lease_expires_at = NULL, updated_at = %s,
                version = t.version + 1
            FROM v WHERE t.id = v.id AND t.status = 'processing' AND t.worker_id = %s
            RETURNING t.id, v.ord, v.detail
        ), logged AS (
            INSERT INTO {s}.task_events (task_id, at, kind, detail)
            SELECT d.id, %s, 'completed', d.detail FROM done AS d ORDER BY d.ord
        )
        SELECT count(*) FROM done
    """
    completed = claims = empty = 0
    want = claim_limit + min(3 * claim_limit, 200)
    while True:
        now = datetime.now(UTC)
        async with conn.transaction():
            cur = await conn.execute(by_time, {"now": now, "limit": want, "cap": 256 + want})
            rows = await cur.fetchall()
            ids = [r[0] for r in rows if r[2]][:want]
            if len(ids) < want and any(r[1] == 256 + want for r in rows):
                cur = await conn.execute(by_group, {"now": now, "limit": want})
                ids = [r[0] for r in await cur.fetchall()]
            taken: list[Any] = []
            if ids:
                cur = await conn.execute(
                    take,
                    {
                        "limit": claim_limit,
                        "ids": ids,
                        "worker": worker,
                        "expires": now + timedelta(minutes=5),
                        "stamp": now,
                        "detail": json.dumps({"worker_id": worker}),
                    },
                )
                taken = await cur.fetchall()
        claims += 1
        if not taken:
            empty += 1
            cur = await conn.execute(f"SELECT 1 FROM {s}.tasks WHERE status = 'pending' LIMIT 1")
            if await cur.fetchone() is None:
                break
            await asyncio.sleep(0.0005)
            continue
        ids = [r[0] for r in taken]
        stamp = datetime.now(UTC)
        async with conn.transaction():
            cur = await conn.execute(
                complete,
                (
                    ids,
                    [f"m-{i}" for i in ids],
                    [json.dumps({"message_id": f"m-{i}"}) for i in ids],
                    stamp,
                    worker,
                    stamp,
                ),
            )
            row = await cur.fetchone()
        completed += row[0] if row else 0
    return {"completed": completed, "claims": claims, "empty_claims": empty, "errors": []}


# -- processes -----------------------------------------------------------------------------------


def _worker(
    kind: str,
    schema: str,
    claim_limit: int,
    worker: str,
    mode: str,
    profile: bool,
    ready: Any,
    go: Any,
    out: Any,
) -> None:
    async def main() -> dict[str, Any]:
        if kind == "bare":
            conn = await psycopg.AsyncConnection.connect(DSN, autocommit=True)
            try:
                ready.release()
                go.wait()
                return await _measured(_bare_loop(schema, claim_limit, worker, conn), profile)
            finally:
                await conn.close()
        async with PostgresTaskStore(DSN, schema=schema) as store:
            await store.next_due()  # warm the pool before the start signal
            ready.release()
            go.wait()
            return await _measured(_store_loop(store, claim_limit, worker, mode), profile)

    out.put(asyncio.run(main()))


async def _measured(loop: Any, profile: bool) -> dict[str, Any]:  # noqa: ANN401
    # CPU time, not wall time: on 2 busy cores wall time charges waits to whatever ran.
    profiler = cProfile.Profile(time.thread_time) if profile else None
    cpu = _cpu()
    start = time.monotonic()
    if profiler is not None:
        profiler.enable()
    result: dict[str, Any] = await loop
    if profiler is not None:
        profiler.disable()
    result["end"] = time.monotonic()
    result["start"] = start
    result["cpu_seconds"] = _cpu() - cpu
    if profiler is not None:
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("tottime").print_stats(35)
        stats.sort_stats("cumulative").print_stats(45)
        result["profile"] = text.getvalue()
    return result


async def _fill(schema: str, tasks: int, groups: int, sessions: int) -> None:
    async with PostgresTaskStore(DSN, schema=schema) as store:
        for s in range(sessions):
            await store.add_session(f"s{s}")
        items = [
            (
                f"s{i % sessions}",
                f"g{i % groups}",
                Payload.text(f"post {i}"),
                BASE + timedelta(seconds=i // groups),
            )
            for i in range(tasks)
        ]
        for n in range(0, len(items), 5_000):
            await store.schedule_many(items[n : n + 5_000])


async def _audit(schema: str) -> dict[str, int]:
    s = f'"{schema}"'
    async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as conn:

        async def one(sql: str) -> int:
            cur = await conn.execute(sql)
            row = await cur.fetchone()
            return int(row[0]) if row else -1

        total = await one(f"SELECT count(*) FROM {s}.tasks")
        lost = await one(f"SELECT count(*) FROM {s}.tasks WHERE status <> 'completed'")
        counts = f"""
            SELECT task_id, count(*) FILTER (WHERE kind = 'claimed') AS claimed,
                   count(*) FILTER (WHERE kind = 'completed') AS completed
            FROM {s}.task_events GROUP BY task_id"""
        duplicates = await one(
            f"SELECT count(*) FROM ({counts}) c WHERE c.claimed > 1 OR c.completed > 1"
        )
        not_one = await one(
            f"SELECT count(*) FROM {s}.tasks t LEFT JOIN ({counts}) c ON c.task_id = t.id "
            "WHERE c.claimed IS DISTINCT FROM 1 OR c.completed IS DISTINCT FROM 1"
        )
        # created (1), claimed (2), completed (3).
        versions = await one(f"SELECT count(*) FROM {s}.tasks WHERE version <> 3")
        out_of_order = await one(
            f"""
            SELECT count(*) FROM (
                SELECT t.scheduled_at, lag(t.scheduled_at) OVER w AS before
                FROM {s}.task_events e JOIN {s}.tasks t ON t.id = e.task_id
                WHERE e.kind = 'claimed'
                WINDOW w AS (PARTITION BY t.session_id, t.group_id ORDER BY e.seq)
            ) x WHERE x.scheduled_at < x.before"""
        )
    return {
        "tasks": total,
        "lost": lost,
        "duplicates": duplicates,
        "tasks_without_exactly_one_claim_and_completion": not_one,
        "wrong_version": versions,
        "out_of_order": out_of_order,
    }


async def _drop(schema: str) -> None:
    async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def run(
    kind: str, *, tasks: int, groups: int, processes: int, claim_limit: int, mode: str, profile: bool
) -> dict[str, Any]:
    schema = f"eqbench_{secrets.token_hex(4)}"
    asyncio.run(_fill(schema, tasks, groups, sessions=2))
    ctx = mp.get_context("spawn")
    ready, go, out = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(kind, schema, claim_limit, f"w{n}", mode, profile and n == 0, ready, go, out),
        )
        for n in range(processes)
    ]
    try:
        for p in procs:
            p.start()
        for _ in procs:
            ready.acquire()
        go.set()
        results = [out.get(timeout=900) for _ in procs]
        for p in procs:
            p.join()
        audit = asyncio.run(_audit(schema))
    finally:
        asyncio.run(_drop(schema))
    span = max(r["end"] for r in results) - min(r["start"] for r in results)
    completed = sum(r["completed"] for r in results)
    cpu = sum(r["cpu_seconds"] for r in results)
    figures: dict[str, Any] = {
        "kind": kind,
        "mode": mode if kind == "store" else "batched",
        "processes": processes,
        "tasks_per_s": round(completed / span, 1),
        "cpu_us_per_task": round(cpu / max(completed, 1) * 1e6, 1),
        "seconds": round(span, 3),
        "completed": completed,
        "claims": sum(r["claims"] for r in results),
        "empty_claims": sum(r["empty_claims"] for r in results),
        "errors": [e for r in results for e in r["errors"]][:5],
        "error_count": sum(len(r["errors"]) for r in results),
        "audit": audit,
    }
    for r in results:
        if "profile" in r:
            print(r["profile"], file=sys.stderr)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--processes", default="1,4,8")
    parser.add_argument("--claim-limit", type=int, default=50)
    parser.add_argument("--modes", default="concurrent,sequential,bare")
    parser.add_argument("--profile", type=int, default=0, metavar="PROCESSES",
                        help="profile the first worker of one concurrent run with this many")
    parser.add_argument("--quick", action="store_true", help="2,000 tasks, 1 and 4 processes")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.processes = 2_000, "1,4"
    counts = [int(p) for p in args.processes.split(",")]
    modes = args.modes.split(",")
    started = os.getloadavg()[0]
    runs = []
    if args.profile:
        runs.append(
            run("store", tasks=args.tasks, groups=args.groups, processes=args.profile,
                claim_limit=args.claim_limit, mode="concurrent", profile=True)
        )
    else:
        for processes in counts:
            for mode in modes:
                kind = "bare" if mode == "bare" else "store"
                runs.append(
                    run(kind, tasks=args.tasks, groups=args.groups, processes=processes,
                        claim_limit=args.claim_limit, mode=mode, profile=False)
                )
                print(json.dumps(runs[-1]), file=sys.stderr)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "psycopg": psycopg.__version__,
            "libpq": psycopg.pq.version(),
            "load_1min_start": round(started, 2),
            "load_1min_end": round(os.getloadavg()[0], 2),
        },
        "parameters": {"tasks": args.tasks, "groups": args.groups, "claim_limit": args.claim_limit},
        "runs": runs,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
