"""What several test modules share besides fixtures: the test database, store snapshots.

A module of its own, not conftest.py: ``from store_support import`` finds whichever conftest.py
pytest imported last, once several folders have one.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

from engagequeue import TaskStore

POSTGRES_DSN = os.environ.get("ENGAGEQUEUE_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/test")

StoreFactory = Callable[..., Awaitable[Any]]


async def populate_every_status(store: TaskStore) -> dict[str, Any]:
    """Fill an open store with posts in every status (and their events); return what it holds.

    For migration tests: the returned snapshot (tasks without their ``version``, and each
    task's events) must survive a schema upgrade unchanged.
    """
    from datetime import UTC, datetime, timedelta

    from engagequeue import Payload

    t0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
    await store.add_session("s1")
    await store.add_session("s2")
    ids = [
        (await store.schedule(s, f"g{i}", Payload.text(f"post {i}"), t0, max_attempts=2)).id
        for i, s in enumerate(["s1", "s1", "s1", "s1", "s1", "s2", "s2"])
    ]
    await store.schedule("s2", "g9", Payload.image("https://example.com/a.png", "cap"), t0)
    claimed = {t.id for t in await store.claim_due(now=t0, limit=10, worker_id="w")}
    assert set(ids) <= claimed
    await store.complete(ids[0], message_id="wamid.1")
    await store.fail(ids[1], "boom")  # failed
    await store.fail(ids[2], "later", retry_at=t0 + timedelta(hours=1))  # pending again
    await store.release(ids[3], "stopping")  # pending, released
    await store.cancel(ids[3])  # cancelled
    await store.edit(ids[2], payload=Payload.text("edited"))
    # ids[4], ids[5]: processing; ids[6] and the image: processing too, then one disconnect.
    await store.session_disconnected("s2", keep=[ids[5]])
    tasks = {
        task_id: await store.get(task_id)
        for page in [
            await store.history(s, g, limit=500)
            for s in ("s1", "s2")
            for g in [f"g{i}" for i in range(10)]
        ]
        for task_id in [t.id for t in page.items]
    }
    statuses = {t.status.value for t in tasks.values()}
    assert statuses == {"pending", "processing", "completed", "failed", "cancelled"}
    return {
        "tasks": tasks,
        "events": {i: await store.events(i) for i in tasks},
    }
