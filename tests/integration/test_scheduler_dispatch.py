# Copyright 2026 engagequeue developers. Licensed under the MIT license.
"""Scheduler.run_once on a real SQLite file with an injected clock: outcomes of each attempt."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
import tenacity

from engagequeue import (
    EngageQueueError,
    InMemoryTransport,
    Payload,
    PermanentTransportError,
    RetryPolicy,
    Scheduler,
    SendReceipt,
    SQLiteTaskStore,
    TaskStatus,
    TransientTransportError,
    ValidationError,
    current_task,
    set_testing,
)

T0 = datetime(2030, 5, 1, 9, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
async def store(tmp_path, clock):
    async with SQLiteTaskStore(tmp_path / "dispatch.sqlite3", clock=clock) as s:
        await s.add_session("bot")
        await s.add_session("other")
        yield s


@pytest.fixture(autouse=True)
def _no_testing_mode():
    with set_testing(False):
        yield


def text(i: int | str) -> Payload:
    return Payload.text(f"post {i}")


async def kinds(store, task_id):
    return [e.kind for e in await store.events(task_id)]


async def test_run_once_sends_what_is_due_and_leaves_future_posts_pending(store, clock):
    due = await store.schedule("bot", "g@g.us", text("due"), T0 - timedelta(minutes=1))
    exactly_now = await store.schedule("bot", "h@g.us", text("now"), T0)
    later = await store.schedule("bot", "g@g.us", text("later"), T0 + timedelta(seconds=1))
    transport = InMemoryTransport()

    assert await Scheduler(store, transport, clock=clock).run_once() == 2

    assert sorted(m.payload.content for m in transport.sent) == ["post due", "post now"]
    for task in (due, exactly_now):
        done = await store.get(task.id)
        assert done.status is TaskStatus.COMPLETED
        assert done.attempts == 1
        assert done.message_id in {m.message_id for m in transport.sent}
        assert await kinds(store, task.id) == ["created", "claimed", "sending", "completed"]
    assert (await store.get(later.id)).status is TaskStatus.PENDING


async def test_run_once_with_nothing_due_returns_zero(store, clock):
    await store.schedule("bot", "g@g.us", text(1), T0 + timedelta(hours=1))
    assert await Scheduler(store, InMemoryTransport(), clock=clock).run_once() == 0


async def test_posts_of_one_group_leave_in_scheduled_order_not_insertion_order(store, clock):
    times = [T0 - timedelta(seconds=s) for s in (5, 50, 20, 1, 30)]
    for i, at in enumerate(times):
        await store.schedule("bot", "g@g.us", text(i), at)
    transport = InMemoryTransport()
    assert await Scheduler(store, transport, clock=clock).run_once() == 5
    expected = [f"post {i}" for i, _ in sorted(enumerate(times), key=lambda p: p[1])]
    assert [m.payload.content for m in transport.sent] == expected


class TrackingTransport(InMemoryTransport):
    """Counts sends in flight, per group and in all."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.now_per_group: dict[str, int] = defaultdict(int)
        self.max_per_group = 0
        self.now_total = 0
        self.max_total = 0

    async def send(self, session_id, group_id, payload):
        self.now_per_group[group_id] += 1
        self.now_total += 1
        self.max_per_group = max(self.max_per_group, self.now_per_group[group_id])
        self.max_total = max(self.max_total, self.now_total)
        try:
            return await super().send(session_id, group_id, payload)
        finally:
            self.now_per_group[group_id] -= 1
            self.now_total -= 1


async def test_groups_send_concurrently_up_to_the_bound_while_each_group_stays_sequential(
    store, clock
):
    items = [("bot", f"g{i % 6}@g.us", text(i), T0 - timedelta(seconds=100 - i)) for i in range(36)]
    await store.schedule_many(items)
    transport = TrackingTransport(delay=0.02)
    assert await Scheduler(store, transport, clock=clock, concurrency=4).run_once() == 36
    assert transport.max_per_group == 1
    assert transport.max_total == 4
    for g in range(6):
        contents = [m.payload.content for m in transport.sent_to(group_id=f"g{g}@g.us")]
        assert contents == [f"post {i}" for i in range(g, 36, 6)]


async def test_transient_failure_is_retried_after_a_durable_backoff_then_succeeds(store, clock):
    task = await store.schedule("bot", "g@g.us", text(1), T0)
    transport = InMemoryTransport()
    transport.fail_next(TransientTransportError("HTTP 503"))
    policy = RetryPolicy(wait=tenacity.wait_fixed(30))
    scheduler = Scheduler(store, transport, clock=clock, retry=policy)

    assert await scheduler.run_once() == 0  # retried, not finished
    waiting = await store.get(task.id)
    assert waiting.status is TaskStatus.PENDING
    assert waiting.attempts == 1
    assert waiting.scheduled_at == T0 + timedelta(seconds=30)
    assert "TransientTransportError: HTTP 503" in waiting.last_error
    assert transport.sent == []

    clock.advance(seconds=29)
    assert await scheduler.run_once() == 0
    clock.advance(seconds=1)
    assert await scheduler.run_once() == 1
    done = await store.get(task.id)
    assert done.status is TaskStatus.COMPLETED
    assert done.attempts == 2
    assert len(transport.sent) == 1
    assert await kinds(store, task.id) == [
        *("created", "claimed", "sending", "retried"),
        *("claimed", "sending", "completed"),
    ]


async def test_default_backoff_is_exponential_with_jitter(store, clock):
    task = await store.schedule("bot", "g@g.us", text(1), T0, max_attempts=5)
    transport = InMemoryTransport()
    transport.fail_next(TransientTransportError("busy"), times=2)
    scheduler = Scheduler(store, transport, clock=clock)
    await scheduler.run_once()
    first = (await store.get(task.id)).scheduled_at - T0
    assert timedelta(seconds=10) <= first <= timedelta(seconds=20)
    clock.now = (await store.get(task.id)).scheduled_at
    await scheduler.run_once()
    second = (await store.get(task.id)).scheduled_at - clock.now
    assert timedelta(seconds=20) <= second <= timedelta(seconds=30)


async def test_permanent_failure_fails_at_once_without_retry(store, clock):
    task = await store.schedule("bot", "g@g.us", text(1), T0, max_attempts=5)
    transport = InMemoryTransport()
    transport.fail_next(PermanentTransportError("unknown chat g@g.us"))
    assert await Scheduler(store, transport, clock=clock).run_once() == 1
    failed = await store.get(task.id)
    assert failed.status is TaskStatus.FAILED
    assert failed.attempts == 1
    assert "unknown chat" in failed.last_error
    assert transport.calls == 1
    assert await kinds(store, task.id) == ["created", "claimed", "sending", "failed"]


async def test_retries_stop_after_max_attempts(store, clock):
    task = await store.schedule("bot", "g@g.us", text(1), T0, max_attempts=3)
    transport = InMemoryTransport()
    transport.fail_next(TransientTransportError("still down"), times=10)
    with set_testing(True):  # retries due at once: one run_once makes every attempt
        finished = await Scheduler(store, transport, clock=clock).run_once()
    assert finished == 1
    failed = await store.get(task.id)
    assert failed.status is TaskStatus.FAILED
    assert failed.attempts == 3
    assert "still down" in failed.last_error
    assert await kinds(store, task.id) == [
        "created",
        *("claimed", "sending", "retried"),
        *("claimed", "sending", "retried"),
        *("claimed", "sending", "failed"),
    ]
    assert transport.calls == 3
    assert transport.sent == []


async def test_policy_stop_can_give_up_before_max_attempts(store, clock):
    task = await store.schedule("bot", "g@g.us", text(1), T0, max_attempts=10)
    transport = InMemoryTransport()
    transport.fail_next(TransientTransportError("down"), times=10)
    policy = RetryPolicy(stop=tenacity.stop_after_attempt(2), wait=tenacity.wait_none())
    assert await Scheduler(store, transport, clock=clock, retry=policy).run_once() == 1
    assert (await store.get(task.id)).attempts == 2
    assert (await store.get(task.id)).status is TaskStatus.FAILED


async def test_a_send_that_times_out_counts_as_a_transient_failure(store, clock):
    task = await store.schedule("bot", "g@g.us", text(1), T0)
    transport = InMemoryTransport(delay=5)
    scheduler = Scheduler(store, transport, clock=clock, send_timeout=0.05)
    assert await scheduler.run_once() == 0
    waiting = await store.get(task.id)
    assert waiting.status is TaskStatus.PENDING
    assert waiting.attempts == 1
    assert waiting.last_error.startswith("timeout")
    assert transport.sent == []


async def test_unexpected_transport_exception_fails_the_attempt_and_is_logged_with_traceback(
    store, clock, caplog
):
    task = await store.schedule("bot", "g@g.us", text(1), T0)
    after = await store.schedule("bot", "h@g.us", text(2), T0)
    transport = InMemoryTransport()
    transport.fail_next(KeyError("payload_id"))
    caplog.set_level(logging.INFO, logger="engagequeue")
    assert await Scheduler(store, transport, clock=clock).run_once() == 1
    retried = await store.get(task.id)
    assert retried.status is TaskStatus.PENDING
    assert retried.attempts == 1
    assert "KeyError" in retried.last_error
    assert (await store.get(after.id)).status is TaskStatus.COMPLETED
    [record] = [r for r in caplog.records if "unexpected error" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], KeyError)


async def test_max_lateness_fails_a_stale_post_as_expired_instead_of_sending_it(store, clock):
    stale = await store.schedule("bot", "g@g.us", text("stale"), T0 - timedelta(hours=3))
    fresh = await store.schedule("bot", "h@g.us", text("fresh"), T0 - timedelta(minutes=30))
    transport = InMemoryTransport()
    scheduler = Scheduler(store, transport, clock=clock, max_lateness=timedelta(hours=1))
    assert await scheduler.run_once() == 2
    expired = await store.get(stale.id)
    assert expired.status is TaskStatus.FAILED
    assert "expired" in expired.last_error
    assert "3.0 h" in expired.last_error
    assert (await store.get(fresh.id)).status is TaskStatus.COMPLETED
    assert [m.payload.content for m in transport.sent] == ["post fresh"]


async def test_max_lateness_accepts_seconds(store, clock):
    task = await store.schedule("bot", "g@g.us", text(1), T0 - timedelta(seconds=11))
    await Scheduler(store, InMemoryTransport(), clock=clock, max_lateness=10).run_once()
    assert "expired" in (await store.get(task.id)).last_error


async def test_an_expired_lease_of_a_dead_worker_is_recovered_and_sent(store, clock):
    task = await store.schedule("bot", "g@g.us", text(1), T0)
    [claimed] = await store.claim_due(now=T0, worker_id="dead", lease=timedelta(minutes=5))
    assert claimed.id == task.id
    transport = InMemoryTransport()
    scheduler = Scheduler(store, transport, clock=clock)
    assert await scheduler.run_once() == 0  # the lease still holds
    clock.advance(minutes=5)
    assert await scheduler.run_once() == 1
    done = await store.get(task.id)
    assert done.status is TaskStatus.COMPLETED
    assert done.attempts == 2  # the lost attempt counts
    assert await kinds(store, task.id) == [
        *("created", "claimed", "expired"),
        *("claimed", "sending", "completed"),
    ]


async def test_current_task_is_the_task_being_sent_and_unset_afterwards(store, clock):
    seen = []

    class Recording:
        async def send(self, session_id, group_id, payload):
            task = current_task()
            seen.append((task.id, task.group_id, group_id, task.payload == payload))
            return SendReceipt(message_id=f"stable-{task.id}-{task.attempts}")

    tasks = [await store.schedule("bot", f"g{i}@g.us", text(i), T0) for i in range(3)]
    assert await Scheduler(store, Recording(), clock=clock).run_once() == 3
    assert sorted(seen) == sorted((t.id, t.group_id, t.group_id, True) for t in tasks)
    assert current_task() is None
    assert (await store.get(tasks[0].id)).message_id == f"stable-{tasks[0].id}-0"


async def test_a_session_dropping_mid_run_releases_its_posts_without_using_attempts(store, clock):
    ours = [await store.schedule("bot", "g@g.us", text(i), T0) for i in range(3)]
    theirs = await store.schedule("other", "g@g.us", text("other"), T0)
    transport = InMemoryTransport()
    transport.disconnect("bot")
    scheduler = Scheduler(store, transport, clock=clock)
    assert await scheduler.run_once() == 1
    assert [m.session_id for m in transport.sent] == ["other"]
    assert (await store.get(theirs.id)).status is TaskStatus.COMPLETED
    for task in ours:
        back = await store.get(task.id)
        assert back.status is TaskStatus.PENDING
        assert back.attempts == 0
    assert "released" in await kinds(store, ours[0].id)
    assert await store.next_due() is None  # the session is disconnected in the store

    transport.connect("bot")
    await scheduler.session_connected("bot")
    assert await scheduler.run_once() == 3
    assert [m.payload.content for m in transport.sent_to("bot")] == ["post 0", "post 1", "post 2"]


async def test_run_once_probes_a_dropped_session_and_resumes_it_when_connected(store, clock):
    await store.schedule("bot", "g@g.us", text(1), T0)
    transport = InMemoryTransport()
    transport.disconnect("bot")
    scheduler = Scheduler(store, transport, clock=clock)
    assert await scheduler.run_once() == 0
    assert await scheduler.run_once() == 0  # still disconnected: the probe says so
    transport.connect("bot")
    assert await scheduler.run_once() == 1


async def test_probing_can_be_turned_off(store, clock):
    await store.schedule("bot", "g@g.us", text(1), T0)
    transport = InMemoryTransport()
    transport.disconnect("bot")
    scheduler = Scheduler(store, transport, clock=clock, probe_sessions=False)
    await scheduler.run_once()
    transport.connect("bot")
    assert await scheduler.run_once() == 0  # waits for the host's session_connected
    await scheduler.session_connected("bot")
    assert await scheduler.run_once() == 1


async def test_a_transport_returning_a_non_string_message_id_is_recorded_as_text(store, clock):
    class Numeric:
        async def send(self, session_id, group_id, payload):
            return SendReceipt(message_id=12345)  # type: ignore[arg-type]

    task = await store.schedule("bot", "g@g.us", text(1), T0)
    await Scheduler(store, Numeric(), clock=clock).run_once()
    assert (await store.get(task.id)).message_id == "12345"


async def test_run_once_is_refused_while_the_loop_runs(store, clock):
    async with Scheduler(store, InMemoryTransport(), clock=clock) as scheduler:
        with pytest.raises(EngageQueueError, match="running"):
            await scheduler.run_once()


class StoreWithoutExtras:
    """A TaskStore that offers neither wake-ups nor next_due: only the protocol's core."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        if name in {"add_wakeup", "remove_wakeup", "next_due"}:
            raise AttributeError(name)
        return getattr(self._inner, name)


async def test_a_store_without_wakeups_or_next_due_is_polled(store):
    transport = InMemoryTransport()
    minimal = StoreWithoutExtras(store)
    async with Scheduler(minimal, transport, poll_interval=0.05):
        await store.schedule("bot", "g@g.us", text(1), datetime.now(UTC))
        await transport.wait_for_sends(1, timeout=5)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("poll_interval", 0),
        ("poll_interval", "30"),
        ("min_send_gap", -1),
        ("send_gap_jitter", float("inf")),
        ("max_lateness", 0),
        ("concurrency", 0),
        ("concurrency", True),
        ("send_timeout", 0),
        ("lease", timedelta(seconds=10)),  # not longer than send_timeout (60 s)
        ("lease", 300),
        ("retry", "exponential"),
        ("worker_id", " "),
        ("clock", "now"),
        ("probe_sessions", "yes"),
        ("claim_ahead", -0.01),
    ],
)
async def test_bad_options_are_refused_naming_the_option(store, option, value):
    with pytest.raises(ValidationError) as info:
        Scheduler(store, InMemoryTransport(), **{option: value})
    assert info.value.field == option


def test_store_and_transport_are_checked():
    with pytest.raises(ValidationError) as info:
        Scheduler(object(), InMemoryTransport())  # type: ignore[arg-type]
    assert info.value.field == "store"


async def test_default_lease_covers_pacing_waits(store):
    assert Scheduler(store, InMemoryTransport()).lease == timedelta(minutes=5)
    paced = Scheduler(
        store, InMemoryTransport(), min_send_gap=30, send_gap_jitter=30, send_timeout=60
    )
    assert paced.lease > timedelta(seconds=8 * (30 + 30 + 60))


async def test_a_store_error_while_finishing_is_logged_and_leaves_the_task_to_its_lease(
    store, clock, caplog
):
    task = await store.schedule("bot", "g@g.us", text(1), T0)

    class BrokenComplete:
        def __init__(self, inner):
            self._inner = inner

        def __getattr__(self, name):
            return getattr(self._inner, name)

        async def complete(self, task_id, *, message_id=None, worker_id=None):
            raise OSError("disk full")

    transport = InMemoryTransport()
    assert await Scheduler(BrokenComplete(store), transport, clock=clock).run_once() == 0
    assert len(transport.sent) == 1
    assert (await store.get(task.id)).status is TaskStatus.PROCESSING
    assert any("could not complete" in r.getMessage() for r in caplog.records)
    clock.advance(minutes=10)
    assert await store.recover_expired() == 1


async def test_disconnect_through_the_scheduler_lets_a_send_under_way_finish_once(store, clock):
    """A send already under way may have reached the gateway: it is completed, never
    released and sent again; the session's next post waits for the reconnect."""
    task = await store.schedule("bot", "g@g.us", text(1), T0)
    later = await store.schedule("bot", "g@g.us", text(2), T0)
    other = await store.schedule("other", "g@g.us", text(3), T0)
    transport = InMemoryTransport(delay=0.3)
    scheduler = Scheduler(store, transport, clock=clock)
    run = asyncio.create_task(scheduler.run_once())
    await asyncio.sleep(0.1)
    assert scheduler.in_flight == 2
    assert await scheduler.session_disconnected("bot") == 0
    assert await run == 2
    assert sorted(m.session_id for m in transport.sent) == ["bot", "other"]
    done = await store.get(task.id)
    assert (done.status, done.attempts) == (TaskStatus.COMPLETED, 1)
    waiting = await store.get(later.id)
    assert (waiting.status, waiting.attempts) == (TaskStatus.PENDING, 0)
    assert (await store.get(other.id)).status is TaskStatus.COMPLETED
    assert await scheduler.run_once() == 0
    await scheduler.session_connected("bot")
    assert await scheduler.run_once() == 1
    assert [m.payload for m in transport.sent_to("bot")] == [text(1), text(2)]


async def test_a_worker_whose_task_was_claimed_again_does_not_send_it(tmp_path, clock, caplog):
    """Its lease ended while the post waited for its pacing slot, and another worker claimed
    the task: the send is recorded (event ``sending``) only by the worker holding the
    claim, so the stale worker stops instead of sending the post a second time."""
    later = T0 + timedelta(hours=1)

    class TakenOverJustBeforeTheSend(SQLiteTaskStore):
        async def mark_sending(self, task_id: str, *, worker_id: str | None = None) -> None:
            await self.recover_expired(now=later)
            await self.claim_due(now=later, worker_id="newcomer")
            await super().mark_sending(task_id, worker_id=worker_id)

    async with TakenOverJustBeforeTheSend(tmp_path / "t.sqlite3", clock=clock) as store:
        await store.add_session("bot")
        task = await store.schedule("bot", "g@g.us", text(1), T0)
        transport = InMemoryTransport()
        with caplog.at_level(logging.WARNING, logger="engagequeue"):
            scheduler = Scheduler(
                store, transport, clock=clock, worker_id="stale", min_send_gap=0.001
            )
            finished = await scheduler.run_once()
        assert finished == 0
        assert transport.sent == []
        now = await store.get(task.id)
        assert (now.status, now.worker_id) == (TaskStatus.PROCESSING, "newcomer")
        assert await kinds(store, task.id) == ["created", "claimed", "expired", "claimed"]
        assert "no longer this worker's" in caplog.text
        assert "claimed by worker 'newcomer', not 'stale'" in caplog.text


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({}, id="recorded-by-the-claim"),
        pytest.param({"min_send_gap": 0.001}, id="recorded-when-the-paced-send-starts"),
        pytest.param({"max_lateness": 3600}, id="recorded-after-the-lateness-check"),
    ],
)
async def test_the_sending_event_names_the_worker_and_the_attempt(store, clock, options):
    """Without pacing or max_lateness the claim records the send that follows at once;
    otherwise the send records itself when it starts. The trail is the same."""
    task = await store.schedule("bot", "g@g.us", text(1), T0)
    ahead = await store.schedule("bot", "h@g.us", text(2), T0 + timedelta(milliseconds=20))
    transport = InMemoryTransport()
    scheduler = Scheduler(store, transport, clock=clock, worker_id="w-1", **options)
    assert await scheduler.run_once() == 1
    clock.advance(seconds=1)
    assert await scheduler.run_once() == 1
    for one in (task, ahead):
        events = await store.events(one.id)
        assert [e.kind for e in events] == ["created", "claimed", "sending", "completed"]
        assert dict(events[2].detail) == {"worker_id": "w-1", "attempt": 1}
    assert len(transport.sent) == 2


async def test_a_post_failed_as_too_late_has_no_sending_event(store, clock):
    task = await store.schedule("bot", "g@g.us", text(1), T0 - timedelta(hours=2))
    await Scheduler(store, InMemoryTransport(), clock=clock, max_lateness=60).run_once()
    assert await kinds(store, task.id) == ["created", "claimed", "failed"]
