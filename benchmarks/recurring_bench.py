"""What recurring posts cost (issue 12), on SQLite and PostgreSQL, printed as one JSON object.

Run from the repository root::

    .venv/bin/python benchmarks/recurring_bench.py            # both engines, a few minutes
    .venv/bin/python benchmarks/recurring_bench.py --quick    # smoke run, seconds
    .venv/bin/python benchmarks/recurring_bench.py --engines sqlite --parts claim

Parts:

- ``claim``: the same number of due tasks, one per group, either one-off tasks or the due
  occurrences of as many recurrences; a worker loops ``claim_due(limit=1)`` (or
  ``limit=50``) until all are claimed. Claiming an occurrence also creates the following
  one in the same transaction; claiming a one-off task does not. Per call latency
  (p50/p95/max) and claimed tasks per second, in rounds that alternate the two kinds.
  Afterwards each run is audited: every due task claimed exactly once, and for
  recurrences exactly one new pending occurrence each, a day later.
- ``add``: ``add_recurrence`` one call after the other, then the same number of calls from
  many callers at once (each awaiting its own calls one after the other), with ``schedule``
  one after the other in the same run as the yardstick. Audited: every recurrence stored,
  with exactly one pending occurrence.

PostgreSQL runs in a schema of its own (dropped afterwards) at ``--dsn`` (default
``ENGAGEQUEUE_TEST_DSN`` or postgresql://postgres@127.0.0.1:5432/test); when it cannot be
reached its figures are replaced by a ``skipped`` note. Only the public API is timed. See
benchmarks/README.md for the method and the measured figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from dispatch import percentile  # noqa: E402 - beside this script
from store_bench import _cpu, machine_info  # noqa: E402

from engagequeue import Payload, SQLiteTaskStore, TaskStatus, daily_rule  # noqa: E402

DEFAULT_DSN = os.environ.get("ENGAGEQUEUE_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)  # the first occurrence of every recurrence
KINDS = ("one_off", "occurrence")
SESSION = "s1"


def _fixed_clock() -> datetime:
    return T0


class Engine:
    """Opens fresh stores of one engine: a new SQLite file, or a new PostgreSQL schema."""

    def __init__(self, name: str, workdir: Path, dsn: str) -> None:
        self.name = name
        self.workdir = workdir
        self.dsn = dsn
        self.opened = 0

    @asynccontextmanager
    async def store(self, **options: Any) -> AsyncIterator[Any]:
        self.opened += 1
        if self.name == "sqlite":
            path = self.workdir / f"recurring-{self.opened}.sqlite3"
            async with SQLiteTaskStore(path, **options) as store:
                await store.add_session(SESSION)
                yield store
            return
        from engagequeue import PostgresTaskStore  # noqa: PLC0415 - psycopg is optional

        schema = f"eq_rbench_{uuid.uuid4().hex[:12]}"
        store = PostgresTaskStore(self.dsn, schema=schema, **options)
        await store.open()
        try:
            await store.add_session(SESSION)
            yield store
        finally:
            await store.drop_schema()
            await store.close()


def postgres_problem(dsn: str) -> str | None:
    """Why PostgreSQL cannot be benchmarked here, or None when it can."""
    try:
        import psycopg  # noqa: PLC0415 - optional: without it PostgreSQL is skipped
    except ImportError:
        return "psycopg is not installed: pip install -e '.[postgres]'"
    try:
        with psycopg.connect(dsn, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"no PostgreSQL at {dsn} ({type(exc).__name__}: {str(exc).strip()[:200]})"


def postgres_versions(dsn: str) -> dict[str, str]:
    import psycopg  # noqa: PLC0415 - optional

    with psycopg.connect(dsn, connect_timeout=3) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return {"postgresql": row[0] if row else "?", "psycopg": psycopg.__version__}


def _latency(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(values, 50) * 1000, 3),
        "p95_ms": round(percentile(values, 95) * 1000, 3),
        "max_ms": round(max(values) * 1000, 3),
    }


# -- claim: one-off tasks against occurrences ----------------------------------------------


async def _fill(store: Any, kind: str, tasks: int) -> list[str]:
    """``tasks`` due tasks at T0, one per group; for occurrences, return the recurrence ids."""
    if kind == "one_off":
        items = [(SESSION, f"g{i}", Payload.text(f"post {i}"), T0) for i in range(tasks)]
        for lo in range(0, tasks, 5_000):
            await store.schedule_many(items[lo : lo + 5_000])
        return []
    ids = []
    for i in range(tasks):
        recurrence = await store.add_recurrence(
            SESSION, f"g{i}", Payload.text(f"tip {i}"), daily_rule(9), timezone="UTC", starts_at=T0
        )
        ids.append(recurrence.id)
    return ids


async def _audit_claims(
    store: Any, tasks: int, claimed: list[str], recurrence_ids: list[str]
) -> dict[str, int]:
    """Through the public API: each due task claimed once, each recurrence one pending next."""
    processing = 0
    for i in range(tasks):
        page = await store.history(SESSION, f"g{i}", status="processing")
        processing += page.total
    audit = {
        "claimed": len(claimed),
        "duplicates": len(claimed) - len(set(claimed)),
        "lost": tasks - processing,
        "following_created": 0,
        "recurrences_without_exactly_one_pending_next": 0,
    }
    for rid in recurrence_ids:
        recurrence = await store.get_recurrence(rid)
        page = await store.history(
            recurrence.session_id, recurrence.group_id, recurrence_id=rid, status="pending"
        )
        following = [t for t in page.items if t.scheduled_at == T0 + timedelta(days=1)]
        audit["following_created"] += len(following)
        if page.total != 1 or len(following) != 1 or following[0].id != recurrence.next_task_id:
            audit["recurrences_without_exactly_one_pending_next"] += 1
    return audit


async def _claim_run(engine: Engine, kind: str, tasks: int, limit: int) -> dict[str, Any]:
    async with engine.store(clock=_fixed_clock) as store:
        recurrence_ids = await _fill(store, kind, tasks)
        await store.next_due()  # warm the connection(s) before timing
        claimed: list[str] = []
        latencies: list[float] = []
        cpu = _cpu()
        start = time.perf_counter()
        while True:
            before = time.perf_counter()
            batch = await store.claim_due(now=T0, limit=limit, worker_id="bench")
            latencies.append(time.perf_counter() - before)
            if not batch:
                break
            claimed.extend(t.id for t in batch)
        seconds = time.perf_counter() - start
        cpu = _cpu() - cpu
        latencies.pop()  # the last, empty claim that ends the loop
        audit = await _audit_claims(store, tasks, claimed, recurrence_ids)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "latencies": latencies,
        **audit,
    }


def _summarise_claims(kind: str, limit: int, tasks: int, runs: list[dict[str, Any]]) -> dict:
    latencies = [v for run in runs for v in run["latencies"]]
    rates = [round(tasks / run["seconds"]) for run in runs]
    claimed = sum(run["claimed"] for run in runs)
    return {
        "kind": kind,
        "limit": limit,
        "tasks": tasks,
        "rounds": len(runs),
        "calls": len(latencies),
        "per_call": _latency(latencies),
        "tasks_per_s": sorted(rates)[len(rates) // 2],
        "tasks_per_s_each_round": rates,
        "client_cpu_us_per_task": round(1e6 * sum(r["cpu_seconds"] for r in runs) / claimed),
        "claimed": claimed,
        "duplicates": sum(run["duplicates"] for run in runs),
        "lost": sum(run["lost"] for run in runs),
        "following_created": sum(run["following_created"] for run in runs),
        "recurrences_without_exactly_one_pending_next": sum(
            run["recurrences_without_exactly_one_pending_next"] for run in runs
        ),
    }


async def run_claims(engine: Engine, tasks: int, limits: list[int], rounds: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for limit in limits:
        runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
        for n in range(rounds):
            # Alternate which kind goes first, so a drift of the machine favours neither.
            for kind in KINDS if n % 2 == 0 else tuple(reversed(KINDS)):
                runs[kind].append(await _claim_run(engine, kind, tasks, limit))
        one_off, occurrence = (_summarise_claims(k, limit, tasks, runs[k]) for k in KINDS)
        figures[f"limit_{limit}"] = {
            "one_off": one_off,
            "occurrence": occurrence,
            "occurrence_vs_one_off": {
                "tasks_per_s_ratio": round(occurrence["tasks_per_s"] / one_off["tasks_per_s"], 3),
                "p50_ratio": round(
                    occurrence["per_call"]["p50_ms"] / one_off["per_call"]["p50_ms"], 3
                ),
                "extra_us_per_task": round(
                    1e6 / occurrence["tasks_per_s"] - 1e6 / one_off["tasks_per_s"]
                ),
            },
        }
    return figures


# -- add_recurrence per second -------------------------------------------------------------


async def _timed_calls(
    call: Callable[[int], Any], calls: int, callers: int
) -> tuple[float, list[Any]]:
    """Make ``calls`` calls from ``callers`` callers, each awaiting its own in turn."""

    async def caller(first: int) -> list[Any]:
        out = []
        for i in range(first, calls, callers):
            try:
                out.append(await call(i))
            except Exception as exc:  # noqa: BLE001 - counted and reported
                out.append(exc)
        return out

    start = time.perf_counter()
    results = await asyncio.gather(*(caller(c) for c in range(callers)))
    return time.perf_counter() - start, [r for chunk in results for r in chunk]


async def _audit_adds(store: Any, results: list[Any], groups: int) -> dict[str, Any]:
    errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    added = [r for r in results if not isinstance(r, BaseException)]
    stored = pending = 0
    for g in range(groups):
        stored += len(await store.recurrences(SESSION, f"g{g}"))
        pending += (await store.history(SESSION, f"g{g}", status=TaskStatus.PENDING)).total
    return {
        "errors": len(errors),
        "error_samples": errors[:5],
        "duplicates": len(added) - len({r.id for r in added}),
        "stored": stored,
        "pending_occurrences": pending,
        "recurrences_without_exactly_one_pending_occurrence": sum(
            1 for r in added if r.next_task_id is None
        )
        + abs(stored - pending),
    }


async def _add_run(engine: Engine, what: str, calls: int, callers: int) -> dict[str, Any]:
    groups = 100
    async with engine.store() as store:
        await store.next_due()
        if what == "schedule":
            later = datetime.now(UTC) + timedelta(days=1)

            def call(i: int) -> Any:
                return store.schedule(SESSION, f"g{i % groups}", Payload.text(f"post {i}"), later)

        else:

            def call(i: int) -> Any:
                return store.add_recurrence(
                    SESSION,
                    f"g{i % groups}",
                    Payload.text(f"tip {i}"),
                    daily_rule(9),
                    timezone="Europe/Paris",
                )

        seconds, results = await _timed_calls(call, calls, callers)
        if what == "schedule":
            audit = {"errors": sum(isinstance(r, BaseException) for r in results)}
        else:
            audit = await _audit_adds(store, results, groups)
    return {
        "calls": calls,
        "callers": callers,
        "seconds": round(seconds, 3),
        "per_s": round(calls / seconds),
        **audit,
    }


async def run_adds(engine: Engine, calls: int, callers: int) -> dict[str, Any]:
    one = await _add_run(engine, "add_recurrence", calls, 1)
    many = await _add_run(engine, "add_recurrence", calls, callers)
    schedule = await _add_run(engine, "schedule", calls, 1)
    return {
        "add_recurrence_one_by_one": one,
        f"add_recurrence_{callers}_callers": many,
        "schedule_one_by_one": schedule,
        "add_recurrence_vs_schedule_one_by_one": round(one["per_s"] / schedule["per_s"], 3),
    }


# -- main ----------------------------------------------------------------------------------


async def run_engine(engine: Engine, parts: set[str], params: dict[str, Any]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    if "claim" in parts:
        figures["claim"] = await run_claims(
            engine, params["claim_tasks"], params["claim_limits"], params["rounds"]
        )
    if "add" in parts:
        figures["add"] = await run_adds(engine, params["add_calls"], params["add_callers"])
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--parts", default="claim,add")
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--claim-tasks", type=int, help="due tasks per claim run")
    parser.add_argument("--rounds", type=int, help="claim runs of each kind")
    parser.add_argument("--add-calls", type=int, help="add_recurrence calls per add run")
    args = parser.parse_args(argv)

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if set(engines) - {"sqlite", "postgres"}:
        parser.error(f"unknown engines: {sorted(set(engines) - {'sqlite', 'postgres'})}")
    if parts - {"claim", "add"}:
        parser.error(f"unknown parts: {sorted(parts - {'claim', 'add'})}")
    quick = args.quick
    params: dict[str, Any] = {
        "quick": quick,
        "claim_tasks": args.claim_tasks or (100 if quick else 3_000),
        "claim_limits": [1, 50],
        "rounds": args.rounds or (1 if quick else 3),
        "add_calls": args.add_calls or (60 if quick else 2_000),
        "add_callers": 20 if quick else 100,
    }
    load_start = round(os.getloadavg()[0], 2)
    versions: dict[str, Any] = {"engagequeue": metadata.version("engagequeue")}
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="eq-rbench-") as tmp:
        for name in engines:
            if name == "postgres":
                problem = postgres_problem(args.dsn)
                if problem is not None:
                    figures[name] = {"skipped": problem}
                    continue
                versions.update(postgres_versions(args.dsn))
            engine = Engine(name, Path(tmp), args.dsn)
            figures[name] = asyncio.run(run_engine(engine, parts, params))
    report = {
        "benchmark": "engagequeue recurring posts",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**machine_info(load_start), **versions},
        "parameters": params,
        "figures": figures,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
