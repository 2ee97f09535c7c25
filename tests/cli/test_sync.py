"""``engagequeue.sync``: the blocking facade, on a real SQLite file and the real PostgreSQL."""

from __future__ import annotations

import asyncio
import inspect
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from clitools import Target

from engagequeue import (
    EngageQueueError,
    Page,
    Payload,
    SessionNotFound,
    Task,
    TaskConflict,
    TaskNotFound,
    TaskStatus,
    TaskStore,
    ValidationError,
)
from engagequeue.sync import SyncTaskStore, connect, protocol_coroutines

LATER = datetime(2030, 1, 1, 9, tzinfo=UTC)


def open_facade(target: Target) -> SyncTaskStore:
    return connect(target.db, schema=target.schema)


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("engagequeue-sync-")]


def test_it_has_every_coroutine_method_of_the_protocol_with_its_signature(target: Target) -> None:
    names = protocol_coroutines(TaskStore)
    assert {"schedule", "history", "claim_due", "events", "add_session", "edit"} <= set(names)
    assert "open" not in names
    with open_facade(target) as store:
        for name in names:
            method = getattr(store, name)
            assert callable(method)
            declared = inspect.signature(getattr(TaskStore, name))
            assert inspect.signature(getattr(SyncTaskStore, name)) == declared
            assert method.__doc__ == getattr(TaskStore, name).__doc__


def test_results_and_errors_are_the_async_stores_with_their_types(target: Target) -> None:
    with open_facade(target) as store:
        store.add_session("bot")
        task = store.schedule("bot", "g@g.us", Payload.text("hello"), LATER)
        assert isinstance(task, Task)
        assert store.get(task.id) == task
        assert store.call(TaskStore.get, task.id) == task
        page = store.history("bot", "g@g.us")
        assert isinstance(page, Page)
        assert [t.id for t in page.items] == [task.id]
        assert [e.kind for e in store.events(task.id)] == ["created"]

        with pytest.raises(TaskNotFound) as missing:
            store.get("nope")
        assert isinstance(missing.value, LookupError)
        assert missing.value.task_id == "nope"
        with pytest.raises(SessionNotFound):
            store.schedule("ghost", "g@g.us", Payload.text("x"), LATER)
        with pytest.raises(ValidationError) as bad:
            store.schedule("bot", "g@g.us", Payload.text("x"), "2030-01-01T09:00:00")
        assert bad.value.field == "scheduled_at"
        with pytest.raises(ValidationError) as bad_limit:
            store.history("bot", "g@g.us", limit=0)
        assert bad_limit.value.field == "limit"
        store.cancel(task.id)
        with pytest.raises(TaskConflict) as conflict:
            store.edit(task.id, payload=Payload.text("late"))
        assert conflict.value.status is TaskStatus.CANCELLED
        assert store.get(task.id).payload.content == "hello"  # nothing was written


def test_many_threads_at_once_share_one_loop_thread(target: Target) -> None:
    threads, per_thread = 16, 20
    with open_facade(target) as store:
        store.add_session("bot")
        assert len(loop_threads()) == 1
        barrier = threading.Barrier(threads)

        def work(n: int) -> list[str]:
            barrier.wait()  # all threads call at once
            made = []
            for i in range(per_thread):
                group = f"g{(n + i) % 4}@g.us"
                task = store.schedule("bot", group, Payload.text(f"{n}-{i}"), LATER)
                assert store.get(task.id).id == task.id
                if i % 5 == 0:
                    edited = store.edit(task.id, scheduled_at=LATER + timedelta(minutes=n))
                    assert edited.scheduled_at == LATER + timedelta(minutes=n)
                made.append(task.id)
            with pytest.raises(TaskNotFound):
                store.get(f"missing-{n}")
            return made

        with ThreadPoolExecutor(threads) as pool:
            ids = [i for made in pool.map(work, range(threads)) for i in made]
        assert len(set(ids)) == threads * per_thread
        total = sum(store.history("bot", f"g{g}@g.us").total for g in range(4))
        assert total == threads * per_thread
        assert len(loop_threads()) == 1  # never a loop per call or per thread
    assert loop_threads() == []


def test_close_closes_the_store_and_ends_the_thread(target: Target) -> None:
    store = open_facade(target)
    store.add_session("bot")
    store.close()
    store.close()  # idempotent
    assert store.closed
    assert loop_threads() == []
    with pytest.raises(EngageQueueError, match="closed"):
        store.get("x")
    with pytest.raises(EngageQueueError, match="closed"):
        store.call(TaskStore.get, "x")


def test_a_call_from_the_facades_own_loop_is_refused_instead_of_deadlocking(
    target: Target,
) -> None:
    with open_facade(target) as store:
        store.add_session("bot")

        async def inside() -> BaseException | None:
            try:
                store.get("x")
            except EngageQueueError as exc:
                return exc
            return None

        refused = asyncio.run_coroutine_threadsafe(inside(), store._loop).result(10)
        assert isinstance(refused, EngageQueueError)
        assert "own event loop" in str(refused)


def test_a_facade_over_a_store_object_opens_it_and_closes_it(target: Target) -> None:
    from engagequeue._connect import store_from_url

    inner = store_from_url(target.db, schema=target.schema)
    with SyncTaskStore(inner) as store:
        store.add_session("bot")
        assert store.store is inner
        assert repr(store).startswith("<SyncTaskStore open ")
