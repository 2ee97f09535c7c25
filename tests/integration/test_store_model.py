"""The real store and a plain in-Python model, side by side, under random operation sequences.

After every step: the store agrees with the model on every task's status, attempts, time,
payload and recurrence; history equals the model; no two tasks of a group are in flight;
every status change the store made is a legal move of the state machine; the audit trail
matches.

Recurring posts ride along: recurrences are added, edited, paused, resumed and ended, and
their occurrences go through the same claims, completions, cancellations and edits as any
task (the ``occurrence`` rule hands them to every task rule). The model computes each
rule's times itself (minutely grids from the start, or a wall-clock minute of every hour,
in zones without a DST change in June) and checks: exactly one pending occurrence that was
never claimed while a recurrence is active, none while paused or ended; each occurrence's
time and payload (one edited on its own keeps its edit); each recurrence's status,
``next_task_id``, ``next_at``, ``issued`` and event kinds; ``delete_session`` takes the
session's recurrences with it.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from engagequeue import (
    Payload,
    RecurrenceConflict,
    RecurrenceNotFound,
    RecurrenceStatus,
    SessionNotFound,
    SQLiteTaskStore,
    TaskConflict,
    TaskNotFound,
    TaskStatus,
    ValidationError,
    VersionConflict,
)
from engagequeue._recurrence import SKIPPED_DETAIL_LIMIT
from engagequeue._state import EVENT_KINDS, allowed_moves, attempts_remain
from engagequeue._store_recurring import RECURRENCE_EVENT_KINDS

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SESSIONS = ("s1", "s2")
GROUPS = ("g1", "g2", "g3")
PENDING, PROCESSING, COMPLETED, FAILED, CANCELLED = (
    TaskStatus.PENDING,
    TaskStatus.PROCESSING,
    TaskStatus.COMPLETED,
    TaskStatus.FAILED,
    TaskStatus.CANCELLED,
)
_T = TypeVar("_T")
# Minutes from the model's now: "exactly now" is the boundary that matters most.
OFFSETS = st.sampled_from([-2, -1, 0, 0, 0, 1, 2, 10])
ACTIVE, PAUSED, ENDED = RecurrenceStatus.ACTIVE, RecurrenceStatus.PAUSED, RecurrenceStatus.ENDED
# UTC offsets in June: none of these zones changes its clocks then.
ZONE_OFFSETS = {"UTC": 0, "Europe/Paris": 120, "Asia/Kolkata": 330}
# ("minutely", n): every n minutes from the start; ("hourly", m): at minute m (wall clock).
RULES = st.sampled_from([("minutely", 3), ("minutely", 5), ("minutely", 7), ("hourly", 15)])
ZONES = st.sampled_from(sorted(ZONE_OFFSETS))


def rule_text(rule: tuple[str, int]) -> str:
    kind, value = rule
    return (
        f"FREQ=MINUTELY;INTERVAL={value}" if kind == "minutely" else f"FREQ=HOURLY;BYMINUTE={value}"
    )


@attrs.define
class ModelTask:
    id: str
    session_id: str
    group_id: str
    scheduled_at: datetime
    max_attempts: int
    status: TaskStatus = PENDING
    attempts: int = 0
    lease_expires_at: datetime | None = None
    worker: str | None = None
    version: int = 1
    events: list[str] = attrs.field(factory=lambda: ["created"])
    content: str = "x"
    recurrence_id: str | None = None


@attrs.define
class ModelRecurrence:
    """A recurrence as the model sees it; ``head`` is its pending occurrence's task id."""

    id: str
    session_id: str
    group_id: str
    content: str
    rule: tuple[str, int]
    timezone: str
    starts_at: datetime
    count: int | None
    status: RecurrenceStatus = ACTIVE
    issued: int = 0
    head: str | None = None
    head_at: datetime | None = None  # the head's rule time (an own edit may move the task)
    last_at: datetime | None = None  # the rule time of the occurrence before the head
    head_edited: bool = False
    events: list[str] = attrs.field(factory=list)

    def times(self) -> Iterator[datetime]:
        """Every rule time from ``starts_at`` on, computed without the library."""
        kind, value = self.rule
        if kind == "minutely":
            at = self.starts_at
            while True:
                yield at
                at += timedelta(minutes=value)
        offset = timedelta(minutes=ZONE_OFFSETS[self.timezone])
        local = (self.starts_at + offset).replace(minute=value, second=0, microsecond=0)
        at = local - offset
        if at < self.starts_at:
            at += timedelta(hours=1)
        while True:
            yield at
            at += timedelta(hours=1)

    def first_from(self, lower: datetime, *, inclusive: bool, issued: int) -> datetime | None:
        """The first time from ``lower`` on, unless ``issued`` already used up ``count``."""
        if self.count is not None and issued >= self.count:
            return None
        return next(t for t in self.times() if t > lower or (inclusive and t == lower))

    def following(
        self, previous: datetime, now: datetime
    ) -> tuple[datetime | None, list[datetime], int]:
        """After ``previous``: the next time past ``now``, the ones passed over, ``issued``."""
        issued, skipped = self.issued, []
        for at in self.times():
            if at <= previous:
                continue
            if self.count is not None and issued >= self.count:
                return None, skipped, issued
            issued += 1
            if at > now:
                return at, skipped, issued
            skipped.append(at)
        raise AssertionError("unreachable: the rule times never end")


class StoreAgainstModel(RuleBasedStateMachine):
    """Drives a real store; ``open_store`` is overridden per backend."""

    on_expired = "retry"
    tasks = Bundle("tasks")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory()
        self.now = T0
        self.store = self.run(self.open_store())
        self.sessions: dict[str, bool] = {}
        self.recurrences: dict[str, ModelRecurrence] = {}
        self.model: dict[str, ModelTask] = {}
        self.seen: dict[str, TaskStatus] = {}
        self.touched: set[str] = set()
        self.claims = 0

    async def open_store(self) -> Any:
        store = SQLiteTaskStore(
            Path(self.tmp.name) / "model.sqlite3", on_expired=self.on_expired, clock=self.clock
        )
        await store.open()
        return store

    async def close_store(self) -> None:
        await self.store.close()

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return self.loop.run_until_complete(coro)

    def clock(self) -> datetime:
        """The store's clock is the model's: cancels and recurrence changes happen at now."""
        return self.now

    def teardown(self) -> None:
        try:
            for task_id, task in self.model.items():
                kinds = [e.kind for e in self.run(self.store.events(task_id))]
                assert kinds == task.events
            for r in self.recurrences.values():
                kinds = [e.kind for e in self.run(self.store.recurrence_events(r.id))]
                assert kinds == r.events
        finally:
            self.run(self.close_store())
            self.loop.close()
            self.tmp.cleanup()

    # -- helpers ------------------------------------------------------------------------

    def live(self, task_id: str) -> ModelTask | None:
        return self.model.get(task_id)

    def expect_conflict_or_missing(self, task_id: str, call: Coroutine[Any, Any, Any]) -> None:
        task = self.live(task_id)
        if task is None:
            with pytest.raises(TaskNotFound):
                self.run(call)
        else:
            with pytest.raises(TaskConflict) as info:
                self.run(call)
            assert info.value.status is task.status

    # -- rules --------------------------------------------------------------------------

    @initialize(target=tasks)
    def first_session_and_task(self) -> str:
        self.run(self.store.add_session("s1"))
        self.sessions["s1"] = True
        return self.schedule("s1", "g1", 0, 2)

    @rule(session=st.sampled_from(SESSIONS))
    def add_session(self, session: str) -> None:
        self.run(self.store.add_session(session))
        self.sessions.setdefault(session, True)

    @rule(minutes=st.sampled_from([0, 1, 1, 2, 5, 20]))
    def advance_time(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @rule(
        target=tasks,
        session=st.sampled_from(SESSIONS),
        group=st.sampled_from(GROUPS),
        minutes=OFFSETS,
        max_attempts=st.integers(1, 3),
    )
    def schedule(self, session: str, group: str, minutes: int, max_attempts: int) -> str:
        when = self.now + timedelta(minutes=minutes)
        if session not in self.sessions:
            with pytest.raises(SessionNotFound):
                self.run(
                    self.store.schedule(
                        session, group, Payload.text("x"), when, max_attempts=max_attempts
                    )
                )
            return f"never-{uuid.uuid4().hex}"
        task = self.run(
            self.store.schedule(
                session, group, Payload.text(f"post at {minutes}"), when, max_attempts=max_attempts
            )
        )
        self.model[task.id] = ModelTask(
            task.id, session, group, when, max_attempts, content=f"post at {minutes}"
        )
        self.touched.add(task.id)
        return task.id

    @rule(
        limit=st.integers(1, 4),
        lease_minutes=st.sampled_from([1, 2, 5, 30]),
        send_now=st.booleans(),
    )
    def claim(self, limit: int, lease_minutes: int, send_now: bool = False) -> None:
        busy = {(t.session_id, t.group_id) for t in self.model.values() if t.status is PROCESSING}
        heads: dict[tuple[str, str], ModelTask] = {}
        for t in sorted(self.model.values(), key=lambda t: (t.scheduled_at, t.id)):
            if t.status is PENDING:
                heads.setdefault((t.session_id, t.group_id), t)
        expected = [
            t
            for t in sorted(heads.values(), key=lambda t: (t.scheduled_at, t.id))
            if t.scheduled_at <= self.now
            and self.sessions.get(t.session_id)
            and (t.session_id, t.group_id) not in busy
        ][:limit]
        worker = f"w{self.claims % 2}"  # two workers take turns: finishing needs the right one
        self.claims += 1
        claimed = self.run(
            self.store.claim_due(
                now=self.now,
                limit=limit,
                worker_id=worker,
                lease=timedelta(minutes=lease_minutes),
                sending_due_by=self.now if send_now else None,
            )
        )
        assert [t.id for t in claimed] == [t.id for t in expected]
        for t in expected:
            t.status = PROCESSING
            t.worker = worker
            t.version += 1
            t.lease_expires_at = self.now + timedelta(minutes=lease_minutes)
            t.events.append("claimed")
            if send_now:  # every claimed task is due by now
                t.events.append("sending")
            self.touched.add(t.id)
        for t in expected:  # a claimed pending occurrence creates the following one
            self.occurrence_left(t.id)

    @rule(limit=st.integers(1, 4), lease_minutes=st.sampled_from([1, 2, 5, 30]))
    def claim_more(self, limit: int, lease_minutes: int) -> None:
        """Claims are the heart of the store: give them twice the weight."""
        self.claim(limit, lease_minutes)

    def worker_of(self, task_id: str, own: bool | None) -> str | None:
        """The claim holder's id (``own``), another worker's (not ``own``) or None."""
        task = self.live(task_id)
        if own is None:
            return None
        holder = task.worker if task is not None else None
        return (holder or "w0") if own else "someone-else"

    @rule(task_id=tasks, own=st.booleans())
    def mark_sending(self, task_id: str, own: bool) -> None:
        task = self.live(task_id)
        call = self.store.mark_sending(task_id, worker_id=self.worker_of(task_id, own))
        if task is None or task.status is not PROCESSING or not own:
            self.expect_conflict_or_missing(task_id, call)
            return
        self.run(call)
        task.events.append("sending")
        self.touched.add(task.id)

    @rule(
        session=st.sampled_from(SESSIONS),
        group=st.sampled_from(GROUPS),
        statuses=st.sets(st.sampled_from(list(TaskStatus)), min_size=1),
        offset=st.sampled_from([0, 1, 3]),
    )
    def filtered_history(
        self, session: str, group: str, statuses: set[TaskStatus], offset: int
    ) -> None:
        if session not in self.sessions:
            return
        page = self.run(
            self.store.history(session, group, status=sorted(statuses), limit=3, offset=offset)
        )
        expected = sorted(
            (
                t
                for t in self.model.values()
                if t.session_id == session and t.group_id == group and t.status in statuses
            ),
            key=lambda t: (t.scheduled_at, t.id),
        )
        assert page.total == len(expected)
        assert [t.id for t in page.items] == [t.id for t in expected[offset : offset + 3]]

    def expect_version_conflict(self, task_id: str, call: Coroutine[Any, Any, Any]) -> None:
        task = self.live(task_id)
        if task is None:
            with pytest.raises(TaskNotFound):
                self.run(call)
            return
        with pytest.raises(VersionConflict) as info:
            self.run(call)
        assert info.value.status is task.status
        assert info.value.current_version == task.version

    @rule(task_id=tasks, minutes=OFFSETS, stale=st.none() | st.booleans())
    def edit(self, task_id: str, minutes: int, stale: bool | None = None) -> None:
        """An edit, plain (``stale`` None) or at the current version or a stale one."""
        task = self.live(task_id)
        when = self.now + timedelta(minutes=minutes)
        version = None
        if stale is not None and task is not None:
            version = task.version - 1 if stale else task.version
        call = self.store.edit(task_id, scheduled_at=when, if_version=version)
        if stale and task is not None and task.version > 1:
            self.expect_version_conflict(task_id, call)
            return
        if stale and task is not None:  # version 0 is invalid input
            with pytest.raises(ValidationError):
                self.run(call)
            return
        if task is None or task.status is not PENDING:
            self.expect_conflict_or_missing(task_id, call)
            return
        edited = self.run(call)
        assert edited.scheduled_at == when
        task.scheduled_at = when
        task.version += 1
        assert edited.version == task.version
        task.events.append("edited")
        self.touched.add(task_id)
        self.edited_on_its_own(task_id)

    @rule(task_id=tasks, stale=st.none() | st.booleans())
    def cancel(self, task_id: str, stale: bool | None = None) -> None:
        task = self.live(task_id)
        version = None
        if stale is not None and task is not None:
            version = task.version + 1 if stale else task.version
        call = self.store.cancel(task_id, if_version=version)
        if stale and task is not None:
            self.expect_version_conflict(task_id, call)
            return
        if task is None or task.status is not PENDING:
            self.expect_conflict_or_missing(task_id, call)
            return
        self.run(call)
        task.status = CANCELLED
        task.version += 1
        task.events.append("cancelled")
        self.touched.add(task_id)
        self.occurrence_left(task_id)  # that day only: the following one is created

    @rule(task_id=tasks, own=st.none() | st.booleans())
    def complete(self, task_id: str, own: bool | None = None) -> None:
        task = self.live(task_id)
        call = self.store.complete(task_id, message_id="m", worker_id=self.worker_of(task_id, own))
        if task is None or task.status is not PROCESSING or own is False:
            self.expect_conflict_or_missing(task_id, call)
            return
        self.run(call)
        task.status = COMPLETED
        task.attempts += 1
        task.version += 1
        task.lease_expires_at = None
        task.events.append("completed")
        self.touched.add(task_id)

    @rule(
        task_id=tasks,
        retry_minutes=st.none() | OFFSETS.filter(lambda m: m >= 0),
        own=st.none() | st.booleans(),
    )
    def fail(self, task_id: str, retry_minutes: int | None, own: bool | None = None) -> None:
        retry_at = None if retry_minutes is None else self.now + timedelta(minutes=retry_minutes)
        task = self.live(task_id)
        call = self.store.fail(
            task_id, "boom", retry_at=retry_at, worker_id=self.worker_of(task_id, own)
        )
        if task is None or task.status is not PROCESSING or own is False:
            self.expect_conflict_or_missing(task_id, call)
            return
        self.run(call)
        retry = retry_at is not None and attempts_remain(task.attempts, task.max_attempts)
        task.attempts += 1
        task.version += 1
        task.worker = None
        task.lease_expires_at = None
        if retry:
            task.status = PENDING
            task.scheduled_at = retry_at
            task.events.append("retried")
        else:
            task.status = FAILED
            task.events.append("failed")
        self.touched.add(task_id)

    @rule(task_id=tasks)
    def release(self, task_id: str) -> None:
        task = self.live(task_id)
        if task is None or task.status is not PROCESSING:
            self.expect_conflict_or_missing(task_id, self.store.release(task_id, "stopping"))
            return
        self.run(self.store.release(task_id, "stopping"))
        task.status = PENDING
        task.version += 1
        task.worker = None
        task.lease_expires_at = None
        task.events.append("released")
        self.touched.add(task_id)

    @rule(session=st.sampled_from(SESSIONS))
    def disconnect(self, session: str) -> None:
        if session not in self.sessions:
            with pytest.raises(SessionNotFound):
                self.run(self.store.session_disconnected(session))
            return
        released = self.run(self.store.session_disconnected(session))
        self.sessions[session] = False
        in_flight = [
            t for t in self.model.values() if t.session_id == session and t.status is PROCESSING
        ]
        assert released == len(in_flight)
        for t in in_flight:
            t.status = PENDING
            t.version += 1
            t.worker = None
            t.lease_expires_at = None
            t.events.append("released")
            self.touched.add(t.id)

    @rule(session=st.sampled_from(SESSIONS))
    def connect(self, session: str) -> None:
        if session not in self.sessions:
            with pytest.raises(SessionNotFound):
                self.run(self.store.session_connected(session))
            return
        self.run(self.store.session_connected(session))
        self.sessions[session] = True

    @rule(minutes=st.sampled_from([0, 1, 5, 30]))
    def recover(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)
        expired = [
            t
            for t in self.model.values()
            if t.status is PROCESSING
            and t.lease_expires_at is not None
            and t.lease_expires_at <= self.now
        ]
        assert self.run(self.store.recover_expired(now=self.now)) == len(expired)
        for t in expired:
            give_up = self.on_expired == "fail" or not attempts_remain(t.attempts, t.max_attempts)
            t.attempts += 1
            t.version += 1
            t.worker = None
            t.lease_expires_at = None
            t.status = FAILED if give_up else PENDING
            t.events.append("expired")
            self.touched.add(t.id)

    @precondition(lambda self: len(self.sessions) > 1)
    @rule(session=st.sampled_from(SESSIONS[1:]))
    def delete_session(self, session: str) -> None:
        if session not in self.sessions:
            return
        self.run(self.store.delete_session(session))
        del self.sessions[session]
        for task_id in [t.id for t in self.model.values() if t.session_id == session]:
            del self.model[task_id]
            self.seen.pop(task_id, None)
        for r in [r for r in self.recurrences.values() if r.session_id == session]:
            del self.recurrences[r.id]
            with pytest.raises(RecurrenceNotFound):
                self.run(self.store.get_recurrence(r.id))
            with pytest.raises(RecurrenceNotFound):
                self.run(self.store.recurrence_events(r.id))

    # -- recurring posts ----------------------------------------------------------------

    recurrence_ids = Bundle("recurrence_ids")

    def new_occurrence(self, r: ModelRecurrence, at: datetime) -> None:
        """The store created ``r``'s pending occurrence at ``at``: learn its id, model it."""
        stored = self.run(self.store.get_recurrence(r.id))
        task_id = stored.next_task_id
        assert task_id is not None
        assert task_id not in self.model
        self.model[task_id] = ModelTask(
            task_id, r.session_id, r.group_id, at, 3, content=r.content, recurrence_id=r.id
        )
        self.touched.add(task_id)
        r.head, r.head_at, r.head_edited = task_id, at, False
        r.events.append("scheduled")

    def end(self, r: ModelRecurrence) -> None:
        r.status, r.head, r.head_at, r.head_edited = ENDED, None, None, False
        r.events.append("ended")

    def cancel_head(self, r: ModelRecurrence) -> None:
        """A pause, an end or an edit that ends the series cancels the pending occurrence."""
        assert r.head is not None
        task = self.model[r.head]
        assert task.status is PENDING
        task.status = CANCELLED
        task.version += 1
        task.events.append("cancelled")
        self.touched.add(task.id)

    def head_of(self, task_id: str) -> ModelRecurrence | None:
        return next((r for r in self.recurrences.values() if r.head == task_id), None)

    def occurrence_left(self, task_id: str) -> None:
        """``task_id`` left pending (claimed or cancelled): if a recurrence's head, advance."""
        r = self.head_of(task_id)
        if r is None:
            return
        assert r.status is ACTIVE
        assert r.head_at is not None
        previous = r.head_at
        at, skipped, r.issued = r.following(previous, self.now)
        kept = min(len(skipped), SKIPPED_DETAIL_LIMIT) + (len(skipped) > SKIPPED_DETAIL_LIMIT)
        r.events += ["skipped"] * kept
        r.last_at = previous
        if at is None:
            self.end(r)
        else:
            self.new_occurrence(r, at)

    def edited_on_its_own(self, task_id: str) -> None:
        r = self.head_of(task_id)
        if r is not None:
            r.head_edited = True

    def expect_recurrence_refused(self, recurrence_id: str, call: Coroutine[Any, Any, Any]) -> bool:
        """Deleted: ``RecurrenceNotFound``; ended: ``RecurrenceConflict``. True if refused."""
        r = self.recurrences.get(recurrence_id)
        if r is None:
            with pytest.raises(RecurrenceNotFound):
                self.run(call)
            return True
        if r.status is ENDED:
            with pytest.raises(RecurrenceConflict) as info:
                self.run(call)
            assert info.value.status is ENDED
            return True
        return False

    @rule(
        target=recurrence_ids,
        session=st.sampled_from(SESSIONS),
        group=st.sampled_from(GROUPS),
        recurrence_rule=RULES,
        timezone=ZONES,
        start=st.sampled_from([-30, -7, -1, 0, 0, 1, 5]),
        count=st.none() | st.integers(1, 4),
    )
    def add_recurrence(
        self,
        session: str,
        group: str,
        recurrence_rule: tuple[str, int],
        timezone: str,
        start: int,
        count: int | None,
    ) -> str:
        starts_at = self.now + timedelta(minutes=start)
        call = self.store.add_recurrence(
            session,
            group,
            Payload.text(f"every {recurrence_rule}"),
            rule_text(recurrence_rule),
            timezone=timezone,
            starts_at=starts_at,
            count=count,
        )
        if session not in self.sessions:
            with pytest.raises(SessionNotFound):
                self.run(call)
            return f"never-{uuid.uuid4().hex}"
        added = self.run(call)
        assert (added.status, added.starts_at, added.count) == (ACTIVE, starts_at, count)
        r = ModelRecurrence(
            added.id,
            session,
            group,
            f"every {recurrence_rule}",
            recurrence_rule,
            timezone,
            starts_at,
            count,
            events=["created"],
        )
        self.recurrences[r.id] = r
        first = r.first_from(max(starts_at, self.now), inclusive=True, issued=0)
        assert first is not None
        r.issued = 1
        self.new_occurrence(r, first)
        assert added.next_task_id == r.head
        return r.id

    @initialize(
        target=recurrence_ids,
        recurrence_rule=RULES,
        timezone=ZONES,
        start=st.sampled_from([-30, -7, 0]),
        count=st.none() | st.integers(2, 6),
    )
    def first_recurrence(
        self, recurrence_rule: tuple[str, int], timezone: str, start: int, count: int | None
    ) -> str:
        """Every run has a recurrence from the start (initialize rules run in any order)."""
        self.run(self.store.add_session("s1"))
        self.sessions["s1"] = True
        return self.add_recurrence("s1", "g2", recurrence_rule, timezone, start, count)

    @rule(minutes=st.sampled_from([0, 1, 3, 10, 30]))
    def send_due(self, minutes: int) -> None:
        """A worker's round: time passes, what is due is claimed and completed."""
        self.now += timedelta(minutes=minutes)
        busy = {t.id for t in self.model.values() if t.status is PROCESSING}
        self.claim(4, 5)
        self.store_agrees_with_model()  # sees each move: pending, processing, completed
        for task_id in [
            t.id for t in self.model.values() if t.status is PROCESSING and t.id not in busy
        ]:
            self.complete(task_id, own=True)

    @rule(minutes=st.sampled_from([1, 3, 10]))
    def send_due_again(self, minutes: int) -> None:
        """Rounds are what moves a recurrence on: give them twice the weight."""
        self.send_due(minutes)

    @precondition(lambda self: any(t.recurrence_id for t in self.model.values()))
    @rule(target=tasks, pick=st.integers(0, 10**6))
    def occurrence(self, pick: int) -> str:
        """Hand an occurrence (the newest ones most often) to the task rules."""
        ids = [t.id for t in self.model.values() if t.recurrence_id is not None]
        return ids[-1 - pick % min(len(ids), 3)] if pick % 2 else ids[pick % len(ids)]

    @rule(
        recurrence_id=recurrence_ids,
        content=st.none() | st.sampled_from(["new text", "newer text"]),
        recurrence_rule=st.none() | RULES,
        timezone=st.none() | ZONES,
        count=st.none() | st.integers(1, 6),
    )
    def edit_recurrence(
        self,
        recurrence_id: str,
        content: str | None,
        recurrence_rule: tuple[str, int] | None,
        timezone: str | None,
        count: int | None,
    ) -> None:
        call = self.store.edit_recurrence(
            recurrence_id,
            payload=None if content is None else Payload.text(content),
            rule=None if recurrence_rule is None else rule_text(recurrence_rule),
            timezone=timezone,
            count=count,
        )
        nothing = content is recurrence_rule is timezone is count is None
        if nothing and recurrence_id in self.recurrences:
            with pytest.raises(ValidationError):
                self.run(call)
            return
        if self.expect_recurrence_refused(recurrence_id, call):
            return
        edited = self.run(call)
        r = self.recurrences[recurrence_id]
        r.content = r.content if content is None else content
        r.rule = r.rule if recurrence_rule is None else recurrence_rule
        r.timezone = r.timezone if timezone is None else timezone
        r.count = r.count if count is None else count
        r.events.append("edited")
        assert (edited.payload.content, edited.rule) == (r.content, rule_text(r.rule))
        if r.status is not ACTIVE or r.head is None or r.head_edited:
            return  # a paused series has no occurrence; one edited on its own keeps its edit
        head = self.model[r.head]
        if recurrence_rule is None and timezone is None:
            if r.count is not None and r.issued > r.count:  # the pending one is beyond count
                r.issued -= 1
                self.cancel_head(r)
                self.end(r)
            elif content is not None:
                head.content = content
                head.version += 1
                head.events.append("edited")
                self.touched.add(head.id)
            return
        # The new schedule's first time after the previous occurrence and now.
        lower = max(self.now, r.last_at if r.last_at is not None else r.starts_at)
        at = r.first_from(lower, inclusive=r.last_at is None, issued=r.issued - 1)
        if at is None:
            r.issued -= 1
            self.cancel_head(r)
            self.end(r)
            return
        moved = at != r.head_at
        r.head_at = at
        if moved or content is not None:
            head.scheduled_at = at
            head.content = r.content
            head.version += 1
            head.events.append("edited")
            self.touched.add(head.id)

    @precondition(lambda self: any(r.head for r in self.recurrences.values()))
    @rule(pick=st.integers(0, 10**6))
    def edit_occurrence_alone(self, pick: int) -> None:
        """A moderator rewrites one day's post: that occurrence keeps it whatever follows."""
        heads = [r for r in self.recurrences.values() if r.head is not None]
        r = heads[pick % len(heads)]
        assert r.head is not None
        text = f"today only {pick}"
        edited = self.run(self.store.edit(r.head, payload=Payload.text(text)))
        task = self.model[r.head]
        task.content = text
        task.version += 1
        assert (edited.payload.content, edited.version) == (text, task.version)
        task.events.append("edited")
        self.touched.add(task.id)
        r.head_edited = True

    @rule(recurrence_id=recurrence_ids)
    def pause_recurrence(self, recurrence_id: str) -> None:
        call = self.store.pause_recurrence(recurrence_id)
        if self.expect_recurrence_refused(recurrence_id, call):
            return
        paused = self.run(call)
        assert paused.status is PAUSED
        r = self.recurrences[recurrence_id]
        if r.status is PAUSED:
            return  # already paused: nothing changes, nothing is recorded
        self.cancel_head(r)
        r.issued = max(r.issued - 1, 0)  # the cancelled occurrence is not used up
        r.status, r.head, r.head_at, r.head_edited = PAUSED, None, None, False
        r.events.append("paused")

    @rule(recurrence_id=recurrence_ids)
    def resume_recurrence(self, recurrence_id: str) -> None:
        call = self.store.resume_recurrence(recurrence_id)
        if self.expect_recurrence_refused(recurrence_id, call):
            return
        self.run(call)
        r = self.recurrences[recurrence_id]
        if r.status is ACTIVE:
            return
        r.events.append("resumed")
        lower = self.now if r.last_at is None else max(self.now, r.last_at)
        at = r.first_from(lower, inclusive=False, issued=r.issued)
        if at is None:
            self.end(r)
            return
        r.status = ACTIVE
        r.issued += 1
        self.new_occurrence(r, at)

    @rule(recurrence_id=recurrence_ids)
    def end_recurrence(self, recurrence_id: str) -> None:
        r = self.recurrences.get(recurrence_id)
        call = self.store.end_recurrence(recurrence_id)
        if r is None:
            with pytest.raises(RecurrenceNotFound):
                self.run(call)
            return
        ended = self.run(call)
        assert ended.status is ENDED
        if r.status is ENDED:
            return  # already ended: unchanged
        if r.head is not None:
            self.cancel_head(r)
        self.end(r)

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def store_agrees_with_model(self) -> None:
        for session in self.sessions:
            for group in GROUPS:
                page = self.run(self.store.history(session, group, limit=500))
                expected = sorted(
                    (
                        t
                        for t in self.model.values()
                        if t.session_id == session and t.group_id == group
                    ),
                    key=lambda t: (t.scheduled_at, t.id),
                )
                assert page.total == len(expected)
                observed = [
                    (
                        t.id,
                        t.status,
                        t.attempts,
                        t.scheduled_at,
                        t.version,
                        t.payload.content,
                        t.recurrence_id,
                    )
                    for t in page.items
                ]
                assert observed == [
                    (
                        t.id,
                        t.status,
                        t.attempts,
                        t.scheduled_at,
                        t.version,
                        t.content,
                        t.recurrence_id,
                    )
                    for t in expected
                ]
                in_flight = [t for t in page.items if t.status is PROCESSING]
                assert len(in_flight) <= 1
                for t in page.items:
                    previous = self.seen.get(t.id)
                    if previous is not None and previous is not t.status:
                        assert (previous, t.status) in allowed_moves()
                    self.seen[t.id] = t.status

    @invariant()
    def events_agree_with_model(self) -> None:
        for task_id in self.touched:
            if task_id in self.model:
                kinds = [e.kind for e in self.run(self.store.events(task_id))]
                assert kinds == self.model[task_id].events
                assert set(kinds) <= EVENT_KINDS
        self.touched.clear()

    @invariant()
    def recurrences_agree_with_model(self) -> None:
        for r in self.recurrences.values():
            stored = self.run(self.store.get_recurrence(r.id))
            head = None if r.head is None else self.model[r.head]
            assert (
                stored.status,
                stored.next_task_id,
                stored.next_at,
                stored.issued,
                stored.payload.content,
                stored.count,
            ) == (
                r.status,
                r.head,
                None if head is None else head.scheduled_at,
                r.issued,
                r.content,
                r.count,
            )
            # Exactly one pending occurrence never claimed while active, none otherwise
            # (a claimed one retried or released is pending again, but is not the next).
            fresh = [
                t.id
                for t in self.model.values()
                if t.recurrence_id == r.id and t.status is PENDING and "claimed" not in t.events
            ]
            assert fresh == ([r.head] if r.status is ACTIVE else [])
            pending = self.run(
                self.store.history(
                    r.session_id, r.group_id, recurrence_id=r.id, status="pending", limit=500
                )
            )
            assert {t.id for t in pending.items} == {
                t.id for t in self.model.values() if t.recurrence_id == r.id and t.status is PENDING
            }
            kinds = [e.kind for e in self.run(self.store.recurrence_events(r.id))]
            assert kinds == r.events
            assert set(kinds) <= RECURRENCE_EVENT_KINDS
        for session in self.sessions:
            for group in GROUPS:
                listed = self.run(self.store.recurrences(session, group))
                assert [(x.id, x.status) for x in listed] == [
                    (r.id, r.status)
                    for r in self.recurrences.values()
                    if (r.session_id, r.group_id) == (session, group)
                ]


class ExpireToFail(StoreAgainstModel):
    on_expired = "fail"


class GroupWalk(StoreAgainstModel):
    """A claim window of one task: every claim that needs more walks group by group."""

    async def open_store(self) -> Any:
        store = await super().open_store()
        store._claim_window = 1
        return store


_SETTINGS = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

TestSQLiteStoreAgainstModel = StoreAgainstModel.TestCase
TestSQLiteStoreAgainstModel.settings = _SETTINGS
TestSQLiteExpireToFailAgainstModel = ExpireToFail.TestCase
TestSQLiteExpireToFailAgainstModel.settings = settings(_SETTINGS, max_examples=25)
TestSQLiteGroupWalkAgainstModel = GroupWalk.TestCase
TestSQLiteGroupWalkAgainstModel.settings = settings(_SETTINGS, max_examples=40)


class PostgresStoreAgainstModel(StoreAgainstModel):
    """The same model, driving a PostgresTaskStore in a fresh schema."""

    async def open_store(self) -> Any:
        from engagequeue import PostgresTaskStore
        from store_support import POSTGRES_DSN

        store = PostgresTaskStore(
            POSTGRES_DSN,
            schema=f"eq_model_{uuid.uuid4().hex[:12]}",
            on_expired=self.on_expired,
            clock=self.clock,
        )
        await store.open()
        return store

    async def close_store(self) -> None:
        await self.store.drop_schema()
        await self.store.close()


TestPostgresStoreAgainstModel = pytest.mark.postgres(PostgresStoreAgainstModel.TestCase)
TestPostgresStoreAgainstModel.settings = settings(_SETTINGS, max_examples=20)
