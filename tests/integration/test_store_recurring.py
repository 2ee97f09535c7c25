"""Recurring posts, run against every backend (a real SQLite file, a real PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engagequeue import (
    InMemoryTransport,
    Payload,
    RecurrenceConflict,
    RecurrenceNotFound,
    RecurrenceStatus,
    Scheduler,
    SessionNotFound,
    TaskStatus,
    ValidationError,
    daily_rule,
    weekly_rule,
)

T0 = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # a Monday, 08:00 in Paris
NINE_PARIS = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
DAY = timedelta(days=1)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def rstore(store_factory, clock):
    opened = await store_factory(clock=clock)
    await opened.add_session("s1")
    return opened


async def add_daily(store, **options):
    return await store.add_recurrence(
        "s1",
        "g1",
        Payload.text("Question of the day"),
        daily_rule(9),
        timezone="Europe/Paris",
        **options,
    )


async def occurrences(store, recurrence_id, status=None):
    page = await store.history("s1", "g1", recurrence_id=recurrence_id, status=status, limit=500)
    return list(page.items)


async def pending(store, recurrence_id):
    return await occurrences(store, recurrence_id, status="pending")


async def send(store, now):
    """Claim what is due at ``now`` and complete it, as a worker would."""
    claimed = await store.claim_due(now=now, limit=10)
    for task in claimed:
        await store.complete(task.id)
    return claimed


async def kinds(store, recurrence_id):
    return [e.kind for e in await store.recurrence_events(recurrence_id)]


async def test_add_creates_the_recurrence_and_one_pending_occurrence(rstore) -> None:
    r = await add_daily(rstore)
    assert r.status is RecurrenceStatus.ACTIVE
    assert r.rule == "FREQ=DAILY;BYHOUR=9;BYMINUTE=0"
    assert r.timezone == "Europe/Paris"
    assert r.starts_at == T0
    assert (r.until, r.count) == (None, None)
    assert r.next_at == NINE_PARIS
    assert r.created_at == r.updated_at == T0
    assert await rstore.get_recurrence(r.id) == r
    [task] = await pending(rstore, r.id)
    assert task.id == r.next_task_id
    assert task.recurrence_id == r.id
    assert task.scheduled_at == NINE_PARIS
    assert task.payload == Payload.text("Question of the day")
    [created] = await rstore.events(task.id)
    assert created.kind == "created"
    assert created.detail["recurrence_id"] == r.id
    assert created.detail["occurrence"] == 1
    assert await kinds(rstore, r.id) == ["created", "scheduled"]
    one_off = await rstore.schedule("s1", "g1", Payload.text("once"), T0)
    assert one_off.recurrence_id is None
    assert (await rstore.get(one_off.id)).recurrence_id is None


async def test_a_claim_creates_the_following_occurrence_in_the_same_transaction(rstore) -> None:
    r = await add_daily(rstore)
    [claimed] = await rstore.claim_due(now=NINE_PARIS, worker_id="w")
    assert claimed.id == r.next_task_id
    [following] = await pending(rstore, r.id)
    assert following.scheduled_at == NINE_PARIS + DAY
    after = await rstore.get_recurrence(r.id)
    assert after.next_task_id == following.id
    assert after.next_at == following.scheduled_at
    assert after.issued == 2
    await rstore.complete(claimed.id, worker_id="w")
    assert [t.id for t in await pending(rstore, r.id)] == [following.id]


async def test_after_downtime_no_burst_and_each_passed_occurrence_is_skipped(rstore) -> None:
    r = await add_daily(rstore)
    late = NINE_PARIS + 3 * DAY + timedelta(hours=2)
    [claimed] = await rstore.claim_due(now=late, limit=10)
    assert claimed.id == r.next_task_id
    [following] = await pending(rstore, r.id)
    assert following.scheduled_at == NINE_PARIS + 4 * DAY
    events = await rstore.recurrence_events(r.id)
    skipped = [e.detail["scheduled_at"] for e in events if e.kind == "skipped"]
    assert skipped == [
        "2026-03-03T08:00:00.000000Z",
        "2026-03-04T08:00:00.000000Z",
        "2026-03-05T08:00:00.000000Z",
    ]
    assert await rstore.claim_due(now=late, limit=10) == []


async def test_cancelling_the_pending_occurrence_cancels_that_day_only(rstore) -> None:
    r = await add_daily(rstore)
    cancelled = await rstore.cancel(r.next_task_id)
    assert cancelled.status is TaskStatus.CANCELLED
    [following] = await pending(rstore, r.id)
    assert following.scheduled_at == NINE_PARIS + DAY
    assert (await rstore.get_recurrence(r.id)).status is RecurrenceStatus.ACTIVE


async def test_a_failed_retry_of_a_past_occurrence_creates_no_second_following(rstore) -> None:
    r = await add_daily(rstore)
    [claimed] = await rstore.claim_due(now=NINE_PARIS, worker_id="w")
    await rstore.fail(claimed.id, "busy", retry_at=NINE_PARIS + timedelta(minutes=5), worker_id="w")
    [again] = await rstore.claim_due(now=NINE_PARIS + timedelta(minutes=5))
    assert again.id == claimed.id
    heads = await pending(rstore, r.id)
    assert [t.scheduled_at for t in heads] == [NINE_PARIS + DAY]


async def test_edit_recurrence_applies_to_the_pending_occurrence(rstore) -> None:
    r = await add_daily(rstore)
    edited = await rstore.edit_recurrence(r.id, payload=Payload.text("New question"))
    assert edited.payload == Payload.text("New question")
    [task] = await pending(rstore, r.id)
    assert task.payload == Payload.text("New question")
    assert [e.kind for e in await rstore.events(task.id)] == ["created", "edited"]
    moved = await rstore.edit_recurrence(r.id, rule=weekly_rule(["WE"], 18, 30))
    assert moved.rule == "FREQ=WEEKLY;BYDAY=WE;BYHOUR=18;BYMINUTE=30"
    [task] = await pending(rstore, r.id)
    assert task.scheduled_at == datetime(2026, 3, 4, 17, 30, tzinfo=UTC)
    assert moved.next_at == task.scheduled_at
    assert await kinds(rstore, r.id) == ["created", "scheduled", "edited", "edited"]


async def test_an_occurrence_edited_on_its_own_keeps_its_edit(rstore) -> None:
    r = await add_daily(rstore)
    own = await rstore.edit(r.next_task_id, payload=Payload.text("Today only"))
    assert (await rstore.get_recurrence(r.id)).next_at == own.scheduled_at
    await rstore.edit_recurrence(r.id, payload=Payload.text("From now on"))
    assert (await rstore.get(own.id)).payload == Payload.text("Today only")
    await rstore.claim_due(now=NINE_PARIS)
    [following] = await pending(rstore, r.id)
    assert following.payload == Payload.text("From now on")


async def test_moving_the_pending_occurrence_on_its_own_updates_next_at(rstore) -> None:
    r = await add_daily(rstore)
    later = NINE_PARIS + timedelta(hours=3)
    await rstore.edit(r.next_task_id, scheduled_at=later)
    assert (await rstore.get_recurrence(r.id)).next_at == later
    await rstore.edit_recurrence(r.id, rule=daily_rule(10))
    assert (await rstore.get(r.next_task_id)).scheduled_at == later


async def test_pause_cancels_the_pending_occurrence_and_resume_creates_the_first_after_now(
    rstore, clock
) -> None:
    r = await add_daily(rstore)
    paused = await rstore.pause_recurrence(r.id)
    assert paused.status is RecurrenceStatus.PAUSED
    assert (paused.next_at, paused.next_task_id) == (None, None)
    assert (await rstore.get(r.next_task_id)).status is TaskStatus.CANCELLED
    assert await pending(rstore, r.id) == []
    assert await rstore.pause_recurrence(r.id) == paused  # already paused: unchanged
    clock.now = T0 + 5 * DAY + timedelta(hours=3)  # 11:00 in Paris
    resumed = await rstore.resume_recurrence(r.id)
    assert resumed.status is RecurrenceStatus.ACTIVE
    [task] = await pending(rstore, r.id)
    assert task.scheduled_at == NINE_PARIS + 6 * DAY
    assert resumed.next_task_id == task.id
    assert "skipped" not in await kinds(rstore, r.id)
    assert await kinds(rstore, r.id) == ["created", "scheduled", "paused", "resumed", "scheduled"]


async def test_resuming_before_the_start_keeps_the_first_occurrence(rstore, clock) -> None:
    # Regression: a recurrence paused and resumed before its start lost the occurrence at
    # starts_at (the search "after now" began strictly after starts_at instead).
    r = await add_daily(rstore, starts_at=NINE_PARIS)
    assert r.next_at == NINE_PARIS
    await rstore.pause_recurrence(r.id)
    clock.now = NINE_PARIS - timedelta(minutes=10)
    resumed = await rstore.resume_recurrence(r.id)
    [task] = await pending(rstore, r.id)
    assert task.scheduled_at == resumed.next_at == NINE_PARIS
    assert resumed.issued == 1


async def test_end_leaves_no_pending_occurrence_and_refuses_pause_resume_edit(rstore) -> None:
    r = await add_daily(rstore)
    ended = await rstore.end_recurrence(r.id)
    assert ended.status is RecurrenceStatus.ENDED
    assert await pending(rstore, r.id) == []
    assert await rstore.end_recurrence(r.id) == ended
    for call in (
        rstore.pause_recurrence(r.id),
        rstore.resume_recurrence(r.id),
        rstore.edit_recurrence(r.id, payload=Payload.text("x")),
    ):
        with pytest.raises(RecurrenceConflict) as caught:
            await call
        assert caught.value.status is RecurrenceStatus.ENDED
    assert (await kinds(rstore, r.id))[-1] == "ended"


async def test_an_exhausted_count_ends_the_recurrence(rstore) -> None:
    r = await add_daily(rstore, count=2)
    await send(rstore, NINE_PARIS)
    assert (await rstore.get_recurrence(r.id)).status is RecurrenceStatus.ACTIVE
    assert len(await send(rstore, NINE_PARIS + DAY)) == 1
    done = await rstore.get_recurrence(r.id)
    assert done.status is RecurrenceStatus.ENDED
    assert (done.next_at, done.next_task_id, done.issued) == (None, None, 2)
    assert await pending(rstore, r.id) == []
    assert len(await occurrences(rstore, r.id)) == 2
    events = await rstore.recurrence_events(r.id)
    assert (events[-1].kind, events[-1].detail["reason"]) == ("ended", "count")


async def test_an_exhausted_until_ends_the_recurrence(rstore) -> None:
    r = await add_daily(rstore, until=NINE_PARIS + DAY + timedelta(minutes=30))
    await send(rstore, NINE_PARIS)
    assert len(await send(rstore, NINE_PARIS + DAY)) == 1
    assert (await rstore.get_recurrence(r.id)).status is RecurrenceStatus.ENDED
    assert await pending(rstore, r.id) == []


async def test_recurrences_lists_a_groups_recurrences_by_status(rstore) -> None:
    a = await add_daily(rstore)
    b = await add_daily(rstore)
    await rstore.pause_recurrence(b.id)
    assert [r.id for r in await rstore.recurrences("s1", "g1")] == [a.id, b.id]
    assert [r.id for r in await rstore.recurrences("s1", "g1", status="paused")] == [b.id]
    both = await rstore.recurrences("s1", "g1", status=["active", RecurrenceStatus.PAUSED])
    assert len(both) == 2
    assert await rstore.recurrences("s1", "other") == []
    with pytest.raises(ValidationError):
        await rstore.recurrences("s1", "g1", status="sleeping")


async def test_history_filters_one_recurrences_occurrences(rstore) -> None:
    a = await add_daily(rstore)
    b = await add_daily(rstore)
    await rstore.schedule("s1", "g1", Payload.text("once"), T0)
    assert [t.recurrence_id for t in await occurrences(rstore, a.id)] == [a.id]
    assert [t.recurrence_id for t in await occurrences(rstore, b.id)] == [b.id]
    assert (await rstore.history("s1", "g1")).total == 3


async def test_delete_session_deletes_its_recurrences(rstore) -> None:
    r = await add_daily(rstore)
    await rstore.delete_session("s1")
    with pytest.raises(RecurrenceNotFound):
        await rstore.get_recurrence(r.id)
    with pytest.raises(RecurrenceNotFound):
        await rstore.recurrence_events(r.id)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"rule": "FREQ=SECONDLY"}, "rule"),
        ({"rule": "FREQ=DAILY;X-FOO=1"}, "rule"),
        ({"rule": "DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY"}, "rule"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"starts_at": datetime(2026, 3, 2, 9)}, "starts_at"),  # noqa: DTZ001 - the point
        ({"until": "2026-03-02T09:00:00"}, "until"),
        ({"count": 0}, "count"),
    ],
)
async def test_bad_input_is_refused_naming_it_and_writes_nothing(rstore, options, field) -> None:
    arguments = {"rule": daily_rule(9), "timezone": "Europe/Paris"} | options
    rule = arguments.pop("rule")
    with pytest.raises(ValidationError) as caught:
        await rstore.add_recurrence("s1", "g1", Payload.text("x"), rule, **arguments)
    assert caught.value.field == field
    assert await rstore.recurrences("s1", "g1") == []
    assert (await rstore.history("s1", "g1")).total == 0


async def test_unknown_sessions_and_recurrences_are_refused(rstore) -> None:
    with pytest.raises(SessionNotFound):
        await rstore.add_recurrence(
            "nobody", "g1", Payload.text("x"), daily_rule(9), timezone="UTC"
        )
    for method in (
        rstore.get_recurrence,
        rstore.pause_recurrence,
        rstore.resume_recurrence,
        rstore.end_recurrence,
        rstore.recurrence_events,
    ):
        with pytest.raises(RecurrenceNotFound):
            await method("0123456789abcdef")
    with pytest.raises(RecurrenceNotFound):
        await rstore.edit_recurrence("0123456789abcdef", count=3)
    r = await add_daily(rstore)
    with pytest.raises(ValidationError) as caught:
        await rstore.edit_recurrence(r.id, rule="FREQ=MINUTELY;BYSECOND=1,2")
    assert caught.value.field == "rule"
    assert (await rstore.get_recurrence(r.id)).rule == r.rule


async def test_adding_an_occurrence_wakes_the_stores_schedulers(rstore) -> None:
    woken: list[int] = []
    rstore.add_wakeup(lambda: woken.append(1))
    r = await add_daily(rstore)
    assert len(woken) == 1
    await rstore.pause_recurrence(r.id)
    await rstore.resume_recurrence(r.id)
    assert len(woken) == 2
    await rstore.cancel((await rstore.get_recurrence(r.id)).next_task_id)
    assert len(woken) == 3


async def test_the_scheduler_sends_occurrences_and_max_lateness_applies(rstore, clock) -> None:
    transport = InMemoryTransport()
    r = await add_daily(rstore)
    clock.now = NINE_PARIS
    scheduler = Scheduler(rstore, transport, clock=clock, max_lateness=timedelta(minutes=10))
    assert await scheduler.run_once() == 1
    assert [m.payload for m in transport.sent] == [Payload.text("Question of the day")]
    [sent] = await occurrences(rstore, r.id, status="completed")
    assert sent.id == r.next_task_id
    # The next day the worker is an hour late: that occurrence fails as expired.
    clock.now = NINE_PARIS + DAY + timedelta(hours=1)
    assert await scheduler.run_once() == 1
    [late] = await occurrences(rstore, r.id, status="failed")
    assert "expired" in (late.last_error or "")
    assert len(transport.sent) == 1
    [following] = await pending(rstore, r.id)
    assert following.scheduled_at == NINE_PARIS + 2 * DAY
