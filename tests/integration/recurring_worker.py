"""A worker of the recurring concurrency test: claims, completes and cancels occurrences.

Usage: python recurring_worker.py DB SCHEMA WORKER STEP END CANCEL_EVERY RECURRENCE_ID...

DB is a SQLite path or a ``postgresql://`` DSN (then SCHEMA is the store's schema). The
worker's store has a clock of its own that starts at ``T0`` and moves ``STEP`` minutes
after each round, up to ``END`` minutes past ``T0``: each round claims what is due and
completes it; every ``CANCEL_EVERY``-th round (0: never) also cancels the pending
occurrence of each recurrence, as a moderator would. The worker starts when a line
arrives on stdin, so that all workers start together, and prints what it did as JSON.
The test runs the same ``work`` in its own process too, on store objects of its own.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from engagequeue import SQLiteTaskStore, TaskConflict

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A clock the worker moves itself: the store's notion of now."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def open_store(db: str, schema: str, clock: Clock) -> Any:
    """An unopened store of either engine on ``db``, with ``clock``."""
    if db.startswith("postgresql://"):
        from engagequeue import PostgresTaskStore

        return PostgresTaskStore(db, schema=schema, clock=clock, max_pool_size=2)
    return SQLiteTaskStore(db, clock=clock)


async def work(
    store: Any,
    clock: Clock,
    worker: str,
    *,
    step: int,
    end: int,
    cancel_every: int,
    recurrence_ids: Sequence[str],
) -> dict[str, list[str]]:
    """Run the rounds; return the ids this worker claimed (and completed) and cancelled."""
    claimed: list[str] = []
    cancelled: list[str] = []
    for round_number, minute in enumerate(range(0, end + 1, step), start=1):
        clock.now = T0 + timedelta(minutes=minute)
        for task in await store.claim_due(limit=4, worker_id=worker):
            await store.complete(task.id, message_id=worker, worker_id=worker)
            claimed.append(task.id)
        if cancel_every and round_number % cancel_every == 0:
            for recurrence_id in recurrence_ids:
                head = (await store.get_recurrence(recurrence_id)).next_task_id
                if head is None:
                    continue  # ended
                try:
                    await store.cancel(head)
                except TaskConflict:
                    continue  # a racing claim or cancel took it first
                cancelled.append(head)
        await asyncio.sleep(0)  # let this process's other stores take their turn
    return {"claimed": claimed, "cancelled": cancelled}


async def main(argv: Sequence[str]) -> None:
    db, schema, worker, step, end, cancel_every, *recurrence_ids = argv
    clock = Clock()
    async with open_store(db, schema, clock) as store:
        print("ready", flush=True)  # noqa: T201 - the test waits for this line
        await asyncio.to_thread(sys.stdin.readline)
        done = await work(
            store,
            clock,
            worker,
            step=int(step),
            end=int(end),
            cancel_every=int(cancel_every),
            recurrence_ids=recurrence_ids,
        )
    print(json.dumps(done), flush=True)  # noqa: T201 - the report the test reads


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
