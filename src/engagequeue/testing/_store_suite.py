"""The TaskStore conformance suite: every behaviour of the protocol, for any store.

``TaskStoreSuite`` is a base class of pytest tests. Subclass it as ``Test...`` in a test
module and give it a ``store_factory`` fixture; pytest then runs every test below against
your store. engagequeue's own SQLite and PostgreSQL stores run this very suite
(``tests/integration/test_store.py`` in the repository). docs/extending.md shows a complete
example.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import ClassVar

import pendulum
import pytest
import pytest_asyncio

from engagequeue import (
    Payload,
    SessionNotFound,
    Task,
    TaskConflict,
    TaskNotFound,
    TaskStatus,
    TaskStore,
    ValidationError,
    VersionConflict,
)

__all__ = ["StoreFactory", "TaskStoreSuite"]

StoreFactory = Callable[..., Awaitable[TaskStore]]
"""``await factory(**options)`` opens one more store on the test's database and returns it.

Every store a factory opened during a test shares one fresh, empty database (a file, a
schema...) and is closed by the fixture after the test. The suite calls it without options;
``options`` are yours (engagequeue's own tests pass constructor options through it).
"""

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
US = timedelta(microseconds=1)


async def _setup(store: TaskStore, *sessions: str) -> None:
    for session in sessions or ("s1",):
        await store.add_session(session)


async def _kinds(store: TaskStore, task_id: str) -> list[str]:
    return [e.kind for e in await store.events(task_id)]


async def _history_fixture(store: TaskStore) -> list[Task]:
    await _setup(store, "s1", "s2")
    tasks = [
        await store.schedule("s1", "g", Payload.text(f"post {i}"), T0 + timedelta(hours=i))
        for i in range(10)
    ]
    await store.schedule("s1", "other", Payload.text("other group"), T0)
    await store.schedule("s2", "g", Payload.text("other session"), T0)
    await store.claim_due(now=T0 + timedelta(hours=1))
    await store.complete(tasks[0].id)
    await store.cancel(tasks[5].id)
    return tasks


class TaskStoreSuite:
    """The conformance suite: subclass it as ``Test...`` and provide ``store_factory``.

    Every test takes the ``store`` fixture: one store opened by ``await store_factory()``
    on a fresh, empty database. ``store_factory`` is yours to define, in the subclass or a
    ``conftest.py``, returning a :data:`StoreFactory`; parametrise it to run the suite on
    several stores. The tests need pytest-asyncio (they carry its ``asyncio`` mark, so
    its default "strict" mode runs them too).
    """

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    @pytest_asyncio.fixture
    async def store(self, store_factory: StoreFactory) -> TaskStore:
        """An open, empty store from ``store_factory``."""
        return await store_factory()

    # -- scheduling -------------------------------------------------------------------------

    async def test_schedule_returns_a_pending_task_with_utc_times(self, store: TaskStore) -> None:
        await _setup(store)
        paris = pendulum.datetime(2026, 6, 1, 14, 0, tz="Europe/Paris")
        task = await store.schedule("s1", "g1@g.us", Payload.text("hello"), paris)
        assert task.status is TaskStatus.PENDING
        assert task.attempts == 0
        assert task.max_attempts == 3
        assert task.last_error is None
        assert task.scheduled_at == T0
        for value in (task.scheduled_at, task.created_at, task.updated_at):
            assert value.utcoffset() == timedelta(0)
        assert await store.get(task.id) == task

    async def test_schedule_accepts_iso_strings_with_offset_or_z(self, store: TaskStore) -> None:
        await _setup(store)
        a = await store.schedule("s1", "g", Payload.text("a"), "2026-06-01T12:00:00Z")
        b = await store.schedule("s1", "g", Payload.text("b"), "2026-06-01T09:00:00-03:00")
        assert a.scheduled_at == b.scheduled_at == T0

    @pytest.mark.parametrize(
        "when",
        [datetime(2026, 6, 1, 12, 0), "2026-06-01T12:00:00", "2026-06-01", "tomorrow", 1234, None],  # noqa: DTZ001
        ids=["naive", "offset-less", "bare-date", "words", "int", "none"],
    )
    async def test_schedule_refuses_times_without_an_offset_and_writes_nothing(
        self, store: TaskStore, when: object
    ) -> None:
        await _setup(store)
        with pytest.raises(ValidationError) as info:
            await store.schedule("s1", "g", Payload.text("x"), when)  # type: ignore[arg-type]
        assert info.value.field == "scheduled_at"
        assert (await store.history("s1", "g")).total == 0

    async def test_schedule_to_an_unknown_session_raises_and_writes_nothing(
        self, store: TaskStore
    ) -> None:
        await _setup(store)
        with pytest.raises(SessionNotFound, match="nope"):
            await store.schedule("nope", "g", Payload.text("x"), T0)
        assert (await store.history("s1", "g")).total == 0

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"payload": "just text"}, "payload"),
            ({"group_id": ""}, "group_id"),
            ({"group_id": "   "}, "group_id"),
            ({"session_id": 7}, "session_id"),
            ({"max_attempts": 0}, "max_attempts"),
            ({"max_attempts": True}, "max_attempts"),
        ],
    )
    async def test_schedule_validates_every_argument(
        self, store: TaskStore, kwargs: dict[str, object], field: str
    ) -> None:
        await _setup(store)
        kwargs = dict(kwargs)  # the parametrize dict is shared between backends
        args: dict[str, object] = {
            "session_id": "s1",
            "group_id": "g",
            "payload": Payload.text("x"),
            "scheduled_at": T0,
        }
        max_attempts = kwargs.pop("max_attempts", 3)
        args.update(kwargs)
        with pytest.raises(ValidationError) as info:
            await store.schedule(**args, max_attempts=max_attempts)  # type: ignore[arg-type]
        assert info.value.field == field
        assert (await store.history("s1", "g")).total == 0

    async def test_schedule_many_writes_all_in_one_go(self, store: TaskStore) -> None:
        await _setup(store, "s1", "s2")
        items = [
            (
                "s1" if i % 2 else "s2",
                f"g{i % 3}",
                Payload.text(f"post {i}"),
                T0 + timedelta(minutes=i),
            )
            for i in range(30)
        ]
        tasks = await store.schedule_many(items, max_attempts=5)
        assert len(tasks) == 30
        assert {t.max_attempts for t in tasks} == {5}
        assert len({t.id for t in tasks}) == 30
        for task, (session, group, payload, when) in zip(tasks, items, strict=True):
            assert (task.session_id, task.group_id, task.payload, task.scheduled_at) == (
                session,
                group,
                payload,
                when,
            )
            assert await store.get(task.id) == task

    async def test_schedule_many_with_one_bad_item_writes_nothing(self, store: TaskStore) -> None:
        await _setup(store)
        items: list[tuple[object, ...]] = [
            ("s1", "g", Payload.text(f"post {i}"), T0 + timedelta(minutes=i)) for i in range(10)
        ]
        items[7] = ("s1", "g", Payload.text("naive"), datetime(2026, 1, 1))  # noqa: DTZ001
        with pytest.raises(ValidationError) as info:
            await store.schedule_many(items)  # type: ignore[arg-type]
        assert "items[7]" in str(info.value)
        assert info.value.field == "items[7].scheduled_at"
        assert (await store.history("s1", "g")).total == 0

    async def test_schedule_many_with_an_unknown_session_writes_nothing(
        self, store: TaskStore
    ) -> None:
        await _setup(store)
        items = [
            ("s1", "g", Payload.text("ok"), T0),
            ("ghost", "g", Payload.text("no such session"), T0),
        ]
        with pytest.raises(SessionNotFound):
            await store.schedule_many(items)
        assert (await store.history("s1", "g")).total == 0

    async def test_schedule_records_detail_in_the_created_event(self, store: TaskStore) -> None:
        await _setup(store)
        task = await store.schedule(
            "s1", "g", Payload.text("x"), T0, detail={"ai": True, "repaired": False}
        )
        (created,) = await store.events(task.id)
        assert created.kind == "created"
        assert created.detail["ai"] is True
        assert created.detail["repaired"] is False
        assert created.detail["media_type"] == "text"

    async def test_add_session_is_idempotent_and_keeps_a_disconnected_session_disconnected(
        self,
        store: TaskStore,
    ) -> None:
        await store.add_session("s1")
        await store.add_session("s1")
        await store.schedule("s1", "g", Payload.text("x"), T0)
        await store.session_disconnected("s1")
        await store.add_session("s1")
        assert await store.claim_due(now=T0) == []

    # -- claiming ---------------------------------------------------------------------------

    async def test_a_task_due_exactly_now_is_claimed_and_one_a_microsecond_later_is_not(
        self,
        store: TaskStore,
    ) -> None:
        await _setup(store)
        now_task = await store.schedule("s1", "g1", Payload.text("now"), T0)
        later = await store.schedule("s1", "g2", Payload.text("later"), T0 + US)
        claimed = await store.claim_due(now=T0, limit=10)
        assert [t.id for t in claimed] == [now_task.id]
        assert claimed[0].status is TaskStatus.PROCESSING
        assert (await store.get(later.id)).status is TaskStatus.PENDING
        assert [t.id for t in await store.claim_due(now=T0 + US, limit=10)] == [later.id]

    async def test_claims_take_the_oldest_first_up_to_the_limit(self, store: TaskStore) -> None:
        await _setup(store)
        tasks = [
            await store.schedule("s1", f"g{i}", Payload.text(str(i)), T0 - timedelta(minutes=i))
            for i in range(6)
        ]
        claimed = await store.claim_due(now=T0, limit=4)
        assert [t.id for t in claimed] == [t.id for t in reversed(tasks)][:4]
        rest = await store.claim_due(now=T0, limit=10)
        assert [t.id for t in rest] == [tasks[1].id, tasks[0].id]

    async def test_one_task_per_group_in_flight_and_group_order_is_kept(
        self, store: TaskStore
    ) -> None:
        await _setup(store)
        first = await store.schedule("s1", "g", Payload.text("1"), T0 - timedelta(minutes=2))
        second = await store.schedule("s1", "g", Payload.text("2"), T0 - timedelta(minutes=1))
        other = await store.schedule("s1", "h", Payload.text("h"), T0)
        claimed = await store.claim_due(now=T0, limit=10)
        assert [t.id for t in claimed] == [first.id, other.id]
        assert await store.claim_due(now=T0, limit=10) == []
        await store.complete(first.id)
        assert [t.id for t in await store.claim_due(now=T0, limit=10)] == [second.id]

    async def test_same_group_name_in_two_sessions_is_two_groups(self, store: TaskStore) -> None:
        await _setup(store, "s1", "s2")
        a = await store.schedule("s1", "g", Payload.text("a"), T0)
        b = await store.schedule("s2", "g", Payload.text("b"), T0)
        assert {t.id for t in await store.claim_due(now=T0, limit=10)} == {a.id, b.id}

    async def test_claim_records_worker_and_lease(self, store: TaskStore) -> None:
        await _setup(store)
        task = await store.schedule("s1", "g", Payload.text("x"), T0)
        (claimed,) = await store.claim_due(now=T0, worker_id="w-1", lease=timedelta(seconds=90))
        assert claimed.worker_id == "w-1"
        assert claimed.lease_expires_at == T0 + timedelta(seconds=90)
        assert claimed.attempts == 0
        events = await store.events(task.id)
        assert [e.kind for e in events] == ["created", "claimed"]
        assert events[1].detail["worker_id"] == "w-1"

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"limit": 0}, "limit"),
            ({"limit": -1}, "limit"),
            ({"limit": "5"}, "limit"),
            ({"lease": timedelta(0)}, "lease"),
            ({"lease": 30}, "lease"),
            ({"now": datetime(2026, 1, 1)}, "now"),  # noqa: DTZ001
        ],
    )
    async def test_claim_due_validates_its_options(
        self, store: TaskStore, kwargs: dict[str, object], field: str
    ) -> None:
        await _setup(store)
        task = await store.schedule("s1", "g", Payload.text("x"), T0)
        with pytest.raises(ValidationError) as info:
            await store.claim_due(**kwargs)  # type: ignore[arg-type]
        assert info.value.field == field
        assert (await store.get(task.id)).status is TaskStatus.PENDING

    # -- sessions ---------------------------------------------------------------------------

    async def test_disconnect_releases_in_flight_tasks_and_stops_claims_until_reconnect(
        self,
        store: TaskStore,
    ) -> None:
        await _setup(store, "s1", "s2")
        a = await store.schedule("s1", "g1", Payload.text("a"), T0)
        b = await store.schedule("s1", "g2", Payload.text("b"), T0)
        c = await store.schedule("s2", "g1", Payload.text("c"), T0)
        await store.claim_due(now=T0, limit=2)
        assert await store.session_disconnected("s1") == 2
        for task_id in (a.id, b.id):
            task = await store.get(task_id)
            assert task.status is TaskStatus.PENDING
            assert task.attempts == 0
            assert (await _kinds(store, task_id))[-1] == "released"
        assert [t.id for t in await store.claim_due(now=T0, limit=10)] == [c.id]
        await store.session_connected("s1")
        assert {t.id for t in await store.claim_due(now=T0, limit=10)} == {a.id, b.id}

    async def test_session_operations_on_unknown_sessions_raise(self, store: TaskStore) -> None:
        with pytest.raises(SessionNotFound):
            await store.session_disconnected("ghost")
        with pytest.raises(SessionNotFound):
            await store.session_connected("ghost")
        with pytest.raises(SessionNotFound):
            await store.delete_session("ghost")
        with pytest.raises(SessionNotFound):
            await store.history("ghost", "g")

    async def test_deleting_a_session_deletes_its_tasks_and_events(self, store: TaskStore) -> None:
        await _setup(store, "s1", "s2")
        gone = await store.schedule("s1", "g", Payload.text("a"), T0)
        kept = await store.schedule("s2", "g", Payload.text("b"), T0)
        await store.claim_due(now=T0, limit=10)
        await store.delete_session("s1")
        with pytest.raises(TaskNotFound):
            await store.get(gone.id)
        with pytest.raises(TaskNotFound):
            await store.events(gone.id)
        assert (await store.get(kept.id)).status is TaskStatus.PROCESSING
        assert await _kinds(store, kept.id) == ["created", "claimed"]
        with pytest.raises(SessionNotFound):
            await store.schedule("s1", "g", Payload.text("c"), T0)

    # -- editing and cancelling -------------------------------------------------------------

    async def test_edit_changes_a_pending_task_and_records_it(self, store: TaskStore) -> None:
        await _setup(store)
        task = await store.schedule("s1", "g", Payload.text("draft"), T0)
        new_payload = Payload.image("https://cdn.example.com/a.jpg", caption="final")
        edited = await store.edit(
            task.id, payload=new_payload, scheduled_at=T0 + timedelta(hours=1)
        )
        assert edited.payload == new_payload
        assert edited.scheduled_at == T0 + timedelta(hours=1)
        assert edited.status is TaskStatus.PENDING
        assert edited.updated_at >= task.updated_at
        assert await store.get(task.id) == edited
        events = await store.events(task.id)
        assert [e.kind for e in events] == ["created", "edited"]
        assert events[1].detail["previous_scheduled_at"].startswith("2026-06-01T12:00:00")

    async def test_edit_of_only_the_time_keeps_the_payload(self, store: TaskStore) -> None:
        await _setup(store)
        task = await store.schedule("s1", "g", Payload.text("keep me"), T0)
        edited = await store.edit(task.id, scheduled_at="2026-06-02T00:00:00+02:00")
        assert edited.payload == task.payload
        assert edited.scheduled_at == datetime(2026, 6, 1, 22, 0, tzinfo=UTC)

    @pytest.mark.parametrize("status", ["processing", "completed", "failed", "cancelled"])
    async def test_edit_and_cancel_refuse_a_task_that_is_not_pending(
        self, store: TaskStore, status: str
    ) -> None:
        await _setup(store)
        task = await store.schedule("s1", "g", Payload.text("x"), T0, max_attempts=1)
        if status == "cancelled":
            await store.cancel(task.id)
        else:
            await store.claim_due(now=T0)
            if status == "completed":
                await store.complete(task.id)
            elif status == "failed":
                await store.fail(task.id, "boom")
        before = await store.get(task.id)
        before_events = await _kinds(store, task.id)
        with pytest.raises(TaskConflict) as info:
            await store.edit(task.id, payload=Payload.text("too late"))
        assert info.value.status == TaskStatus(status)
        assert status in str(info.value)
        with pytest.raises(TaskConflict) as cancel_info:
            await store.cancel(task.id)
        assert cancel_info.value.status == TaskStatus(status)
        assert await store.get(task.id) == before
        assert await _kinds(store, task.id) == before_events

    async def test_edit_validates_and_writes_nothing_on_bad_input(self, store: TaskStore) -> None:
        await _setup(store)
        task = await store.schedule("s1", "g", Payload.text("x"), T0)
        with pytest.raises(ValidationError):
            await store.edit(task.id)
        with pytest.raises(ValidationError) as info:
            await store.edit(task.id, scheduled_at="2026-06-01 12:00")
        assert info.value.field == "scheduled_at"
        with pytest.raises(ValidationError):
            await store.edit(task.id, payload={"media_type": "text"})  # type: ignore[arg-type]
        assert await store.get(task.id) == task
        assert await _kinds(store, task.id) == ["created"]

    async def test_operations_on_unknown_tasks_raise_task_not_found(self, store: TaskStore) -> None:
        await _setup(store)
        for call in (
            store.get("missing"),
            store.edit("missing", payload=Payload.text("x")),
            store.cancel("missing"),
            store.complete("missing"),
            store.fail("missing", "err"),
            store.events("missing"),
        ):
            with pytest.raises(TaskNotFound, match="missing"):
                await call

    async def test_cancel_removes_a_task_from_the_queue(self, store: TaskStore) -> None:
        await _setup(store)
        task = await store.schedule("s1", "g", Payload.text("x"), T0)
        cancelled = await store.cancel(task.id)
        assert cancelled.status is TaskStatus.CANCELLED
        assert await store.claim_due(now=T0 + timedelta(days=1), limit=10) == []
        assert await _kinds(store, task.id) == ["created", "cancelled"]

    # -- finishing --------------------------------------------------------------------------

    async def test_complete_counts_the_attempt_and_keeps_the_message_id(
        self, store: TaskStore
    ) -> None:
        await _setup(store)
        task = await store.schedule("s1", "g", Payload.text("x"), T0)
        await store.claim_due(now=T0)
        done = await store.complete(task.id, message_id="wamid.1")
        assert done.status is TaskStatus.COMPLETED
        assert done.attempts == 1
        assert done.message_id == "wamid.1"
        assert done.lease_expires_at is None
        events = await store.events(task.id)
        assert [e.kind for e in events] == ["created", "claimed", "completed"]
        assert events[-1].detail["message_id"] == "wamid.1"
        with pytest.raises(TaskConflict) as info:
            await store.complete(task.id)
        assert info.value.status is TaskStatus.COMPLETED

    async def test_complete_and_fail_need_a_processing_task(self, store: TaskStore) -> None:
        await _setup(store)
        task = await store.schedule("s1", "g", Payload.text("x"), T0)
        with pytest.raises(TaskConflict) as info:
            await store.complete(task.id)
        assert info.value.status is TaskStatus.PENDING
        with pytest.raises(TaskConflict):
            await store.fail(task.id, "err")
        assert await store.get(task.id) == task

    async def test_fail_with_retry_at_returns_to_pending_until_attempts_run_out(
        self,
        store: TaskStore,
    ) -> None:
        await _setup(store)
        task = await store.schedule("s1", "g", Payload.text("x"), T0, max_attempts=3)
        now = T0
        for attempt in (1, 2):
            await store.claim_due(now=now)
            retry_at = now + timedelta(seconds=30)
            retried = await store.fail(task.id, f"timeout {attempt}", retry_at=retry_at)
            assert retried.status is TaskStatus.PENDING
            assert retried.attempts == attempt
            assert retried.scheduled_at == retry_at
            assert retried.last_error == f"timeout {attempt}"
            assert await store.claim_due(now=retry_at - US) == []
            now = retry_at
        await store.claim_due(now=now)
        failed = await store.fail(task.id, "timeout 3", retry_at=now + timedelta(seconds=30))
        assert failed.status is TaskStatus.FAILED
        assert failed.attempts == 3
        assert await _kinds(store, task.id) == [
            "created",
            "claimed",
            "retried",
            "claimed",
            "retried",
            "claimed",
            "failed",
        ]

    async def test_fail_without_retry_at_fails_at_once(self, store: TaskStore) -> None:
        await _setup(store)
        task = await store.schedule("s1", "g", Payload.text("x"), T0, max_attempts=5)
        await store.claim_due(now=T0)
        failed = await store.fail(task.id, "401 bad key")
        assert failed.status is TaskStatus.FAILED
        assert failed.attempts == 1
        assert failed.last_error == "401 bad key"
        with pytest.raises(ValidationError):
            await store.fail(task.id, "")

    async def test_release_returns_a_task_to_pending_without_an_attempt(
        self, store: TaskStore
    ) -> None:
        await _setup(store)
        task = await store.schedule("s1", "g", Payload.text("x"), T0)
        await store.claim_due(now=T0)
        released = await store.release(task.id, "scheduler stopping")
        assert released.status is TaskStatus.PENDING
        assert released.attempts == 0
        assert released.scheduled_at == T0
        events = await store.events(task.id)
        assert events[-1].kind == "released"
        assert events[-1].detail["reason"] == "scheduler stopping"

    # -- leases -----------------------------------------------------------------------------

    async def test_recover_expired_returns_tasks_whose_lease_ended(self, store: TaskStore) -> None:
        await _setup(store)
        short = await store.schedule("s1", "g1", Payload.text("a"), T0)
        long = await store.schedule("s1", "g2", Payload.text("b"), T0)
        await store.claim_due(now=T0, limit=1, lease=timedelta(seconds=10))
        await store.claim_due(now=T0, limit=1, lease=timedelta(minutes=10))
        assert await store.recover_expired(now=T0 + timedelta(seconds=10) - US) == 0
        assert await store.recover_expired(now=T0 + timedelta(seconds=10)) == 1
        recovered = await store.get(short.id)
        assert recovered.status is TaskStatus.PENDING
        assert recovered.attempts == 1
        assert recovered.last_error is not None
        assert "expired" in recovered.last_error
        assert (await store.get(long.id)).status is TaskStatus.PROCESSING
        events = await store.events(short.id)
        assert events[-1].kind == "expired"
        assert events[-1].detail["to"] == "pending"

    async def test_an_expired_lease_on_the_last_attempt_fails_the_task(
        self, store: TaskStore
    ) -> None:
        await _setup(store)
        task = await store.schedule("s1", "g", Payload.text("x"), T0, max_attempts=1)
        await store.claim_due(now=T0, lease=timedelta(seconds=1))
        assert await store.recover_expired(now=T0 + timedelta(seconds=1)) == 1
        assert (await store.get(task.id)).status is TaskStatus.FAILED

    # -- history ----------------------------------------------------------------------------

    async def test_history_is_per_group_ordered_and_paginated(self, store: TaskStore) -> None:
        tasks = await _history_fixture(store)
        page = await store.history("s1", "g", limit=4, offset=0)
        assert page.total == 10
        assert (page.limit, page.offset) == (4, 0)
        assert [t.id for t in page.items] == [t.id for t in tasks[:4]]
        assert page.has_more
        last = await store.history("s1", "g", limit=4, offset=8)
        assert [t.id for t in last.items] == [t.id for t in tasks[8:]]
        assert not last.has_more
        empty = await store.history("s1", "g", offset=50)
        assert (empty.items, empty.total) == ((), 10)

    async def test_history_range_includes_start_and_excludes_end(self, store: TaskStore) -> None:
        tasks = await _history_fixture(store)
        page = await store.history(
            "s1", "g", start=T0 + timedelta(hours=2), end=T0 + timedelta(hours=5)
        )
        assert [t.id for t in page.items] == [t.id for t in tasks[2:5]]
        page = await store.history("s1", "g", start="2026-06-01T19:00:00+02:00")
        assert [t.id for t in page.items] == [t.id for t in tasks[5:]]

    async def test_history_filters_by_one_or_several_statuses(self, store: TaskStore) -> None:
        tasks = await _history_fixture(store)
        completed = await store.history("s1", "g", status="completed")
        assert [t.id for t in completed.items] == [tasks[0].id]
        several = await store.history("s1", "g", status=[TaskStatus.COMPLETED, "cancelled"])
        assert [t.id for t in several.items] == [tasks[0].id, tasks[5].id]
        pending = await store.history("s1", "g", status=TaskStatus.PENDING)
        assert pending.total == 8

    async def test_history_agrees_with_a_plain_filter_for_every_status_combination(
        self,
        store: TaskStore,
    ) -> None:
        """Every status subset, window and page agrees with filtering all tasks by hand.

        A store may read each status from a different index; this pins that the pieces add up.
        """
        await _setup(store)
        rng = random.Random(7)  # noqa: S311 - a reproducible mix, not a secret
        scheduled = [
            await store.schedule(
                "s1", group, Payload.text(f"{group} {i}"), T0 + timedelta(minutes=i // 2)
            )
            for group in ("g", "h")
            for i in range(30)
        ]
        for task in scheduled:
            if rng.random() < 0.15:
                await store.cancel(task.id)
        later = T0 + timedelta(days=1)
        for _ in range(18):
            for task in await store.claim_due(now=later, limit=2):
                if rng.random() < 0.25:
                    await store.fail(task.id, "boom")
                else:
                    await store.complete(task.id)
        await store.claim_due(now=later, limit=2)  # one task of each group stays in flight
        truth = [await store.get(t.id) for t in scheduled if t.group_id == "g"]
        assert {t.status for t in truth} == set(TaskStatus)

        windows = [
            (None, None),
            (T0 + timedelta(minutes=3), T0 + timedelta(minutes=11)),
            (T0 + timedelta(minutes=7), None),
        ]
        subsets: list[tuple[TaskStatus, ...] | None] = [None]
        subsets += [c for n in range(1, 6) for c in itertools.combinations(TaskStatus, n)]
        for statuses, (start, end), (limit, offset) in itertools.product(
            subsets, windows, [(500, 0), (4, 3), (5, 25)]
        ):
            expected = sorted(
                (
                    t
                    for t in truth
                    if (statuses is None or t.status in statuses)
                    and (start is None or t.scheduled_at >= start)
                    and (end is None or t.scheduled_at < end)
                ),
                key=lambda t: (t.scheduled_at, t.id),
            )
            page = await store.history(
                "s1", "g", start=start, end=end, status=statuses, limit=limit, offset=offset
            )
            case = (statuses, start, end, limit, offset)
            assert page.total == len(expected), case
            assert [t.id for t in page.items] == [
                t.id for t in expected[offset : offset + limit]
            ], case
            assert {t.status for t in page.items} <= set(statuses or TaskStatus), case

    async def test_ties_in_scheduled_at_are_ordered_by_id(self, store: TaskStore) -> None:
        await _setup(store)
        tasks = [await store.schedule("s1", "g", Payload.text(str(i)), T0) for i in range(5)]
        page = await store.history("s1", "g")
        assert [t.id for t in page.items] == sorted(t.id for t in tasks)

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"limit": 0}, "limit"),
            ({"limit": 501}, "limit"),
            ({"offset": -1}, "offset"),
            ({"status": "sent"}, "status"),
            ({"status": []}, "status"),
            ({"start": "2026-06-01T00:00:00"}, "start"),
            ({"end": datetime(2026, 6, 1)}, "end"),  # noqa: DTZ001
            ({"start": T0, "end": T0 - US}, "end"),
        ],
    )
    async def test_history_rejects_bad_filters(
        self, store: TaskStore, kwargs: dict[str, object], field: str
    ) -> None:
        await _setup(store)
        with pytest.raises(ValidationError) as info:
            await store.history("s1", "g", **kwargs)  # type: ignore[arg-type]
        assert info.value.field == field

    async def test_history_accepts_the_limit_bounds(self, store: TaskStore) -> None:
        await _setup(store)
        assert (await store.history("s1", "g", limit=1)).limit == 1
        assert (await store.history("s1", "g", limit=500)).limit == 500

    # -- events and wake-ups ----------------------------------------------------------------

    async def test_events_follow_a_task_through_its_life_with_utc_times(
        self, store: TaskStore
    ) -> None:
        await _setup(store)
        task = await store.schedule("s1", "g", Payload.text("x"), T0)
        await store.edit(task.id, payload=Payload.text("y"))
        await store.claim_due(now=T0)
        await store.fail(task.id, "flaky", retry_at=T0 + timedelta(seconds=5))
        await store.claim_due(now=T0 + timedelta(seconds=5))
        await store.complete(task.id, message_id="m")
        events = await store.events(task.id)
        assert [e.kind for e in events] == [
            "created",
            "edited",
            "claimed",
            "retried",
            "claimed",
            "completed",
        ]
        assert all(e.task_id == task.id for e in events)
        assert all(e.at.utcoffset() == timedelta(0) for e in events)
        assert [e.at for e in events] == sorted(e.at for e in events)

    async def test_schedule_edit_and_reconnect_wake_subscribers(self, store: TaskStore) -> None:
        await _setup(store)
        calls: list[str] = []

        def wake() -> None:
            calls.append("wake")

        store.add_wakeup(wake)
        task = await store.schedule("s1", "g", Payload.text("x"), T0)
        assert len(calls) == 1
        await store.edit(task.id, scheduled_at=T0 + US)
        assert len(calls) == 2
        await store.schedule_many([("s1", "g", Payload.text("y"), T0)])
        assert len(calls) == 3
        await store.session_disconnected("s1")
        await store.session_connected("s1")
        assert len(calls) == 4
        await store.claim_due(now=T0 + US)
        assert len(calls) == 4
        store.remove_wakeup(wake)
        store.remove_wakeup(wake)
        await store.schedule("s1", "g", Payload.text("z"), T0)
        assert len(calls) == 4

    async def test_next_due_ignores_disconnected_sessions(self, store: TaskStore) -> None:
        await _setup(store, "s1", "s2")
        assert await store.next_due() is None
        await store.schedule("s1", "g", Payload.text("x"), T0)
        await store.schedule("s2", "g", Payload.text("y"), T0 + timedelta(hours=1))
        assert await store.next_due() == T0
        await store.session_disconnected("s1")
        assert await store.next_due() == T0 + timedelta(hours=1)

    async def test_every_returned_datetime_is_utc_even_for_far_offsets(
        self, store: TaskStore
    ) -> None:
        await _setup(store)
        kiritimati = timezone(timedelta(hours=14))
        task = await store.schedule(
            "s1", "g", Payload.text("x"), datetime(2026, 6, 2, 2, 0, tzinfo=kiritimati)
        )
        assert task.scheduled_at == T0
        assert task.scheduled_at.tzinfo is UTC
        assert (await store.get(task.id)).scheduled_at.tzinfo is UTC

    async def test_disconnect_keeps_the_tasks_whose_send_is_under_way(
        self, store: TaskStore
    ) -> None:
        await _setup(store)
        sending = await store.schedule("s1", "g1", Payload.text("a"), T0)
        waiting = await store.schedule("s1", "g2", Payload.text("b"), T0)
        await store.claim_due(now=T0, limit=2)
        assert await store.session_disconnected("s1", keep=[sending.id]) == 1
        assert (await store.get(sending.id)).status is TaskStatus.PROCESSING
        assert (await store.get(waiting.id)).status is TaskStatus.PENDING
        assert (await store.complete(sending.id)).status is TaskStatus.COMPLETED
        with pytest.raises(ValidationError):
            await store.session_disconnected("s1", keep="not-a-list")

    async def test_history_refuses_an_absurd_offset(self, store: TaskStore) -> None:
        await _setup(store)
        with pytest.raises(ValidationError) as info:
            await store.history("s1", "g", offset=2**70)
        assert info.value.field == "offset"

    async def test_concurrent_writes_succeed_or_fail_each_on_their_own(
        self, store: TaskStore
    ) -> None:
        """Writes issued together keep their own outcome.

        The SQLite store commits them as one group: a conflicting one fails alone and the
        others are all written.
        """
        await _setup(store)
        tasks = [await store.schedule("s1", f"g{i}", Payload.text(str(i)), T0) for i in range(6)]
        await store.claim_due(now=T0, limit=5)  # tasks[5] stays pending
        results = await asyncio.gather(
            *(store.complete(t.id, message_id=f"m{i}") for i, t in enumerate(tasks)),
            return_exceptions=True,
        )
        assert [type(r).__name__ for r in results] == ["Task"] * 5 + ["TaskConflict"]
        for i, task in enumerate(tasks[:5]):
            done = await store.get(task.id)
            assert (done.status, done.message_id) == (TaskStatus.COMPLETED, f"m{i}")
            assert await _kinds(store, task.id) == ["created", "claimed", "completed"]
        assert await _kinds(store, tasks[5].id) == ["created"]

    async def test_failure_reasons_are_cleaned_and_ids_with_nul_are_refused(
        self, store: TaskStore
    ) -> None:
        await _setup(store)
        task = await store.schedule("s1", "g", Payload.text("x"), T0, max_attempts=1)
        with pytest.raises(ValidationError) as info:
            await store.claim_due(now=T0, worker_id="w\x00")
        assert info.value.field == "worker_id"
        await store.claim_due(now=T0)
        with pytest.raises(ValidationError) as info:
            await store.complete(task.id, message_id="m\x00")
        assert info.value.field == "message_id"
        failed = await store.fail(task.id, "gateway said \x00 and \ud800")
        assert failed.last_error == "gateway said \ufffd and ?"
        assert (await store.get(task.id)).last_error == failed.last_error

    async def test_mark_sending_records_the_send_of_the_claim_holder_only(
        self, store: TaskStore
    ) -> None:
        await _setup(store)
        task = await store.schedule("s1", "g", Payload.text("x"), T0)
        with pytest.raises(TaskConflict) as pending:
            await store.mark_sending(task.id)
        assert pending.value.status is TaskStatus.PENDING
        await store.claim_due(now=T0, worker_id="w1")

        with pytest.raises(TaskConflict, match="claimed by worker 'w1', not 'w2'") as other:
            await store.mark_sending(task.id, worker_id="w2")
        assert other.value.status is TaskStatus.PROCESSING
        with pytest.raises(ValidationError) as bad:
            await store.mark_sending(task.id, worker_id="w\x00")
        assert bad.value.field == "worker_id"
        with pytest.raises(TaskNotFound):
            await store.mark_sending("no-such-task")
        assert await _kinds(store, task.id) == ["created", "claimed"]  # nothing written

        before = await store.get(task.id)
        await store.mark_sending(task.id, worker_id="w1")
        assert await store.get(task.id) == before  # no change but the event
        assert (before.status, before.attempts, before.worker_id) == (
            TaskStatus.PROCESSING,
            0,
            "w1",
        )
        events = await store.events(task.id)
        assert [e.kind for e in events] == ["created", "claimed", "sending"]
        assert dict(events[-1].detail) == {"worker_id": "w1", "attempt": 1}
        await store.mark_sending(task.id)  # without a worker: whoever holds the claim
        assert dict((await store.events(task.id))[-1].detail) == {"worker_id": "w1", "attempt": 1}
        await store.complete(task.id)
        with pytest.raises(TaskConflict):
            await store.mark_sending(task.id, worker_id="w1")

        odd = 'host "a\\b" \u00e9\u4e2d'  # quotes, a backslash, non-ASCII: the detail stays JSON
        second = await store.schedule("s1", "g", Payload.text("y"), T0)
        await store.claim_due(now=T0, worker_id=odd)
        await store.mark_sending(second.id, worker_id=odd)
        assert dict((await store.events(second.id))[-1].detail) == {"worker_id": odd, "attempt": 1}

    async def test_a_claim_can_record_the_sends_that_follow_at_once(self, store: TaskStore) -> None:
        await _setup(store)
        now = await store.schedule("s1", "g", Payload.text("now"), T0)
        later = await store.schedule("s1", "h", Payload.text("later"), T0 + timedelta(seconds=1))
        with pytest.raises(ValidationError) as bad:
            await store.claim_due(
                now=T0 + timedelta(seconds=1), sending_due_by="2026-06-01T12:00:00"
            )
        assert bad.value.field == "sending_due_by"
        assert (await store.get(now.id)).status is TaskStatus.PENDING  # nothing claimed

        claimed = await store.claim_due(
            now=T0 + timedelta(seconds=1), limit=2, worker_id="w", sending_due_by=T0
        )
        assert {t.id for t in claimed} == {now.id, later.id}
        events = await store.events(now.id)
        assert [e.kind for e in events] == ["created", "claimed", "sending"]
        assert dict(events[-1].detail) == {"worker_id": "w", "attempt": 1}
        assert await _kinds(store, later.id) == ["created", "claimed"]  # due after the bound

    async def test_concurrent_schedules_succeed_or_fail_each_on_their_own(
        self, store: TaskStore
    ) -> None:
        """Schedule calls issued together keep their own outcome.

        The SQLite store inserts them as one: the one naming an unknown session fails alone,
        the others are all written with their own created-event detail.
        """
        await _setup(store, "s1", "s2")
        calls = [
            store.schedule(
                "ghost" if i == 7 else f"s{1 + i % 2}",
                f"g{i % 3}",
                Payload.text(f"post {i}"),
                T0 + timedelta(seconds=i),
                detail={"n": i},
            )
            for i in range(12)
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert isinstance(results[7], SessionNotFound)
        written = [r for i, r in enumerate(results) if i != 7]
        assert all(isinstance(t, Task) for t in written)
        for i, task in enumerate(results):
            if i == 7:
                continue
            assert isinstance(task, Task)
            assert (await store.get(task.id)).payload.content == f"post {i}"
            [created] = await store.events(task.id)
            assert created.detail["n"] == i
        total = 0
        for session in ("s1", "s2"):
            for group in range(3):
                total += (await store.history(session, f"g{group}")).total
        assert total == 11

        together = await asyncio.gather(
            *(store.schedule("s1", "g9", Payload.text(str(i)), T0) for i in range(20))
        )
        page = await store.history("s1", "g9", limit=500)
        assert sorted(t.id for t in page.items) == sorted(t.id for t in together)

    async def test_completing_one_task_twice_at_once_completes_it_once(
        self, store: TaskStore
    ) -> None:
        """Two completes of one task race (on a pool they may land in either order): one wins."""
        await _setup(store)
        tasks = [await store.schedule("s1", f"g{i}", Payload.text(str(i)), T0) for i in range(3)]
        await store.claim_due(now=T0, limit=3)
        results = await asyncio.gather(
            store.complete(tasks[0].id, message_id="a"),
            store.complete(tasks[1].id, message_id=None),
            store.complete(tasks[0].id, message_id="b"),
            store.complete(tasks[2].id, message_id="c"),
            return_exceptions=True,
        )
        # The other tasks' completes succeed whatever the order.
        assert isinstance(results[1], Task)
        assert isinstance(results[3], Task)
        # Exactly one of the two completes of tasks[0] wins; the other gets a conflict.
        racing = [results[0], results[2]]
        winners = [r for r in racing if isinstance(r, Task)]
        losers = [r for r in racing if isinstance(r, TaskConflict)]
        assert len(winners) == 1, racing
        assert len(losers) == 1, racing
        assert losers[0].status is TaskStatus.COMPLETED
        won = winners[0].message_id
        assert won in {"a", "b"}
        done = [await store.get(t.id) for t in tasks]
        assert [(t.status, t.attempts, t.message_id) for t in done] == [
            (TaskStatus.COMPLETED, 1, won),
            (TaskStatus.COMPLETED, 1, None),
            (TaskStatus.COMPLETED, 1, "c"),
        ]
        for task in tasks:
            assert await _kinds(store, task.id) == ["created", "claimed", "completed"]
        assert dict((await store.events(tasks[0].id))[-1].detail) == {"message_id": won}

    # -- claim holders and versions ---------------------------------------------------------

    async def test_only_the_claim_holder_may_finish_a_task(self, store: TaskStore) -> None:
        """A worker whose lease ended cannot overwrite the outcome of the worker that re-claimed."""
        await _setup(store)
        tasks = [await store.schedule("s1", f"g{i}", Payload.text(str(i)), T0) for i in range(3)]
        await store.claim_due(now=T0, limit=3, worker_id="old", lease=timedelta(minutes=1))
        assert await store.recover_expired(now=T0 + timedelta(minutes=2)) == 3
        reclaimed = await store.claim_due(now=T0 + timedelta(minutes=2), limit=3, worker_id="new")
        assert {t.worker_id for t in reclaimed} == {"new"}
        snapshot = {t.id: await store.get(t.id) for t in tasks}
        trails = {t.id: await _kinds(store, t.id) for t in tasks}
        for call in (
            store.complete(tasks[0].id, message_id="dup", worker_id="old"),
            store.fail(tasks[1].id, "late", worker_id="old"),
            store.fail(tasks[1].id, "late", retry_at=T0, worker_id="old"),
            store.release(tasks[2].id, "stopping", worker_id="old"),
        ):
            with pytest.raises(TaskConflict, match="claimed by worker 'new', not 'old'") as info:
                await call
            assert info.value.status is TaskStatus.PROCESSING
        # Nothing changed: not the tasks, not their trails.
        assert {t.id: await store.get(t.id) for t in tasks} == snapshot
        assert {t.id: await _kinds(store, t.id) for t in tasks} == trails
        # The holder finishes them.
        done = await store.complete(tasks[0].id, message_id="ok", worker_id="new")
        assert (done.status, done.message_id) == (TaskStatus.COMPLETED, "ok")
        failed = await store.fail(tasks[1].id, "boom", worker_id="new")
        assert failed.status is TaskStatus.FAILED
        released = await store.release(tasks[2].id, "stopping", worker_id="new")
        assert released.status is TaskStatus.PENDING
        # A finished task refuses the holder too, with its status.
        with pytest.raises(TaskConflict) as info:
            await store.complete(tasks[0].id, worker_id="new")
        assert info.value.status is TaskStatus.COMPLETED
        with pytest.raises(ValidationError):
            await store.complete(tasks[0].id, worker_id=7)  # type: ignore[arg-type]

    async def test_every_change_of_a_task_adds_one_to_its_version(self, store: TaskStore) -> None:
        await _setup(store)
        task = await store.schedule("s1", "g", Payload.text("x"), T0)
        assert task.version == 1
        seen = [task.version]
        seen.append((await store.edit(task.id, payload=Payload.text("y"))).version)
        [claimed] = await store.claim_due(now=T0, worker_id="w")
        seen.append(claimed.version)
        await store.mark_sending(task.id, worker_id="w")  # an event, not a change of the task
        seen.append((await store.get(task.id)).version)
        seen.append((await store.fail(task.id, "x", retry_at=T0, worker_id="w")).version)
        await store.claim_due(now=T0, worker_id="w")
        seen.append((await store.get(task.id)).version)
        await store.session_disconnected("s1")
        seen.append((await store.get(task.id)).version)
        await store.session_connected("s1")
        await store.claim_due(now=T0, worker_id="w", lease=timedelta(minutes=1))
        await store.recover_expired(now=T0 + timedelta(minutes=5))
        seen.append((await store.get(task.id)).version)
        seen.append((await store.cancel(task.id)).version)
        assert seen == [1, 2, 3, 3, 4, 5, 6, 8, 9]
        assert (await store.get(task.id)).version == 9

    async def test_edit_and_cancel_apply_to_the_version_read_or_conflict(
        self, store: TaskStore
    ) -> None:

        await _setup(store)
        task = await store.schedule("s1", "g", Payload.text("original"), T0)
        first = await store.edit(task.id, payload=Payload.text("first"), if_version=task.version)
        assert (first.version, first.payload.content) == (2, "first")
        # A second editor still holding version 1 is refused, and nothing changes.
        with pytest.raises(VersionConflict) as info:
            await store.edit(task.id, payload=Payload.text("stale"), if_version=task.version)
        assert isinstance(info.value, TaskConflict)
        assert info.value.status is TaskStatus.PENDING
        assert (info.value.version, info.value.current_version) == (1, 2)
        with pytest.raises(VersionConflict):
            await store.cancel(task.id, if_version=1)
        after = await store.get(task.id)
        assert (after.version, after.payload.content, after.status) == (
            2,
            "first",
            TaskStatus.PENDING,
        )
        assert await _kinds(store, task.id) == ["created", "edited"]
        # A version that was never reached is refused the same way.
        with pytest.raises(VersionConflict):
            await store.edit(task.id, scheduled_at=T0, if_version=99)
        cancelled = await store.cancel(task.id, if_version=2)
        assert (cancelled.status, cancelled.version) == (TaskStatus.CANCELLED, 3)
        # Not pending and a stale version: the version conflict, with the current status.
        with pytest.raises(VersionConflict) as info:
            await store.edit(task.id, scheduled_at=T0, if_version=2)
        assert info.value.status is TaskStatus.CANCELLED
        # Not pending at the right version: a plain conflict.
        with pytest.raises(TaskConflict) as plain:
            await store.cancel(task.id, if_version=3)
        assert not isinstance(plain.value, VersionConflict)
        for bad in (0, -1, True, "2", 1.0):
            with pytest.raises(ValidationError) as invalid:
                await store.edit(task.id, scheduled_at=T0, if_version=bad)  # type: ignore[arg-type]
            assert invalid.value.field == "if_version"
        with pytest.raises(TaskNotFound):
            await store.cancel("no-such-task", if_version=1)
