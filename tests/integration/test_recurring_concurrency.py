"""Several stores claim the same recurrences at once: each occurrence is created and claimed once.

Workers (``recurring_worker.py``) each have a store and a clock of their own, moving from
``T0`` in steps of one to three minutes over minutely recurrences that start at ``T0``: a
worker whose clock is ahead claims occurrences that the others then find done, and passes
over the ones between (``skipped``); one worker also cancels the pending occurrences as a
moderator would, racing the claims. On SQLite every worker is an OS process of its own on
one file; on PostgreSQL several store objects share this process and one more process
joins them on the same schema. Afterwards the audit checks the guarantees, whatever order
the calls ran in:

- no worker claimed an occurrence another claimed, no occurrence time exists twice and
  each occurrence number was issued once;
- at most one occurrence was pending at any time (each left pending, by its ``claimed``
  or ``cancelled`` event, before the next was created), and an active recurrence ends with
  exactly its ``next_task_id`` pending;
- each claimed occurrence has exactly one ``claimed`` and one ``completed`` event, each
  cancelled one exactly one ``cancelled`` event;
- the occurrences and the ``skipped`` events together are exactly the rule's first
  occurrences, each once, and a ``count`` ends the series exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import islice, pairwise
from pathlib import Path
from typing import Any

import attrs
import pytest
from recurring_worker import T0, Clock, open_store, work

import engagequeue
from engagequeue import (
    Payload,
    RecurrenceStatus,
    SQLiteTaskStore,
    TaskEvent,
    TaskStatus,
    occurrences,
)
from engagequeue._times import parse_instant
from store_support import POSTGRES_DSN

SRC = str(Path(engagequeue.__file__).resolve().parents[1])
WORKER = Path(__file__).with_name("recurring_worker.py")
END = 120  # minutes of the workers' clocks


@attrs.frozen
class Spec:
    group: str
    rule: str
    timezone: str
    count: int | None = None


SPECS = (
    Spec("g1", "FREQ=MINUTELY", "Europe/Paris"),
    # Shares g1 (its occurrences queue behind the other's) and ends on its count mid-run.
    Spec("g1", "FREQ=MINUTELY;INTERVAL=3", "UTC", count=25),
    Spec("g2", "FREQ=MINUTELY;INTERVAL=2", "Asia/Kolkata"),
)
# (step in minutes, cancel every n-th round) of each worker.
WORKERS = ((1, 0), (1, 0), (2, 5), (3, 0))


async def add_recurrences(store: Any) -> dict[str, Spec]:
    """Add ``SPECS`` on a store whose clock reads ``T0``; return them by recurrence id."""
    await store.add_session("s")
    added = {}
    for n, spec in enumerate(SPECS):
        r = await store.add_recurrence(
            "s",
            spec.group,
            Payload.text(f"recurring post {n}"),
            spec.rule,
            timezone=spec.timezone,
            starts_at=T0,
            count=spec.count,
        )
        added[r.id] = spec
    return added


async def run_processes(
    db: str, schema: str, workers: Sequence[tuple[str, int, int]], recurrence_ids: Sequence[str]
) -> list[dict[str, list[str]]]:
    """Run one worker process per ``(name, step, cancel_every)``, started together."""
    env = {**os.environ, "PYTHONPATH": SRC}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKER),
            db,
            schema,
            name,
            str(step),
            str(END),
            str(cancel_every),
            *recurrence_ids,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        for name, step, cancel_every in workers
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.readline(), timeout=60) == b"ready\n"
    outputs = await asyncio.gather(
        *(asyncio.wait_for(p.communicate(b"go\n"), timeout=240) for p in procs)
    )
    assert [p.returncode for p in procs] == [0] * len(procs)
    return [json.loads(out) for out, _ in outputs]


def _skipped_times(events: Sequence[TaskEvent], spec: Spec) -> list[datetime]:
    """The occurrence times the ``skipped`` events record (one each, or a counted run)."""
    times: list[datetime] = []
    for event in events:
        if event.kind != "skipped":
            continue
        if "scheduled_at" in event.detail:
            times.append(parse_instant(event.detail["scheduled_at"], "scheduled_at"))
            continue
        assert event.detail["count"] is not None, "a run of skipped occurrences went uncounted"
        first = parse_instant(event.detail["from"], "from")
        run = list(
            islice(
                occurrences(spec.rule, timezone=spec.timezone, starts_at=first),
                event.detail["count"],
            )
        )
        assert run[-1] == parse_instant(event.detail["to"], "to")
        times += run
    return times


async def audit(store: Any, added: dict[str, Spec], reports: Sequence[dict[str, Any]]) -> int:
    """Check every guarantee of the module docstring; return how many occurrences were claimed."""
    claimed = [task_id for report in reports for task_id in report["claimed"]]
    cancelled = [task_id for report in reports for task_id in report["cancelled"]]
    assert len(claimed) == len(set(claimed)), "an occurrence was claimed by two workers"
    assert len(cancelled) == len(set(cancelled)), "an occurrence was cancelled twice"
    completed_seen: set[str] = set()
    cancelled_seen: set[str] = set()
    for recurrence_id, spec in added.items():
        recurrence = await store.get_recurrence(recurrence_id)
        page = await store.history("s", spec.group, recurrence_id=recurrence_id, limit=500)
        tasks = list(page.items)
        assert page.total == len(tasks) < 500
        trails = {t.id: await store.events(t.id) for t in tasks}
        times = [t.scheduled_at for t in tasks]
        assert len(set(times)) == len(times), "an occurrence time exists twice"
        numbers = sorted(trails[t.id][0].detail["occurrence"] for t in tasks)
        assert len(set(numbers)) == len(numbers), "an occurrence number was issued twice"

        for task in tasks:
            kinds = [e.kind for e in trails[task.id]]
            if task.status is TaskStatus.COMPLETED:
                assert kinds == ["created", "claimed", "completed"]
                completed_seen.add(task.id)
            elif task.status is TaskStatus.CANCELLED:
                assert kinds == ["created", "cancelled"]
                cancelled_seen.add(task.id)
            else:
                assert (task.status, kinds) == (TaskStatus.PENDING, ["created"])
        pending = [t.id for t in tasks if t.status is TaskStatus.PENDING]
        if recurrence.status is RecurrenceStatus.ACTIVE:
            assert pending == [recurrence.next_task_id]
        else:
            assert recurrence.status is RecurrenceStatus.ENDED
            assert (pending, recurrence.next_task_id) == ([], None)

        # One pending occurrence at a time: each left pending before the next was created
        # (event ids grow with every write), and they were created in time order.
        by_creation = sorted(tasks, key=lambda t: trails[t.id][0].id)
        assert by_creation == sorted(tasks, key=lambda t: t.scheduled_at)
        for before, after in pairwise(by_creation):
            assert len(trails[before.id]) > 1, "two occurrences were pending at once"
            assert trails[before.id][1].id < trails[after.id][0].id

        # The recurrence's trail: each occurrence scheduled once, after the one before it
        # left; the passed-over ones skipped; together, the rule's first occurrences.
        events = await store.recurrence_events(recurrence_id)
        scheduled = [e for e in events if e.kind == "scheduled"]
        assert [e.detail["task_id"] for e in scheduled] == [t.id for t in by_creation]
        left_by = [trails[t.id][1].kind for t in by_creation[:-1]]
        assert [e.detail.get("after") for e in scheduled] == [None, *left_by]
        skipped = _skipped_times(events, spec)
        used = sorted(times + skipped)
        expected = list(
            islice(
                occurrences(spec.rule, timezone=spec.timezone, starts_at=T0, count=spec.count),
                len(used),
            )
        )
        assert used == expected, "an occurrence was both skipped and sent, or neither"
        assert recurrence.issued == len(used)
        ended = [e for e in events if e.kind == "ended"]
        if spec.count is None:
            assert {e.kind for e in events} <= {"created", "scheduled", "skipped"}
            assert recurrence.status is RecurrenceStatus.ACTIVE
        elif recurrence.status is RecurrenceStatus.ENDED:
            assert len(used) == spec.count
            assert [(e.kind, e.detail["reason"]) for e in ended] == [("ended", "count")]
            assert events[-1].kind == "ended"
        else:
            assert ended == []
            assert len(used) <= spec.count
    assert completed_seen == set(claimed), "a claimed occurrence was not completed once"
    assert cancelled_seen == set(cancelled)
    assert claimed, "no worker claimed anything: the test tested nothing"
    return len(claimed)


@pytest.mark.slow  # four processes, a few seconds
async def test_processes_on_one_sqlite_file_claim_each_occurrence_once(db_path: Path) -> None:
    async with SQLiteTaskStore(db_path, clock=Clock()) as store:
        added = await add_recurrences(store)
    workers = [(f"w{n}", step, cancel) for n, (step, cancel) in enumerate(WORKERS)]
    reports = await run_processes(str(db_path), "", workers, list(added))
    async with SQLiteTaskStore(db_path, clock=Clock(T0 + timedelta(minutes=END))) as store:
        await audit(store, added, reports)
    # The file itself: no recurrence has two tasks at one time, nor two pending ones, and
    # each recurrence's next_task_id is its pending task.
    conn = sqlite3.connect(db_path)
    try:
        twice = conn.execute(
            "SELECT recurrence_id, scheduled_at FROM eq_tasks WHERE recurrence_id IS NOT NULL "
            "GROUP BY recurrence_id, scheduled_at HAVING count(*) > 1"
        ).fetchall()
        heads = conn.execute(
            "SELECT r.id, r.next_task_id, "
            "(SELECT group_concat(t.id) FROM eq_tasks t "
            " WHERE t.recurrence_id = r.id AND t.status = 'pending') "
            "FROM eq_recurrences r"
        ).fetchall()
    finally:
        conn.close()
    assert twice == []
    assert all(next_task_id == pending for _, next_task_id, pending in heads)


@pytest.mark.postgres
@pytest.mark.slow  # several stores and a process, a few seconds
async def test_stores_and_a_process_on_one_schema_claim_each_occurrence_once() -> None:
    schema = f"eq_rconc_{uuid.uuid4().hex[:12]}"
    owner = open_store(POSTGRES_DSN, schema, Clock())
    await owner.open()
    try:
        added = await add_recurrences(owner)
        ids = list(added)
        *local, remote = [(f"w{n}", step, cancel) for n, (step, cancel) in enumerate(WORKERS)]
        clocks = [Clock() for _ in local]
        stores = [open_store(POSTGRES_DSN, schema, clock) for clock in clocks]
        for store in stores:
            await store.open()
        try:
            process = asyncio.create_task(run_processes(POSTGRES_DSN, schema, [remote], ids))
            reports = await asyncio.gather(
                *(
                    work(
                        store,
                        clock,
                        name,
                        step=step,
                        end=END,
                        cancel_every=cancel,
                        recurrence_ids=ids,
                    )
                    for store, clock, (name, step, cancel) in zip(
                        stores, clocks, local, strict=True
                    )
                )
            )
            reports += await process
        finally:
            for store in stores:
                await store.close()
        await audit(owner, added, reports)
    finally:
        await owner.drop_schema()
        await owner.close()
