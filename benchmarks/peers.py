# Copyright 2026 engagequeue developers. Licensed under the MIT license.
"""engagequeue side by side with the queues users would otherwise pick (issue 10), one JSON object.

Run from the repository root with the project's interpreter::

    .venv/bin/python benchmarks/peers.py                # everything, both engines (~10 min)
    .venv/bin/python benchmarks/peers.py --quick        # smoke run (seconds)
    .venv/bin/python benchmarks/peers.py --no-peers     # our side and the bare loops only
    .venv/bin/python benchmarks/peers.py --parts sqlite --rounds 3

The peers (huey, litequeue, pgqueuer with asyncpg) are installed in a throw-away virtual
environment (``benchmarks/.peers-venv`` by default, gitignored; built on the first run,
reused after) and never become project dependencies; ``_peer_harness.py`` times them there
with their own APIs. Each round runs every figure once, ours and the peer's next to each
other, the order of the pair reversed every other round; the report gives each round's
values, their median, and ratios of the medians: to the peer and to the bare sqlite3 /
psycopg loop of the same run. See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from dispatch import end_to_end  # noqa: E402 - a Scheduler draining through InMemoryTransport
from store_bench import _cpu, _schedule, run_drain, run_reference  # noqa: E402

from engagequeue import Payload, PostgresTaskStore, SQLiteTaskStore  # noqa: E402

DSN = os.environ.get("ENGAGEQUEUE_BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/test")
PEER_VENV = HERE / ".peers-venv"
PEER_PACKAGES = ("huey", "litequeue", "pgqueuer", "asyncpg")
HARNESS = HERE / "_peer_harness.py"
BASE = datetime(2026, 1, 1, tzinfo=UTC)

# The issue-10 "Done when" lines this script measures: figure -> (minimum ratio, against).
TARGETS: dict[str, tuple[float, str]] = {
    "sqlite_schedule_one_by_one": (1.0, "litequeue put"),
    "sqlite_schedule_many": (1.0, "litequeue put, one transaction per batch"),
    "sqlite_drain_sequential_normal": (2.0, "huey worker loop, default durability"),
    "sqlite_drain_sequential_full": (1.0, "huey worker loop, fsync=True"),
    "sqlite_dispatch_scheduler": (2.0, "huey worker loop, default durability"),
    "postgres_drain_4p": (1.0, "pgqueuer drain, 4 processes"),
}
PG_CPU_TARGET_US = 300
PEER_VENV_UNAVAILABLE = 3
"""Exit status when the peers' environment cannot be built (no registry): nothing measured."""


# -- the peers' virtual environment --------------------------------------------------------


def peer_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_peer_venv(venv: Path) -> dict[str, Any]:
    """Build (or reuse) the peers' virtual environment; return the peers' versions.

    Raises ``RuntimeError`` with pip's last lines when it cannot be built (no registry).
    """
    python = peer_python(venv)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    probe = [str(python), str(HARNESS), json.dumps({"part": "versions"})]
    found = subprocess.run(probe, capture_output=True, text=True, check=False)
    if found.returncode != 0:
        pip = subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                *PEER_PACKAGES,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        if pip.returncode != 0:
            tail = "\n".join((pip.stderr or pip.stdout).strip().splitlines()[-5:])
            raise RuntimeError(f"cannot install {', '.join(PEER_PACKAGES)} in {venv}: {tail}")
        found = subprocess.run(probe, capture_output=True, text=True, check=True)
    versions: dict[str, Any] = json.loads(found.stdout)
    versions["venv"] = str(venv)
    return versions


def run_peer(venv: Path, spec: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    """One measurement in the peers' environment (a fresh process), its JSON result."""
    done = subprocess.run(
        [str(peer_python(venv)), str(HARNESS), json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
        env={**os.environ, **(env or {})},
    )
    if done.returncode != 0:
        raise RuntimeError(f"peer {spec['part']} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)


# -- bare sqlite3: the schedule floor ------------------------------------------------------


def _timed_inserts(
    conn: sqlite3.Connection, insert: Callable[[int], None], tasks: int, batch: int
) -> dict[str, Any]:
    """``insert`` ``tasks`` times, one transaction each, then ten times as many in
    transactions of ``batch``; the rates of both."""
    start = time.perf_counter()
    for i in range(tasks):
        conn.execute("BEGIN IMMEDIATE")
        insert(i)
        conn.execute("COMMIT")
    one = time.perf_counter() - start
    many = tasks * 10
    start = time.perf_counter()
    for lo in range(0, many, batch):
        conn.execute("BEGIN IMMEDIATE")
        for i in range(lo, min(many, lo + batch)):
            insert(tasks + i)
        conn.execute("COMMIT")
    together = time.perf_counter() - start
    return {
        "one_by_one": {"tasks": tasks, "tasks_per_s": round(tasks / one)},
        "batched": {"tasks": many, "batch": batch, "tasks_per_s": round(many / together)},
    }


def bare_schedule(workdir: Path, *, tasks: int, batch: int) -> dict[str, Any]:
    """Plain sqlite3 inserting a task row and its ``created`` event: one transaction each,
    then ``batch`` per transaction. The table is the bare drain loop's (``store_bench``)."""
    path = workdir / "bare-schedule.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("CREATE TABLE q (id INTEGER PRIMARY KEY, status TEXT NOT NULL, body TEXT)")
        conn.execute("CREATE INDEX q_pending ON q (id) WHERE status = 'pending'")
        conn.execute("CREATE TABLE ev (id INTEGER PRIMARY KEY, q_id INTEGER, kind TEXT, at REAL)")

        def insert(i: int) -> None:
            row = conn.execute(
                "INSERT INTO q (status, body) VALUES ('pending', ?) RETURNING id", (f"post {i}",)
            ).fetchone()
            conn.execute(
                "INSERT INTO ev (q_id, kind, at) VALUES (?, 'created', ?)", (row[0], time.time())
            )

        return _timed_inserts(conn, insert, tasks, batch)
    finally:
        conn.close()


def schema_floor_schedule(workdir: Path, *, tasks: int, batch: int) -> dict[str, Any]:
    """Plain sqlite3 writing what ``schedule`` writes into engagequeue's own tables.

    The file is created by ``SQLiteTaskStore`` (same schema, indexes and pragmas: WAL,
    ``synchronous=NORMAL``); then each transaction inserts the task row and its ``created``
    event with the store's statements, no engagequeue code running. What the layout alone
    costs: the floor of ``schedule`` one by one and of ``schedule_many``.
    """
    path = workdir / "floor-schedule.sqlite3"

    async def create() -> None:
        async with SQLiteTaskStore(path) as store:
            await store.add_session("s0")

    asyncio.run(create())
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = NORMAL")
        detail = '{"media_type": "text", "scheduled_at": "2026-01-01T00:00:00.000000Z"}'

        def insert(i: int) -> None:
            task_id = f"{i:013x}{os.urandom(8).hex()}"
            conn.execute(
                "INSERT INTO eq_tasks (id, session_id, group_id, media_type, content, "
                "media_url, mimetype, filename, scheduled_at, status, attempts, max_attempts, "
                "created_at, updated_at, recurrence_id) "
                "VALUES (?, 's0', ?, 'text', ?, NULL, NULL, NULL, ?, 'pending', 0, 3, ?, ?, NULL)",
                (task_id, f"g{i % 200}@g.us", f"post {i}", 1_767_225_600_000_000 + i, i, i),
            )
            conn.execute(
                "INSERT INTO eq_task_events (task_id, at, kind, detail) "
                "VALUES (?, ?, 'created', ?)",
                (task_id, i, detail),
            )

        return _timed_inserts(conn, insert, tasks, batch)
    finally:
        conn.close()


# -- PostgreSQL: our store in N processes --------------------------------------------------


async def _pg_fill(schema: str, tasks: int, groups: int) -> list[str]:
    async with PostgresTaskStore(DSN, schema=schema) as store:
        await store.drop_schema()
    async with PostgresTaskStore(DSN, schema=schema) as store:
        for s in range(2):
            await store.add_session(f"s{s}")
        due = datetime.now(UTC) - timedelta(hours=1)
        items = [
            (
                f"s{i % groups % 2}",
                f"g{i % groups}@g.us",
                Payload.text(f"post {i}"),
                due + timedelta(microseconds=i),
            )
            for i in range(tasks)
        ]
        ids: list[str] = []
        for lo in range(0, tasks, 5_000):
            ids += [t.id for t in await store.schedule_many(items[lo : lo + 5_000])]
    return ids


def _pg_worker(
    schema: str, claim_limit: int, worker: str, together: bool, ready: Any, go: Any, out: Any
) -> None:
    async def main() -> dict[str, Any]:
        completed: list[str] = []
        errors: list[str] = []
        claims = empty = 0
        async with PostgresTaskStore(DSN, schema=schema) as store:
            await store.next_due()  # open the pool before the start signal
            ready.release()
            await asyncio.get_running_loop().run_in_executor(None, go.wait)
            cpu = _cpu()
            start = time.monotonic()
            while True:
                tasks = await store.claim_due(limit=claim_limit, worker_id=worker)
                claims += 1
                if not tasks:
                    empty += 1
                    # Other workers may hold the heads of the remaining groups.
                    if await store.next_due() is None:
                        break
                    await asyncio.sleep(0.0005)
                    continue
                if together:  # as the Scheduler issues them: the store commits them together
                    outcomes = await asyncio.gather(
                        *(
                            store.complete(t.id, message_id=f"m-{t.id}", worker_id=worker)
                            for t in tasks
                        ),
                        return_exceptions=True,
                    )
                    for task, outcome in zip(tasks, outcomes, strict=True):
                        if isinstance(outcome, BaseException):
                            errors.append(f"{type(outcome).__name__}: {outcome}")
                        else:
                            completed.append(task.id)
                    continue
                for task in tasks:
                    try:
                        await store.complete(task.id, message_id=f"m-{task.id}", worker_id=worker)
                        completed.append(task.id)
                    except Exception as exc:  # noqa: BLE001 - counted and reported
                        errors.append(f"{type(exc).__name__}: {exc}")
            end = time.monotonic()
            cpu = _cpu() - cpu
        return {
            "completed": completed,
            "errors": errors,
            "claims": claims,
            "empty": empty,
            "start": start,
            "end": end,
            "cpu": cpu,
        }

    out.put(asyncio.run(main()))


async def _pg_audit_events(schema: str, ids: list[str]) -> dict[str, int]:
    """Every task's own events, through the public API: exactly one claim and one completion."""
    bad = 0
    statuses: Counter[str] = Counter()
    async with PostgresTaskStore(DSN, schema=schema, max_pool_size=10) as store:
        for lo in range(0, len(ids), 100):
            chunk = ids[lo : lo + 100]
            tasks = await asyncio.gather(*(store.get(i) for i in chunk))
            statuses.update(t.status.value for t in tasks)
            for events in await asyncio.gather(*(store.events(i) for i in chunk)):
                kinds = Counter(e.kind for e in events)
                if kinds["claimed"] != 1 or kinds["completed"] != 1:
                    bad += 1
    return {
        "not_completed": len(ids) - statuses["completed"],
        "tasks_without_exactly_one_claim_and_completion": bad,
    }


def run_pg_ours(
    schema: str,
    *,
    tasks: int,
    groups: int,
    processes: int,
    claim_limit: int,
    audit_events: bool,
    together: bool = True,
) -> dict[str, Any]:
    ids = asyncio.run(_pg_fill(schema, tasks, groups))
    try:
        ctx = mp.get_context("spawn")
        ready, go, out = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
        procs = [
            ctx.Process(
                target=_pg_worker, args=(schema, claim_limit, f"w{n}", together, ready, go, out)
            )
            for n in range(processes)
        ]
        for p in procs:
            p.start()
        for _ in procs:
            ready.acquire()
        go.set()
        results = [out.get() for _ in procs]
        for p in procs:
            p.join()
        audit = asyncio.run(_pg_audit_events(schema, ids)) if audit_events else {}
    finally:
        asyncio.run(_pg_drop(schema))
    counts = Counter(i for r in results for i in r["completed"])
    done = sum(counts.values())
    elapsed = max(r["end"] for r in results) - min(r["start"] for r in results)
    return {
        "processes": processes,
        "claim_limit": claim_limit,
        "completes": "issued together (asyncio.gather)" if together else "one by one, each awaited",
        "tasks": tasks,
        "groups": groups,
        "seconds": round(elapsed, 3),
        "tasks_per_s": round(done / elapsed) if elapsed > 0 else None,
        "cpu_us_per_task": round(1e6 * sum(r["cpu"] for r in results) / max(done, 1)),
        "completed_calls": done,
        "per_worker_completed": [len(r["completed"]) for r in results],
        "claims": sum(r["claims"] for r in results),
        "empty_claims": sum(r["empty"] for r in results),
        "errors": sum(len(r["errors"]) for r in results),
        "error_samples": [e for r in results for e in r["errors"]][:5],
        "lost": len(set(ids) - set(counts)),
        "duplicates": sum(1 for c in counts.values() if c > 1),
        **audit,
    }


async def _pg_drop(schema: str) -> None:
    async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# -- PostgreSQL: the bare psycopg loop -----------------------------------------------------


def _bare_pg_worker(schema: str, claim_limit: int, ready: Any, go: Any, out: Any) -> None:
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("SELECT 1")
        ready.release()
        go.wait()
        done: list[int] = []
        cpu = _cpu()
        start = time.monotonic()
        while True:
            rows = conn.execute(
                f"""WITH c AS (
                        UPDATE {schema}.q SET status = 'processing' WHERE id IN (
                            SELECT id FROM {schema}.q WHERE status = 'pending'
                            ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)
                        RETURNING id, body)
                    , e AS (INSERT INTO {schema}.ev (q_id, kind, at)
                            SELECT id, 'claimed', now() FROM c)
                    SELECT id, body FROM c""",
                (claim_limit,),
            ).fetchall()
            if not rows:
                break
            for row in rows:
                conn.execute(
                    f"""WITH c AS (UPDATE {schema}.q SET status = 'completed' WHERE id = %s
                                   RETURNING id)
                        INSERT INTO {schema}.ev (q_id, kind, at)
                        SELECT id, 'completed', now() FROM c""",
                    (row[0],),
                )
                done.append(row[0])
        end = time.monotonic()
        cpu = _cpu() - cpu
    out.put({"completed": done, "start": start, "end": end, "cpu": cpu})


def run_pg_bare(schema: str, *, tasks: int, processes: int, claim_limit: int) -> dict[str, Any]:
    """The floor of a PostgreSQL queue here: one table with a partial pending index and an
    events table; a claim of ``claim_limit`` rows with ``FOR UPDATE SKIP LOCKED`` (and its
    events) in one statement, then one statement per completion (and its event). No groups."""
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(
            f"CREATE TABLE {schema}.q (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "status text NOT NULL, body text)"
        )
        conn.execute(f"CREATE INDEX q_pending ON {schema}.q (id) WHERE status = 'pending'")
        conn.execute(
            f"CREATE TABLE {schema}.ev (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "q_id bigint NOT NULL, kind text NOT NULL, at timestamptz NOT NULL)"
        )
        conn.execute(f"CREATE INDEX ev_q ON {schema}.ev (q_id, seq)")
        conn.execute(
            f"INSERT INTO {schema}.q (status, body) "
            "SELECT 'pending', 'post ' || n FROM generate_series(1, %s) AS n",
            (tasks,),
        )
        conn.execute(f"ANALYZE {schema}.q")
    try:
        ctx = mp.get_context("spawn")
        ready, go, out = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
        procs = [
            ctx.Process(target=_bare_pg_worker, args=(schema, claim_limit, ready, go, out))
            for _ in range(processes)
        ]
        for p in procs:
            p.start()
        for _ in procs:
            ready.acquire()
        go.set()
        results = [out.get() for _ in procs]
        for p in procs:
            p.join()
    finally:
        asyncio.run(_pg_drop(schema))
    counts = Counter(i for r in results for i in r["completed"])
    done = sum(counts.values())
    elapsed = max(r["end"] for r in results) - min(r["start"] for r in results)
    return {
        "processes": processes,
        "claim_limit": claim_limit,
        "tasks": tasks,
        "seconds": round(elapsed, 3),
        "tasks_per_s": round(done / elapsed) if elapsed > 0 else None,
        "cpu_us_per_task": round(1e6 * sum(r["cpu"] for r in results) / max(done, 1)),
        "lost": tasks - len(counts),
        "duplicates": sum(1 for c in counts.values() if c > 1),
    }


def postgres_reachable() -> str | None:
    """None when the benchmark server answers, else why not."""
    try:
        psycopg.connect(DSN, connect_timeout=3).close()
    except Exception as exc:  # noqa: BLE001 - reported, the part is skipped
        return f"{type(exc).__name__}: {exc}".strip()
    return None


# -- rounds, medians, ratios ---------------------------------------------------------------


class Rounds:
    """Each figure's value in every round (a list), and the raw results kept for the audit."""

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {}
        self.raw: dict[str, list[Any]] = {}

    def add(self, name: str, value: float | None, raw: Any) -> None:
        if value is not None:
            self.values.setdefault(name, []).append(value)
        self.raw.setdefault(name, []).append(raw)

    def median(self, name: str) -> float | None:
        values = self.values.get(name)
        return statistics.median(values) if values else None


class Round:
    """One round: every figure once, ours next to the peer's, the pair's order swapped on
    odd rounds to cancel the machine's drift."""

    def __init__(
        self, rounds: Rounds, number: int, workdir: Path, p: dict[str, Any], venv: Path | None
    ) -> None:
        self.rounds, self.number, self.workdir, self.p, self.venv = rounds, number, workdir, p, venv

    def pair(self, ours: Callable[[], None], peer: Callable[[], None]) -> None:
        for step in (ours, peer) if self.number % 2 == 0 else (peer, ours):
            step()

    def peer(self, figure: str, spec: dict[str, Any], env: dict[str, str] | None = None) -> Any:
        """Run one peer measurement (none with ``--no-peers``) and record its rate."""
        if self.venv is None:
            return None
        result = run_peer(self.venv, spec, env)
        self.rounds.add(f"peer.{figure}", result["tasks_per_s"], result)
        return result

    def path(self, name: str) -> str:
        return str(self.workdir / name)

    # -- SQLite ----------------------------------------------------------------------------

    def sqlite_schedule(self) -> None:
        p, add = self.p, self.rounds.add

        def ours() -> None:
            result = asyncio.run(
                _schedule(
                    self.path("schedule.sqlite3"),
                    p["schedule_one_by_one"],
                    p["schedule_many"],
                    p["schedule_many_batch"],
                )
            )
            add("ours.sqlite_schedule_one_by_one", result["one_by_one"]["tasks_per_s"], result)
            add("ours.sqlite_schedule_many", result["schedule_many"]["tasks_per_s"], None)
            add(
                "ours.sqlite_schedule_100_callers",
                result["one_call_per_task_100_callers"]["tasks_per_s"],
                None,
            )

        def peer() -> None:
            put = {"part": "litequeue_put", "tasks": p["schedule_one_by_one"]}
            self.peer("sqlite_schedule_one_by_one", {**put, "path": self.path("lq.db")})
            batch = {"part": "litequeue_batch", "tasks": p["schedule_many"]}
            batch |= {"batch": p["schedule_many_batch"], "path": self.path("lq-batch.db")}
            self.peer("sqlite_schedule_many", batch)

        self.pair(ours, peer)
        bare = bare_schedule(
            self.workdir, tasks=p["schedule_one_by_one"], batch=p["schedule_many_batch"]
        )
        add("bare.sqlite_schedule_one_by_one", bare["one_by_one"]["tasks_per_s"], bare)
        add("bare.sqlite_schedule_many", bare["batched"]["tasks_per_s"], None)
        floor = schema_floor_schedule(
            self.workdir, tasks=p["schedule_one_by_one"], batch=p["schedule_many_batch"]
        )
        add("floor.sqlite_schedule_one_by_one", floor["one_by_one"]["tasks_per_s"], floor)
        add("floor.sqlite_schedule_many", floor["batched"]["tasks_per_s"], None)

    def sqlite_drain(self, durability: str) -> None:
        """Ours with completes awaited one by one vs huey's worker loop, then the bare loop."""
        p, name = self.p, f"sqlite_drain_sequential_{durability}"
        tasks = p["drain_tasks"] if durability == "normal" else p["drain_tasks_full"]
        fsync = "default" if durability == "normal" else "full"

        def ours() -> None:
            result = run_drain(
                self.workdir,
                tasks=tasks,
                groups=p["drain_groups"],
                processes=1,
                durability=durability,
                claim_limit=p["claim_limit"],
                mode="sequential",
            )
            self.rounds.add(f"ours.{name}", result["tasks_per_s"], result)

        def peer() -> None:
            spec = {"part": "huey_drain", "fsync": fsync, "tasks": tasks}
            self.peer(name, {**spec, "path": self.path(f"huey-{fsync}.db")})

        self.pair(ours, peer)
        synchronous = "NORMAL" if durability == "normal" else "FULL"
        ref = run_reference(
            self.workdir, tasks=p[f"reference_tasks_{durability}"], synchronous=synchronous
        )
        self.rounds.add(f"bare.{name}", ref["tasks_per_s"], ref)

    def sqlite_dispatch(self) -> None:
        """A running Scheduler (concurrency 8, the default, and 200) vs huey's worker loop."""
        p = self.p

        def ours() -> None:
            for concurrency in (8, 200):
                path = self.workdir / f"dispatch-{concurrency}.sqlite3"
                result = asyncio.run(
                    end_to_end(path, p["dispatch_tasks"], p["drain_groups"], concurrency)
                )
                suffix = "" if concurrency == 8 else "_concurrency_200"
                figure = f"ours.sqlite_dispatch_scheduler{suffix}"
                self.rounds.add(figure, result["tasks_per_s"], result)

        def peer() -> None:
            spec = {"part": "huey_drain", "fsync": "default", "tasks": p["dispatch_tasks"]}
            self.peer("sqlite_dispatch_scheduler", {**spec, "path": self.path("huey-d.db")})

        self.pair(ours, peer)

    def sqlite(self) -> None:
        self.sqlite_schedule()
        self.sqlite_drain("normal")
        self.sqlite_drain("full")
        self.sqlite_dispatch()

    # -- PostgreSQL ------------------------------------------------------------------------

    def postgres(self) -> None:
        p, add = self.p, self.rounds.add
        prefix = f"eqpeers_{os.getpid()}_r{self.number}"
        for processes in p["pg_processes"]:
            name = f"postgres_drain_{processes}p"

            def ours(processes: int = processes, name: str = name) -> None:
                # Completes issued together (the Scheduler's way), then awaited one by one.
                for together, figure in ((True, name), (False, f"{name}_one_by_one")):
                    result = run_pg_ours(
                        f"{prefix}_ours{processes}",
                        tasks=p["pg_tasks"],
                        groups=p["pg_groups"],
                        processes=processes,
                        claim_limit=p["claim_limit"],
                        audit_events=False,
                        together=together,
                    )
                    add(f"ours.{figure}", result["tasks_per_s"], result)
                    add(f"ours.{figure}_cpu_us", result["cpu_us_per_task"], None)

            def peer(processes: int = processes, name: str = name) -> None:
                schema = f"{prefix}_pgq{processes}"
                spec = {"part": "pgqueuer_drain", "dsn": DSN, "schema": schema}
                spec |= {"tasks": p["pg_tasks"], "processes": processes}
                spec |= {"batch_size": p["claim_limit"], "dequeue_timeout": 0.1}
                env = {"PGQUEUER_SCHEMA": schema, "PGQUEUER_CHANNEL": f"{schema}_ch"}
                result = self.peer(name, spec, env)
                if result is not None:
                    add(f"peer.{name}_cpu_us", result["cpu_us_per_task"], None)
                    # The same pgqueuer run is the yardstick of both of our figures.
                    add(f"peer.{name}_one_by_one", result["tasks_per_s"], None)

            self.pair(ours, peer)
            bare = run_pg_bare(
                f"{prefix}_bare{processes}",
                tasks=p["pg_tasks"],
                processes=processes,
                claim_limit=p["claim_limit"],
            )
            add(f"bare.{name}", bare["tasks_per_s"], bare)
            add(f"bare.{name}_cpu_us", bare["cpu_us_per_task"], None)


def summarize(rounds: Rounds) -> list[dict[str, Any]]:
    """One row per figure: ours, peer, bare (medians), the ratios, the target, met or not."""
    figures = sorted(
        {
            k.split(".", 1)[1]
            for k in rounds.values
            if not k.endswith("_cpu_us") and not k.startswith("floor.")
        }
    )
    table = []
    for figure in figures:
        ours, peer, bare = (rounds.median(f"{side}.{figure}") for side in ("ours", "peer", "bare"))
        row: dict[str, Any] = {
            "figure": figure,
            "unit": "tasks/s",
            "ours": ours,
            "ours_rounds": rounds.values.get(f"ours.{figure}"),
            "peer": peer,
            "peer_rounds": rounds.values.get(f"peer.{figure}"),
            "bare": bare,
            "ratio_to_peer": round(ours / peer, 3) if ours and peer else None,
            "ratio_to_bare": round(ours / bare, 3) if ours and bare else None,
            "peer_ratio_to_bare": round(peer / bare, 3) if peer and bare else None,
        }
        floor = rounds.median(f"floor.{figure}")
        if floor is not None:  # plain sqlite3 on engagequeue's own tables
            row["schema_floor"] = floor
            row["ratio_to_schema_floor"] = round(ours / floor, 3) if ours else None
            row["peer_ratio_to_schema_floor"] = round(peer / floor, 3) if peer else None
        if figure in TARGETS:
            minimum, against = TARGETS[figure]
            row["target"] = f">= {minimum}x {against}"
            row["min_ratio"] = minimum
            row["met"] = None if row["ratio_to_peer"] is None else row["ratio_to_peer"] >= minimum
        table.append(row)
    cpu = rounds.median("ours.postgres_drain_4p_cpu_us")
    if cpu is not None:
        table.append(
            {
                "figure": "postgres_drain_4p_cpu_us_per_task",
                "unit": "us of worker CPU per post (all threads)",
                "ours": cpu,
                "ours_rounds": rounds.values.get("ours.postgres_drain_4p_cpu_us"),
                "peer": rounds.median("peer.postgres_drain_4p_cpu_us"),
                "bare": rounds.median("bare.postgres_drain_4p_cpu_us"),
                "target": f"<= {PG_CPU_TARGET_US} us",
                "met": cpu <= PG_CPU_TARGET_US,
            }
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run (seconds)")
    parser.add_argument(
        "--no-peers",
        action="store_true",
        help="our side and the bare loops only (no peer venv needed)",
    )
    parser.add_argument("--parts", default="sqlite,postgres", help="sqlite, postgres")
    parser.add_argument("--rounds", type=int, default=None, help="default 2 (1 with --quick)")
    parser.add_argument("--peer-venv", type=Path, default=PEER_VENV)
    parser.add_argument("--pg-tasks", type=int, default=None)
    parser.add_argument("--dir", default=None, help="where to put the SQLite files")
    args = parser.parse_args(argv)
    parts = {x.strip() for x in args.parts.split(",") if x.strip()}
    if parts - {"sqlite", "postgres"}:
        parser.error(f"unknown parts: {sorted(parts - {'sqlite', 'postgres'})}")
    quick = args.quick
    p: dict[str, Any] = {
        "quick": quick,
        "rounds": args.rounds or (1 if quick else 2),
        "claim_limit": 50,
        "schedule_one_by_one": 300 if quick else 10_000,
        "schedule_many": 5_000 if quick else 100_000,
        "schedule_many_batch": 1_000 if quick else 10_000,
        "drain_tasks": 600 if quick else 20_000,
        "drain_tasks_full": 200 if quick else 5_000,
        "drain_groups": 20 if quick else 200,
        "dispatch_tasks": 400 if quick else 20_000,
        "reference_tasks_normal": 500 if quick else 20_000,
        "reference_tasks_full": 100 if quick else 2_000,
        "pg_tasks": args.pg_tasks or (600 if quick else 20_000),
        "pg_groups": 20 if quick else 200,
        "pg_processes": [4, 1],
        "pg_audit_processes": 8,
    }
    report: dict[str, Any] = {
        "benchmark": "engagequeue side by side with huey, litequeue, pgqueuer",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        },
        "parameters": p,
    }
    venv: Path | None = None
    if args.no_peers:
        report["peers"] = {"skipped": "--no-peers"}
    else:
        try:
            report["peers"] = ensure_peer_venv(args.peer_venv)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            print(f"peer venv unavailable: {exc}", file=sys.stderr)
            return PEER_VENV_UNAVAILABLE
        venv = args.peer_venv
    if "postgres" in parts:
        why = postgres_reachable()
        if why:
            report["postgres_skipped"] = f"{DSN} not reachable: {why}"
            parts.discard("postgres")
    rounds = Rounds()
    loads = []
    with tempfile.TemporaryDirectory(prefix="eq-peers-", dir=args.dir) as tmp:
        for n in range(p["rounds"]):
            work = Path(tmp) / f"round{n}"
            work.mkdir()
            this = Round(rounds, n, work, p, venv)
            if "sqlite" in parts:
                this.sqlite()
            if "postgres" in parts:
                this.postgres()
            loads.append(round(os.getloadavg()[0], 2))
    if "postgres" in parts:
        report["postgres_audit"] = run_pg_ours(
            f"eqpeers_{os.getpid()}_audit",
            tasks=p["pg_tasks"],
            groups=p["pg_groups"],
            processes=p["pg_audit_processes"],
            claim_limit=p["claim_limit"],
            audit_events=True,
        )
    report["machine"]["load_average_1m_after_each_round"] = loads
    report["machine"]["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    report["table"] = summarize(rounds)
    report["runs"] = rounds.raw
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
