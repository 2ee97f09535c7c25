"""An edit through HTTP racing a claim by another store: exactly one of them wins, every time."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import TYPE_CHECKING

import httpx
import pytest

from engagequeue import Payload, SQLiteTaskStore, Task, TaskStatus
from engagequeue.http import create_app

if TYPE_CHECKING:
    from pathlib import Path

ROUNDS = 60
PAST = "2026-01-01T08:00:00Z"
LATER = "2999-01-01T08:00:00Z"


def delays(rng: random.Random, round_: int) -> tuple[float, float]:
    """(edit delay, claim delay): a head start for either side, or a tight race."""
    kind = round_ % 3
    if kind == 0:
        return 0.005, 0.0  # the claim starts first
    if kind == 1:
        return 0.0, 0.02  # the edit starts well ahead
    return rng.uniform(0, 0.004), rng.uniform(0, 0.004)


async def jittered(delay: float, coro):
    await asyncio.sleep(delay)
    return await coro


@pytest.mark.parametrize("change", ["content", "reschedule"])
async def test_an_edit_racing_a_claim_gives_200_before_the_claim_or_409_after_it(
    db_path: Path, change: str
):
    rng = random.Random(f"race-{change}")
    outcomes: Counter[int] = Counter()
    # The API and the "scheduler" use two store objects (two connections, two threads) on
    # one file, as two processes would: SQLite's write lock is all that orders them.
    async with SQLiteTaskStore(db_path) as api_store, SQLiteTaskStore(db_path) as worker:
        await api_store.add_session("s1")
        app = create_app(api_store)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            for round_ in range(ROUNDS):
                task = await api_store.schedule(
                    "s1", f"{round_}@g.us", Payload.text("original"), PAST
                )
                body = (
                    {"content": f"edited {round_}"}
                    if change == "content"
                    else {"scheduledAt": LATER}
                )
                edit_delay, claim_delay = delays(rng, round_)
                url = f"/api/moderation/engagement/{task.id}"
                edit, claimed = await asyncio.gather(
                    jittered(edit_delay, http.put(url, json=body)),
                    jittered(claim_delay, worker.claim_due(limit=10)),
                )
                outcomes[edit.status_code] += 1
                kinds = [e.kind for e in await api_store.events(task.id)]
                final = await api_store.get(task.id)

                if edit.status_code == 200:
                    assert edit.json()["status"] == "pending"
                    if change == "content":
                        # The claim came after the edit and took the edited post.
                        assert [t.id for t in claimed] == [task.id]
                        assert claimed[0].payload.content == f"edited {round_}"
                        assert kinds == ["created", "edited", "claimed"]
                        assert final.status is TaskStatus.PROCESSING
                    else:
                        # The post moved to the future before the claim looked: nothing due.
                        assert claimed == []
                        assert kinds == ["created", "edited"]
                        assert final.status is TaskStatus.PENDING
                        await api_store.cancel(task.id)
                else:
                    assert edit.status_code == 409, edit.text
                    assert edit.json() == edit.json() | {
                        "error": "conflict",
                        "status": "processing",
                    }
                    assert [t.id for t in claimed] == [task.id]
                    assert claimed[0].payload.content == "original"
                    assert claimed[0].scheduled_at == final.scheduled_at
                    assert kinds == ["created", "claimed"]
                    assert final.status is TaskStatus.PROCESSING
                    assert final.payload == task.payload
                if final.status is TaskStatus.PROCESSING:
                    await worker.complete(task.id, message_id=f"wamid.{round_}")

    assert set(outcomes) <= {200, 409}
    assert sum(outcomes.values()) == ROUNDS
    assert outcomes[200] > 0
    assert outcomes[409] > 0


class ClaimsRightAfterRead(SQLiteTaskStore):
    """The real SQLite store; another worker claims the task just after each ``get``.

    This pins the worst interleaving: the handler has read a pending task, and the claim
    lands before its update.
    """

    worker: SQLiteTaskStore | None = None

    async def get(self, task_id: str) -> Task:
        task = await super().get(task_id)
        if self.worker is not None:
            await self.worker.claim_due()
        return task


async def test_a_claim_between_the_handlers_read_and_its_update_still_gives_409(db_path: Path):
    async with ClaimsRightAfterRead(db_path) as api_store, SQLiteTaskStore(db_path) as worker:
        await api_store.add_session("s1")
        task = await api_store.schedule("s1", "g@g.us", Payload.text("original"), PAST)
        api_store.worker = worker
        app = create_app(api_store)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as http:
            edit = await http.put(f"/api/moderation/engagement/{task.id}", json={"content": "late"})

        assert edit.status_code == 409
        assert edit.json()["status"] == "processing"
        api_store.worker = None
        final = await api_store.get(task.id)
        assert final.status is TaskStatus.PROCESSING
        assert final.payload == task.payload
        assert [e.kind for e in await api_store.events(task.id)] == ["created", "claimed"]
