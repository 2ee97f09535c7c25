"""The real store and a plain in-Python model, side by side, under random operation sequences.

After every step: the store agrees with the model on every task's status, attempts and
time; history equals the model; no two tasks of a group are in flight; every status change
the store made is a legal move of the state machine; the audit trail matches.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import Coroutine
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
    SessionNotFound,
    SQLiteTaskStore,
    TaskConflict,
    TaskNotFound,
    TaskStatus,
    ValidationError,
    VersionConflict,
)
from engagequeue._state import EVENT_KINDS, allowed_moves

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


class StoreAgainstModel(RuleBasedStateMachine):
    """Drives a real store; ``open_store`` is overridden per backend."""

    on_expired = "retry"
    tasks = Bundle("tasks")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory()
        self.store = self.run(self.open_store())
        self.now = T0
        self.sessions: dict[str, bool] = {}
        self.model: dict[str, ModelTask] = {}
        self.seen: dict[str, TaskStatus] = {}
        self.touched: set[str] = set()
        self.claims = 0

    async def open_store(self) -> Any:
        store = SQLiteTaskStore(Path(self.tmp.name) / "model.sqlite3", on_expired=self.on_expired)
        await store.open()
        return store

    async def close_store(self) -> None:
        await self.store.close()

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        try:
            for task_id, task in self.model.items():
                kinds = [e.kind for e in self.run(self.store.events(task_id))]
                assert kinds == task.events
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
        self.model[task.id] = ModelTask(task.id, session, group, when, max_attempts)
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
        task.attempts += 1
        task.version += 1
        task.worker = None
        task.lease_expires_at = None
        if retry_at is not None and task.attempts < task.max_attempts:
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
            t.attempts += 1
            t.version += 1
            t.worker = None
            t.lease_expires_at = None
            give_up = self.on_expired == "fail" or t.attempts >= t.max_attempts
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
                    (t.id, t.status, t.attempts, t.scheduled_at, t.version) for t in page.items
                ]
                assert observed == [
                    (t.id, t.status, t.attempts, t.scheduled_at, t.version) for t in expected
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
            POSTGRES_DSN, schema=f"eq_model_{uuid.uuid4().hex[:12]}", on_expired=self.on_expired
        )
        await store.open()
        return store

    async def close_store(self) -> None:
        await self.store.drop_schema()
        await self.store.close()


TestPostgresStoreAgainstModel = pytest.mark.postgres(PostgresStoreAgainstModel.TestCase)
TestPostgresStoreAgainstModel.settings = settings(_SETTINGS, max_examples=20)
