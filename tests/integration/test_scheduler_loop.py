# Copyright 2026 engagequeue developers. Licensed under the MIT license.
"""The Scheduler's background loop on a real SQLite file: wake-ups, pacing, disconnects, stop."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest

from engagequeue import (
    InMemoryTransport,
    Payload,
    Scheduler,
    SessionDisconnectedError,
    SQLiteTaskStore,
    TaskStatus,
    set_testing,
)


def now() -> datetime:
    return datetime.now(UTC)


def text(i: int | str) -> Payload:
    return Payload.text(f"post {i}")


@pytest.fixture
async def store(tmp_path):
    async with SQLiteTaskStore(tmp_path / "loop.sqlite3") as s:
        await s.add_session("bot")
        await s.add_session("other")
        yield s


@pytest.fixture(autouse=True)
def _no_backoff():
    with set_testing(True):
        yield


async def wait_until(predicate, timeout=5.0, interval=0.01):
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


async def test_a_post_scheduled_50_ms_ahead_leaves_long_before_the_30_s_poll(store):
    transport = InMemoryTransport()
    async with Scheduler(store, transport, poll_interval=30.0):
        await asyncio.sleep(0.05)  # the loop is idle, sleeping on its 30 s poll
        task = await store.schedule("bot", "g@g.us", text(1), now() + timedelta(milliseconds=50))
        [sent] = await transport.wait_for_sends(1, timeout=5)
    lag = sent.sent_at - task.scheduled_at
    assert timedelta(0) <= lag < timedelta(seconds=1)
    events = await store.events(task.id)  # stop() waited for the completion
    # Claimed up to claim_ahead early, its send recorded by the claim: no write between
    # its exact time and the send.
    assert [e.kind for e in events] == ["created", "claimed", "sending", "completed"]
    assert events[1].at == events[2].at <= sent.sent_at


async def test_a_post_due_later_is_sent_at_its_time_not_before(store):
    transport = InMemoryTransport()
    async with Scheduler(store, transport, poll_interval=30.0):
        task = await store.schedule("bot", "g@g.us", text(1), now() + timedelta(milliseconds=400))
        await asyncio.sleep(0.2)
        assert transport.sent == []
        [sent] = await transport.wait_for_sends(1, timeout=5)
    assert timedelta(0) <= sent.sent_at - task.scheduled_at < timedelta(seconds=1)


async def test_editing_a_post_to_now_wakes_the_loop(store):
    transport = InMemoryTransport()
    task = await store.schedule("bot", "g@g.us", text(1), now() + timedelta(hours=1))
    async with Scheduler(store, transport, poll_interval=30.0):
        await asyncio.sleep(0.05)
        edited = await store.edit(task.id, scheduled_at=now())
        [sent] = await transport.wait_for_sends(1, timeout=5)
    assert sent.sent_at - edited.updated_at < timedelta(seconds=1)


async def test_wake_picks_up_writes_made_through_another_store_object(store, tmp_path):
    transport = InMemoryTransport()
    async with (
        SQLiteTaskStore(store.path) as elsewhere,
        Scheduler(store, transport, poll_interval=30.0) as scheduler,
    ):
        await asyncio.sleep(0.1)  # the loop found nothing and sleeps on its 30 s poll
        await elsewhere.schedule("bot", "g@g.us", text(1), now())
        # Another object's write wakes the loop too (through the file's wake-up sockets).
        await transport.wait_for_sends(1, timeout=5)
        assert scheduler.running


async def test_wake_from_another_thread_is_safe(store):
    transport = InMemoryTransport()
    async with (
        SQLiteTaskStore(store.path) as elsewhere,
        Scheduler(store, transport, poll_interval=30.0) as scheduler,
    ):
        await asyncio.sleep(0.1)
        await elsewhere.schedule("bot", "g@g.us", text(1), now())
        await asyncio.to_thread(scheduler.wake)
        await transport.wait_for_sends(1, timeout=1)


async def test_overdue_posts_go_at_once_on_start_oldest_first(store):
    for hours in (1, 5, 3):
        await store.schedule("bot", f"g{hours}@g.us", text(hours), now() - timedelta(hours=hours))
    transport = InMemoryTransport()
    started = time.monotonic()
    async with Scheduler(store, transport, poll_interval=30.0, concurrency=1):
        sent = await transport.wait_for_sends(3, timeout=5)
    assert time.monotonic() - started < 2
    assert [m.payload.content for m in sent] == ["post 5", "post 3", "post 1"]


async def test_disconnect_mid_run_holds_the_session_and_resumes_in_order_after_reconnect(store):
    base = now()
    for i in range(12):
        await store.schedule("bot", f"g{i % 3}@g.us", text(i), base + timedelta(milliseconds=i))
    for i in range(4):
        await store.schedule("other", "g@g.us", text(f"o{i}"), base + timedelta(milliseconds=i))
    transport = InMemoryTransport(delay=0.03)
    async with Scheduler(store, transport, poll_interval=30.0, concurrency=4) as scheduler:
        await wait_until(lambda: _sent_at_least(transport, "bot", 3))
        transport.disconnect("bot")
        cut = len(transport.sent_to("bot"))
        await wait_until(lambda: _sent_at_least(transport, "other", 4))
        await wait_until(lambda: _none_processing(store, "bot", 3))
        await asyncio.sleep(0.2)

        assert len(transport.sent_to("bot")) == cut  # nothing went to the dropped session
        held = [t for g in range(3) for t in (await store.history("bot", f"g{g}@g.us")).items]
        pending = [t for t in held if t.status is not TaskStatus.COMPLETED]
        assert len(pending) == 12 - cut
        assert all(t.status is TaskStatus.PENDING and t.attempts == 0 for t in pending)

        transport.connect("bot")
        await scheduler.session_connected("bot")
        await transport.wait_for_sends(16, timeout=5)

    for g in range(3):
        sent = [m.payload.content for m in transport.sent_to("bot", f"g{g}@g.us")]
        assert sent == [f"post {i}" for i in range(g, 12, 3)]
    assert len(transport.sent) == 16  # each post exactly once


async def _sent_at_least(transport, session, count):
    return len(transport.sent_to(session)) >= count


async def _none_processing(store, session, groups):
    for g in range(groups):
        page = await store.history(session, f"g{g}@g.us", status="processing")
        if page.total:
            return False
    return True


async def test_a_session_that_reports_connected_again_is_resumed_by_the_probe(store):
    await store.schedule("bot", "g@g.us", text(1), now())
    transport = InMemoryTransport()
    transport.disconnect("bot")
    async with Scheduler(store, transport, poll_interval=0.1):
        await asyncio.sleep(0.3)
        assert transport.sent == []
        transport.connect("bot")
        await transport.wait_for_sends(1, timeout=5)


async def test_stop_lets_sends_in_flight_finish(store):
    for g in range(3):
        await store.schedule("bot", f"g{g}@g.us", text(g), now())
    transport = InMemoryTransport(delay=0.3)
    scheduler = Scheduler(store, transport, poll_interval=30.0, stop_timeout=5)
    await scheduler.start()
    await wait_until(lambda: _calls(transport, 3))
    await scheduler.stop()
    assert not scheduler.running
    assert len(transport.sent) == 3
    for g in range(3):
        [task] = (await store.history("bot", f"g{g}@g.us")).items
        assert task.status is TaskStatus.COMPLETED


async def _calls(transport, count):
    return transport.calls >= count


async def test_stop_returns_unfinished_sends_to_pending_after_its_timeout(store):
    task = await store.schedule("bot", "g@g.us", text(1), now())
    transport = InMemoryTransport(delay=10)
    scheduler = Scheduler(store, transport, poll_interval=30.0, stop_timeout=0.1)
    await scheduler.start()
    await wait_until(lambda: _calls(transport, 1))
    started = time.monotonic()
    await scheduler.stop()
    assert time.monotonic() - started < 2
    back = await store.get(task.id)
    assert (back.status, back.attempts) == (TaskStatus.PENDING, 0)
    [released] = [e for e in await store.events(task.id) if e.kind == "released"]
    assert released.detail["reason"] == "scheduler stopped"
    assert transport.sent == []


async def test_stop_releases_posts_waiting_for_their_pacing_slot_at_once(store):
    for g in range(3):
        await store.schedule("bot", f"g{g}@g.us", text(g), now())
    transport = InMemoryTransport()
    scheduler = Scheduler(store, transport, poll_interval=30.0, min_send_gap=30, stop_timeout=10)
    await scheduler.start()
    await transport.wait_for_sends(1, timeout=5)
    await wait_until(lambda: _in_flight(scheduler, 2))
    started = time.monotonic()
    await scheduler.stop()
    assert time.monotonic() - started < 2
    statuses = sorted(
        [(await store.history("bot", f"g{g}@g.us")).items[0].status.value for g in range(3)]
    )
    assert statuses == ["completed", "pending", "pending"]


async def _in_flight(scheduler, count):
    return scheduler.in_flight >= count


async def test_pacing_spaces_the_sends_of_one_session_but_not_across_sessions(store):
    for g in range(3):
        await store.schedule("bot", f"g{g}@g.us", text(g), now())
    await store.schedule("other", "g@g.us", text("other"), now())
    transport = InMemoryTransport()
    async with Scheduler(store, transport, poll_interval=30.0, min_send_gap=0.15):
        await transport.wait_for_sends(4, timeout=5)
    ours = [m.sent_at for m in transport.sent_to("bot")]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(ours)]
    assert all(gap >= 0.14 for gap in gaps), gaps
    [theirs] = transport.sent_to("other")
    assert theirs.sent_at < ours[1]  # another session is not paced behind this one


async def test_pacing_jitter_adds_a_random_extra_gap(store):
    for g in range(4):
        await store.schedule("bot", f"g{g}@g.us", text(g), now())
    transport = InMemoryTransport()
    async with Scheduler(
        store, transport, poll_interval=30.0, min_send_gap=0.05, send_gap_jitter=0.1
    ):
        await transport.wait_for_sends(4, timeout=5)
    times = [m.sent_at for m in transport.sent]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert all(0.045 <= gap <= 0.5 for gap in gaps), gaps


async def test_the_loop_survives_a_transport_that_raises_unexpected_errors(store, caplog):
    transport = InMemoryTransport()
    transport.fail_next(ZeroDivisionError("transport bug"), times=3)
    caplog.set_level(logging.INFO, logger="engagequeue")
    async with Scheduler(store, transport, poll_interval=30.0) as scheduler:
        broken = await store.schedule("bot", "g@g.us", text("broken"), now(), max_attempts=3)
        await wait_until(lambda: _status(store, broken.id, TaskStatus.FAILED))
        await store.schedule("bot", "h@g.us", text("next"), now())
        await transport.wait_for_sends(1, timeout=5)
        assert scheduler.running
    assert [m.payload.content for m in transport.sent] == ["post next"]
    tracebacks = [r for r in caplog.records if r.exc_info and "unexpected" in r.getMessage()]
    assert len(tracebacks) == 3


async def _status(store, task_id, status):
    return (await store.get(task_id)).status is status


async def test_the_loop_survives_store_errors_and_retries(store, caplog):
    class Flaky:
        def __init__(self, inner):
            self._inner = inner
            self.failures = 2

        def __getattr__(self, name):
            return getattr(self._inner, name)

        async def claim_due(self, **kwargs):
            if self.failures:
                self.failures -= 1
                raise OSError("database is locked")
            return await self._inner.claim_due(**kwargs)

    await store.schedule("bot", "g@g.us", text(1), now())
    transport = InMemoryTransport()
    async with Scheduler(Flaky(store), transport, poll_interval=30.0):
        await transport.wait_for_sends(1, timeout=5)
    assert sum("the store failed" in r.getMessage() for r in caplog.records) == 2


async def test_a_dead_workers_lease_is_recovered_by_the_running_loop(store):
    task = await store.schedule("bot", "g@g.us", text(1), now())
    await store.claim_due(worker_id="dead", lease=timedelta(milliseconds=200))
    transport = InMemoryTransport()
    async with Scheduler(store, transport, poll_interval=0.1):
        await transport.wait_for_sends(1, timeout=5)
    assert (await store.get(task.id)).status is TaskStatus.COMPLETED


async def test_the_scheduler_unregisters_its_wakeup_on_stop_and_can_restart(store):
    transport = InMemoryTransport()
    scheduler = Scheduler(store, transport, poll_interval=30.0)
    async with scheduler:
        assert scheduler.wake in store._wakeups
    assert scheduler.wake not in store._wakeups
    await store.schedule("bot", "g@g.us", text(1), now())  # no running loop to wake: fine
    scheduler.wake()  # a no-op when stopped
    async with scheduler:
        await transport.wait_for_sends(1, timeout=5)


async def test_transport_disconnect_error_marks_the_session_disconnected_in_the_store(store):
    class Dropping(InMemoryTransport):
        async def send(self, session_id, group_id, payload):
            self.calls += 1
            raise SessionDisconnectedError("Connection Closed")

    task = await store.schedule("bot", "g@g.us", text(1), now())
    transport = Dropping()
    async with Scheduler(store, transport, poll_interval=30.0, probe_sessions=False):
        await wait_until(lambda: _kind_seen(store, task.id, "released"))
        await asyncio.sleep(0.1)
        assert transport.calls == 1  # not claimed again while disconnected
    back = await store.get(task.id)
    assert (back.status, back.attempts) == (TaskStatus.PENDING, 0)
    assert await store.claim_due() == []


async def _kind_seen(store, task_id, kind):
    return kind in [e.kind for e in await store.events(task_id)]
