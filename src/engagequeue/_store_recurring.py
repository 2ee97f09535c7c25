"""What both engines share for recurring posts: each operation planned and run once.

The ``plan_*`` functions (no SQL) say what an operation writes: the new state of the
recurrence, at most one occurrence to insert, whether the pending occurrence is cancelled
or changed, the events. ``RecurrenceChanges`` holds the store methods and the flow that
reads a recurrence's row into a :class:`RecurrenceState`, asks for the plan and writes it
in the transaction that read the row; ``RecurrenceDialect`` the SQL text both engines
share but for placeholders and table names. An engine's mixin supplies only its SQL, row
encoding, locking and connection handling, as hooks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Coroutine, Iterable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

import attrs

from ._errors import RecurrenceConflict, RecurrenceNotFound, TaskConflict, ValidationError
from ._models import MediaType, Payload, Task, TaskEvent, check_identifier
from ._recurrence import (
    Following,
    Recurrence,
    RecurrenceStatus,
    Schedule,
    check_count,
    skipped_details,
)
from ._store_args import NewTask, check_max_attempts, check_payload, new_task_id, now_or
from ._store_rows import unchecked
from ._times import isoformat, parse_instant

if TYPE_CHECKING:
    from ._store_args import Clock

__all__ = [
    "RECURRENCE_COLUMNS",
    "RECURRENCE_EVENT_KINDS",
    "Flow",
    "OccurrenceChange",
    "RecurrenceChanges",
    "RecurrenceDialect",
    "RecurrencePlan",
    "RecurrenceState",
    "cancel_detail",
    "check_recurrence_status",
    "dump_detail",
    "occurrence_task",
    "plan_add",
    "plan_advance",
    "plan_edit",
    "plan_end",
    "plan_pause",
    "plan_resume",
    "state_reader",
    "state_values",
]

_C = TypeVar("_C")
_A = TypeVar("_A")
_T = TypeVar("_T")

OccurrenceChange = tuple[str, str, str, Sequence[Any]]
"""A conditional change of a task: the operation, the task id, a SET clause, its parameters."""

Flow = Coroutine[Any, Any, _T]
"""A flow of ``RecurrenceChanges`` that an engine runs in a transaction or a read."""

RECURRENCE_EVENT_KINDS: Final = frozenset(
    {"created", "edited", "paused", "resumed", "scheduled", "skipped", "ended"}
)
"""Every kind of event a store writes on a recurrence (``scheduled``: an occurrence was
created as a task, its id in the detail)."""


@attrs.frozen
class RecurrenceState:
    """A recurrence as stored: the public value plus what the engines keep to advance it.

    ``head_at`` is the rule time of the pending occurrence (``recurrence.next_task_id``),
    ``last_at`` the rule time of the one before it, ``head_edited`` whether the pending
    occurrence was edited on its own (so ``edit_recurrence`` leaves it alone).
    """

    recurrence: Recurrence
    head_at: datetime | None = None
    last_at: datetime | None = None
    head_edited: bool = False

    @property
    def id(self) -> str:
        """The recurrence id."""
        return self.recurrence.id

    def schedule(self) -> Schedule:
        """The recurrence's occurrences (its rule, zone, start and end)."""
        r = self.recurrence
        return Schedule.build(r.rule, timezone=r.timezone, starts_at=r.starts_at, until=r.until)


@attrs.frozen
class RecurrencePlan:
    """What an operation writes, in one transaction.

    ``state`` replaces the stored row; ``new_task`` (with ``number``, its occurrence
    number) is inserted as the pending occurrence; ``cancel_task`` (the previous pending
    occurrence) is cancelled if still pending; ``update_task`` changes the pending
    occurrence (payload and/or time) if still pending; ``events`` go on the recurrence.
    """

    state: RecurrenceState
    events: tuple[tuple[str, dict[str, Any]], ...] = ()
    new_task: NewTask | None = None
    cancel_task: str | None = None
    update_task: tuple[str, Payload | None, datetime | None] | None = None
    changed: bool = True

    @property
    def created_detail(self) -> dict[str, Any]:
        """The extra detail of the new occurrence's ``created`` event."""
        return {"recurrence_id": self.state.id, "occurrence": self.state.recurrence.issued}


def check_recurrence_status(value: object) -> tuple[RecurrenceStatus, ...] | None:
    """Normalise ``recurrences``' ``status`` filter: one status, several, or ``None``."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)  # type: ignore[call-overload]
    try:
        statuses = tuple(dict.fromkeys(RecurrenceStatus(str(s).strip().lower()) for s in items))
    except ValueError:
        allowed = ", ".join(s.value for s in RecurrenceStatus)
        raise ValidationError(
            f"status must be one of {allowed}; got {value!r}", field="status"
        ) from None
    if not statuses:
        raise ValidationError("status must name at least one status", field="status")
    return statuses


def _occurrence(state: RecurrenceState, at: datetime) -> NewTask:
    r = state.recurrence
    return NewTask(
        id=new_task_id(),
        session_id=r.session_id,
        group_id=r.group_id,
        payload=r.payload,
        scheduled_at=at,
        max_attempts=r.max_attempts,
    )


def _apply(
    state: RecurrenceState,
    following: Following,
    now: datetime,
    *,
    previous: datetime | None,
    events: list[tuple[str, dict[str, Any]]],
) -> RecurrencePlan:
    """Move ``state`` to ``following``: a new pending occurrence, or the end of the series."""
    events.extend(("skipped", detail) for detail in skipped_details(following))
    r = state.recurrence
    if following.next_at is None:
        ended = attrs.evolve(
            r,
            status=RecurrenceStatus.ENDED,
            next_at=None,
            next_task_id=None,
            issued=following.issued,
            updated_at=now,
        )
        reason = "count" if r.count is not None and following.issued >= r.count else "until"
        events.append(("ended", {"reason": reason}))
        return RecurrencePlan(
            RecurrenceState(ended, None, previous, head_edited=False), tuple(events)
        )
    state = attrs.evolve(state, recurrence=attrs.evolve(r, issued=following.issued))
    task = _occurrence(state, following.next_at)
    moved = attrs.evolve(
        state.recurrence,
        status=RecurrenceStatus.ACTIVE,
        next_at=following.next_at,
        next_task_id=task.id,
        updated_at=now,
    )
    events.append(
        (
            "scheduled",
            {
                "task_id": task.id,
                "scheduled_at": isoformat(following.next_at),
                "occurrence": following.issued,
            },
        )
    )
    new_state = RecurrenceState(moved, following.next_at, previous, head_edited=False)
    return RecurrencePlan(new_state, tuple(events), new_task=task)


def _end_reason(recurrence: Recurrence) -> str:
    if recurrence.count is not None and recurrence.issued >= recurrence.count:
        return "count"
    return "until"


def plan_add(
    recurrence_id: str,
    session_id: object,
    group_id: object,
    payload: object,
    rule: object,
    *,
    timezone: object,
    starts_at: object,
    until: object,
    count: object,
    max_attempts: object,
    now: datetime,
) -> RecurrencePlan:
    """Validate ``add_recurrence``'s arguments and plan the recurrence with its first occurrence.

    ``starts_at`` defaults to ``now``; occurrences before ``now`` (a ``starts_at`` in the
    past) were never due and are not recorded as skipped.
    """
    sid = check_identifier(session_id, "session_id")
    gid = check_identifier(group_id, "group_id")
    body = check_payload(payload)
    attempts = check_max_attempts(max_attempts)
    limit = check_count(count)
    start = now if starts_at is None else parse_instant(starts_at, "starts_at")
    schedule = Schedule.build(rule, timezone=timezone, starts_at=start, until=until)
    first = schedule.next_from(max(start, now), inclusive=True, issued=0, count=limit)
    if first.next_at is None:
        raise ValidationError(
            "the recurrence has no occurrence left after now (see starts_at and until)",
            field="until" if schedule.until is not None else "starts_at",
        )
    recurrence = Recurrence(
        id=recurrence_id,
        session_id=sid,
        group_id=gid,
        payload=body,
        rule=schedule.rule,
        timezone=schedule.timezone,
        starts_at=schedule.starts_at,
        until=schedule.until,
        count=limit,
        status=RecurrenceStatus.ACTIVE,
        next_at=None,
        created_at=now,
        updated_at=now,
        max_attempts=attempts,
    )
    events: list[tuple[str, dict[str, Any]]] = [("created", _summary(recurrence))]
    return _apply(RecurrenceState(recurrence), first, now, previous=None, events=events)


def _summary(recurrence: Recurrence) -> dict[str, Any]:
    return {
        "rule": recurrence.rule,
        "timezone": recurrence.timezone,
        "starts_at": isoformat(recurrence.starts_at),
        "until": None if recurrence.until is None else isoformat(recurrence.until),
        "count": recurrence.count,
        "media_type": recurrence.payload.media_type.value,
    }


def plan_advance(state: RecurrenceState, now: datetime, *, reason: str) -> RecurrencePlan:
    """The pending occurrence was claimed or cancelled (``reason``): plan the following one.

    The following occurrence is the first after both the one that left and ``now``; the
    ones in between are recorded as ``skipped``.
    """
    r = state.recurrence
    if r.status is not RecurrenceStatus.ACTIVE or state.head_at is None:
        return RecurrencePlan(state, changed=False)
    following = state.schedule().following(state.head_at, now=now, issued=r.issued, count=r.count)
    events: list[tuple[str, dict[str, Any]]] = []
    plan = _apply(state, following, now, previous=state.head_at, events=events)
    return attrs.evolve(
        plan,
        events=tuple(
            (k, {**d, "after": reason}) if k == "scheduled" else (k, d) for k, d in plan.events
        ),
    )


def plan_pause(state: RecurrenceState, now: datetime) -> RecurrencePlan:
    """Pause: cancel the pending occurrence and create no more until resumed."""
    r = state.recurrence
    if r.status is RecurrenceStatus.PAUSED:
        return RecurrencePlan(state, changed=False)
    if r.status is RecurrenceStatus.ENDED:
        raise RecurrenceConflict(r.id, r.status, "pause")
    paused = attrs.evolve(
        r, status=RecurrenceStatus.PAUSED, next_at=None, next_task_id=None, updated_at=now
    )
    detail = {"cancelled_task_id": r.next_task_id}
    # The cancelled occurrence does not count towards count: a paused clock.
    issued = r.issued - 1 if r.next_task_id is not None else r.issued
    paused = attrs.evolve(paused, issued=max(issued, 0))
    return RecurrencePlan(
        RecurrenceState(paused, None, state.last_at),
        (("paused", detail),),
        cancel_task=r.next_task_id,
    )


def plan_resume(state: RecurrenceState, now: datetime) -> RecurrencePlan:
    """Resume: the first occurrence after ``now`` becomes the pending one."""
    r = state.recurrence
    if r.status is RecurrenceStatus.ACTIVE:
        return RecurrencePlan(state, changed=False)
    if r.status is RecurrenceStatus.ENDED:
        raise RecurrenceConflict(r.id, r.status, "resume")
    lower = max(now, state.last_at) if state.last_at is not None else now
    following = state.schedule().next_from(lower, inclusive=False, issued=r.issued, count=r.count)
    events: list[tuple[str, dict[str, Any]]] = [("resumed", {})]
    return _apply(state, following, now, previous=state.last_at, events=events)


def plan_end(state: RecurrenceState, now: datetime) -> RecurrencePlan:
    """End for good: cancel the pending occurrence."""
    r = state.recurrence
    if r.status is RecurrenceStatus.ENDED:
        return RecurrencePlan(state, changed=False)
    ended = attrs.evolve(
        r, status=RecurrenceStatus.ENDED, next_at=None, next_task_id=None, updated_at=now
    )
    return RecurrencePlan(
        RecurrenceState(ended, None, state.last_at),
        (("ended", {"reason": "ended", "cancelled_task_id": r.next_task_id}),),
        cancel_task=r.next_task_id,
    )


_UNSET: Final[Any] = object()


def plan_edit(
    state: RecurrenceState,
    now: datetime,
    *,
    payload: object = None,
    rule: object = None,
    timezone: object = None,
    until: object = None,
    count: object = None,
) -> RecurrencePlan:
    """Change the recurrence; the pending occurrence follows unless it was edited on its own.

    A new rule, zone or end moves the pending occurrence to the first occurrence of the new
    schedule after the previous occurrence and ``now`` (or ends the series when there is
    none); a new payload replaces its payload.
    """
    r = state.recurrence
    if all(v is None for v in (payload, rule, timezone, until, count)):
        raise ValidationError(
            "edit_recurrence needs one of payload, rule, timezone, until or count",
            field="payload",
        )
    if r.status is RecurrenceStatus.ENDED:
        raise RecurrenceConflict(r.id, r.status, "edit")
    body = r.payload if payload is None else check_payload(payload)
    limit = r.count if count is None else check_count(count)
    schedule = Schedule.build(
        r.rule if rule is None else rule,
        timezone=r.timezone if timezone is None else timezone,
        starts_at=r.starts_at,
        until=r.until if until is None else until,
    )
    changed = attrs.evolve(
        r,
        payload=body,
        rule=schedule.rule,
        timezone=schedule.timezone,
        until=schedule.until,
        count=limit,
        updated_at=now,
    )
    detail: dict[str, Any] = {
        name: value
        for name, value in (
            ("rule", None if rule is None else schedule.rule),
            ("timezone", None if timezone is None else schedule.timezone),
            ("until", None if until is None else isoformat(schedule.until)),  # type: ignore[arg-type]
            ("count", limit if count is not None else None),
        )
        if value is not None
    }
    if payload is not None:
        detail["payload"] = True
        detail["media_type"] = body.media_type.value
    events: list[tuple[str, dict[str, Any]]] = [("edited", detail)]
    new_state = attrs.evolve(state, recurrence=changed)
    if r.status is not RecurrenceStatus.ACTIVE or r.next_task_id is None or state.head_edited:
        return RecurrencePlan(new_state, tuple(events))
    moves = rule is not None or timezone is not None
    if not moves:
        beyond = (limit is not None and r.issued > limit) or (
            schedule.until is not None
            and state.head_at is not None
            and state.head_at > schedule.until
        )
        if not beyond:
            return RecurrencePlan(
                new_state,
                tuple(events),
                update_task=None if payload is None else (r.next_task_id, body, None),
            )
        following = Following(None, r.issued - 1)
    else:
        # The new rule's times before now never existed: the pending occurrence moves to
        # the first one after the previous occurrence and now.
        lower = max(now, state.last_at) if state.last_at is not None else max(now, r.starts_at)
        following = schedule.next_from(
            lower, inclusive=state.last_at is None, issued=r.issued - 1, count=limit
        )
    if following.next_at is None:
        ended = attrs.evolve(
            changed,
            status=RecurrenceStatus.ENDED,
            next_at=None,
            next_task_id=None,
            issued=r.issued - 1,
        )
        events.append(("ended", {"reason": _end_reason(ended)}))
        return RecurrencePlan(
            RecurrenceState(ended, None, state.last_at),
            tuple(events),
            cancel_task=r.next_task_id,
        )
    moved = attrs.evolve(changed, next_at=following.next_at)
    return RecurrencePlan(
        RecurrenceState(moved, following.next_at, state.last_at),
        tuple(events),
        update_task=(
            r.next_task_id,
            body if payload is not None else None,
            following.next_at if following.next_at != state.head_at else None,
        ),
    )


RECURRENCE_COLUMNS: Final = (
    "id, session_id, group_id, media_type, content, media_url, mimetype, filename, rule, "
    "timezone, starts_at, until, count, status, max_attempts, issued, next_task_id, next_at, "
    "head_at, last_at, head_edited, created_at, updated_at"
)
"""The recurrence columns every store writes and selects, in the order below reads them."""

_STATUSES: Final = {s.value: s for s in RecurrenceStatus}


def state_reader(instant: Callable[[Any], datetime]) -> Callable[[Sequence[Any]], RecurrenceState]:
    """Return a function that builds a ``RecurrenceState`` from a row of ``RECURRENCE_COLUMNS``.

    ``instant`` turns a stored time into an aware UTC datetime.
    """

    def optional(value: object) -> datetime | None:
        return None if value is None else instant(value)

    def read(row: Sequence[Any]) -> RecurrenceState:
        payload = Payload(
            MediaType(row[3]), content=row[4], media_url=row[5], mimetype=row[6], filename=row[7]
        )
        recurrence = Recurrence(
            id=row[0],
            session_id=row[1],
            group_id=row[2],
            payload=payload,
            rule=row[8],
            timezone=row[9],
            starts_at=instant(row[10]),
            until=optional(row[11]),
            count=row[12],
            status=_STATUSES[row[13]],
            max_attempts=row[14],
            issued=row[15],
            next_task_id=row[16],
            next_at=optional(row[17]),
            created_at=instant(row[21]),
            updated_at=instant(row[22]),
        )
        return RecurrenceState(
            recurrence, optional(row[18]), optional(row[19]), head_edited=bool(row[20])
        )

    return read


def state_values(state: RecurrenceState, encode: Callable[[datetime], Any]) -> tuple[Any, ...]:
    """The row of ``state`` in ``RECURRENCE_COLUMNS`` order; ``encode`` stores an instant."""

    def optional(value: datetime | None) -> Any:  # noqa: ANN401 - the engine's time type
        return None if value is None else encode(value)

    r = state.recurrence
    p = r.payload
    return (
        r.id,
        r.session_id,
        r.group_id,
        p.media_type.value,
        p.content,
        p.media_url,
        p.mimetype,
        p.filename,
        r.rule,
        r.timezone,
        encode(r.starts_at),
        optional(r.until),
        r.count,
        r.status.value,
        r.max_attempts,
        r.issued,
        r.next_task_id,
        optional(r.next_at),
        optional(state.head_at),
        optional(state.last_at),
        state.head_edited,
        encode(r.created_at),
        encode(r.updated_at),
    )


def occurrence_task(plan: RecurrencePlan) -> NewTask | None:
    """The plan's new occurrence, carrying its recurrence id."""
    if plan.new_task is None:
        return None
    return attrs.evolve(plan.new_task, recurrence_id=plan.state.id)


def cancel_detail(plan: RecurrencePlan) -> dict[str, Any]:
    """The detail of the ``cancelled`` event of an occurrence a pause or an end cancels."""
    status = plan.state.recurrence.status.value
    return {"reason": f"recurrence {'paused' if status == 'paused' else 'ended'}"}


def recurrence_event(row: Sequence[Any], instant: Callable[[Any], datetime]) -> TaskEvent:
    """A recurrence event from its row ``(seq, recurrence_id, at, kind, detail)``."""
    event: TaskEvent = unchecked(
        TaskEvent,
        id=row[0],
        task_id=row[1],
        at=instant(row[2]),
        kind=row[3],
        detail=MappingProxyType(json.loads(row[4])),
    )
    return event


def dump_detail(detail: Mapping[str, Any]) -> str:
    """An event's detail as stored (JSON text)."""
    return json.dumps(dict(detail), default=str)


_NAMES: Final = [c.strip() for c in RECURRENCE_COLUMNS.split(",")]
_PAYLOAD_COLUMNS: Final = ("media_type", "content", "media_url", "mimetype", "filename")


class RecurrenceDialect:
    """How one engine spells the recurrence SQL and stores instants.

    ``prefix`` goes before each table name, ``mark`` is the placeholder; ``any_of(column,
    values)`` returns the condition that ``column`` is one of ``values`` and its parameters;
    ``lock`` ends a write's ``SELECT`` to lock the rows it reads (empty where the write
    transaction already excludes every other writer); ``insert_tail`` ends the ``INSERT``
    of a recurrence. ``encode`` stores an instant, ``decode`` reads one as aware UTC.
    """

    __slots__ = (
        "any_of",
        "decode",
        "encode",
        "events",
        "insert",
        "lock",
        "mark",
        "read_state",
        "select",
        "task_event",
        "update",
    )

    def __init__(
        self,
        prefix: str,
        mark: str,
        *,
        any_of: Callable[[str, Sequence[Any]], tuple[str, list[Any]]],
        encode: Callable[[datetime], Any],
        decode: Callable[[Any], datetime],
        lock: str = "",
        insert_tail: str = "",
    ) -> None:
        self.mark: Final = mark
        self.any_of: Final = any_of
        self.encode: Final = encode
        self.decode: Final = decode
        self.lock: Final = lock
        self.read_state: Final = state_reader(decode)
        marks = ", ".join([mark] * len(_NAMES))
        self.select: Final = f"SELECT {RECURRENCE_COLUMNS} FROM {prefix}recurrences"
        self.insert: Final = (
            f"INSERT INTO {prefix}recurrences ({RECURRENCE_COLUMNS}) VALUES ({marks}){insert_tail}"
        )
        self.update: Final = (
            f"UPDATE {prefix}recurrences SET "
            + ", ".join(f"{c} = {mark}" for c in _NAMES[1:])
            + f" WHERE id = {mark}"
        )
        self.task_event: Final = (
            f"INSERT INTO {prefix}task_events (task_id, at, kind, detail) "
            f"VALUES ({mark}, {mark}, {mark}, {mark})"
        )
        self.events: Final = (
            f"SELECT seq, recurrence_id, at, kind, detail FROM {prefix}recurrence_events "
            f"WHERE recurrence_id = {mark} ORDER BY seq"
        )

    def row(self, state: RecurrenceState) -> tuple[Any, ...]:
        """The parameters of ``insert`` (the stored row of ``state``)."""
        return state_values(state, self.encode)

    def occurrence_changes(
        self, at: object, payload: Payload | None, scheduled_at: datetime | None
    ) -> tuple[str, list[Any], dict[str, Any]]:
        """How a recurrence's change updates its pending occurrence, at the store's time ``at``.

        Returns the SET clause, its parameters (none when nothing changes) and the
        ``edited`` event's detail.
        """
        parts: list[str] = []
        params: list[Any] = []
        detail: dict[str, Any] = {"by": "recurrence"}
        if payload is not None:
            parts += [f"{c} = {self.mark}" for c in _PAYLOAD_COLUMNS]
            params += [
                payload.media_type.value,
                payload.content,
                payload.media_url,
                payload.mimetype,
                payload.filename,
            ]
            detail["payload"] = True
            detail["media_type"] = payload.media_type.value
        if scheduled_at is not None:
            parts.append(f"scheduled_at = {self.mark}")
            params.append(self.encode(scheduled_at))
            detail["scheduled_at"] = isoformat(scheduled_at)
        if not params:
            return "", [], detail
        return f"updated_at = {self.mark}, {', '.join(parts)}", [at, *params], detail


class RecurrenceChanges(Generic[_C, _A]):
    """The recurring methods of both stores, written once over small engine hooks.

    ``_C`` is the engine's connection, ``_A`` its stored time (``_now``). Each public
    method validates, plans (the ``plan_*`` functions) and wakes here; the engine's mixin
    supplies the hooks below that raise ``NotImplementedError``: its SQL spelling
    (``_dialect``), running a flow in a write transaction or a read, executing and
    fetching, and the few writes whose SQL differs. The hooks are coroutines; an engine
    whose calls block (SQLite) runs the whole flow, which then never suspends, on the
    thread that holds its transaction.
    """

    if TYPE_CHECKING:
        _clock: Clock

        def _now(self) -> _A: ...
        def _wake(self) -> None: ...

    # -- engine hooks ----------------------------------------------------------------------

    @property
    def _dialect(self) -> RecurrenceDialect:
        raise NotImplementedError

    async def _recurrence_write(
        self, run: Callable[[_C], Flow[_T]], *, idempotent: bool = False
    ) -> _T:
        """Run ``run`` in one write transaction (``idempotent``: safe to repeat)."""
        raise NotImplementedError

    async def _recurrence_read(
        self, run: Callable[[_C], Flow[_T]], *, snapshot: bool = False
    ) -> _T:
        """Run ``run`` on a reading connection (``snapshot``: in one read transaction)."""
        raise NotImplementedError

    async def _recurrence_execute(self, conn: _C, sql: str, params: Sequence[Any]) -> None:
        raise NotImplementedError

    async def _recurrence_rows(
        self, conn: _C, sql: str, params: Sequence[Any]
    ) -> list[Sequence[Any]]:
        raise NotImplementedError

    async def _lock_pending_occurrence(self, conn: _C, recurrence_id: str) -> None:
        """Before a change locks the recurrence: lock its pending occurrence (if need be)."""
        raise NotImplementedError

    async def _may_insert(self, conn: _C, state: RecurrenceState) -> bool:
        """Before a new recurrence is written: check its session; ``False``: already written."""
        raise NotImplementedError

    async def _insert_occurrence(self, conn: _C, task: NewTask, detail: dict[str, Any]) -> None:
        raise NotImplementedError

    async def _conditional_change(self, conn: _C, change: OccurrenceChange) -> None:
        """Apply ``change`` to a pending task; ``TaskConflict`` or ``LookupError`` if it is not."""
        raise NotImplementedError

    async def _insert_recurrence_events(
        self,
        conn: _C,
        recurrence_id: str,
        at: _A,
        events: Sequence[tuple[str, str]],
    ) -> None:
        """Record ``events`` (kind, detail as JSON text) on the recurrence, in order."""
        raise NotImplementedError

    # -- the flows, inside a transaction ---------------------------------------------------

    async def _load_state(self, conn: _C, recurrence_id: str, *, lock: bool) -> RecurrenceState:
        d = self._dialect
        if lock:
            await self._lock_pending_occurrence(conn, recurrence_id)
        tail = d.lock if lock else ""
        rows = await self._recurrence_rows(
            conn, f"{d.select} WHERE id = {d.mark}{tail}", (recurrence_id,)
        )
        if not rows:
            raise RecurrenceNotFound(recurrence_id)
        return d.read_state(rows[0])

    async def _advance(self, conn: _C, tasks: Iterable[Task], now: datetime, reason: str) -> bool:
        """``tasks`` left pending (claimed or cancelled): create the following occurrences.

        Only a recurrence's pending occurrence moves it on; a retried past occurrence does
        not. Returns whether an occurrence was created.
        """
        ids = [t.id for t in tasks if t.recurrence_id is not None]
        if not ids:
            return False
        d = self._dialect
        where, params = d.any_of("next_task_id", ids)
        rows = await self._recurrence_rows(
            conn, f"{d.select} WHERE {where} AND status = 'active'{d.lock}", params
        )
        created = False
        for row in rows:
            plan = plan_advance(d.read_state(row), now, reason=reason)
            await self._write_plan(conn, plan)
            created = created or plan.new_task is not None
        return created

    async def _write_plan(self, conn: _C, plan: RecurrencePlan, *, insert: bool = False) -> None:
        """Write ``plan``: the occurrence changes first, then the row and its events."""
        if not plan.changed:
            return
        d = self._dialect
        at = self._now()
        if plan.cancel_task is not None:
            await self._change_occurrence(
                conn,
                ("cancel", plan.cancel_task, f"status = 'cancelled', updated_at = {d.mark}", [at]),
                at,
                ("cancelled", cancel_detail(plan)),
            )
        if plan.update_task is not None:
            task_id, payload, scheduled_at = plan.update_task
            assignments, params, detail = d.occurrence_changes(at, payload, scheduled_at)
            if params:
                await self._change_occurrence(
                    conn, ("edit", task_id, assignments, params), at, ("edited", detail)
                )
        values = d.row(plan.state)
        if insert:
            await self._recurrence_execute(conn, d.insert, values)
        task = occurrence_task(plan)
        if task is not None:
            await self._insert_occurrence(conn, task, plan.created_detail)
        if not insert:
            await self._recurrence_execute(conn, d.update, (*values[1:], values[0]))
        if plan.events:
            events = [(kind, dump_detail(detail)) for kind, detail in plan.events]
            await self._insert_recurrence_events(conn, plan.state.id, at, events)

    async def _change_occurrence(
        self,
        conn: _C,
        change: OccurrenceChange,
        at: _A,
        event: tuple[str, Mapping[str, Any]],
    ) -> None:
        """Apply ``change`` to an occurrence.

        ``event`` (kind, detail) is recorded on it; nothing is done if it left pending.
        """
        try:
            await self._conditional_change(conn, change)
        except (TaskConflict, LookupError):
            return  # no longer pending (or gone): nothing to change
        kind, detail = event
        await self._recurrence_execute(
            conn, self._dialect.task_event, (change[1], at, kind, dump_detail(detail))
        )

    async def _change(
        self, recurrence_id: str, plan: Callable[[RecurrenceState, datetime], RecurrencePlan]
    ) -> Recurrence:
        """Plan a change on the recurrence read locked, and write it in that transaction."""
        check_identifier(recurrence_id, "recurrence_id")
        now = now_or(None, self._clock)

        async def run(conn: _C) -> RecurrencePlan:
            planned = plan(await self._load_state(conn, recurrence_id, lock=True), now)
            await self._write_plan(conn, planned)
            return planned

        done = await self._recurrence_write(run)
        if done.new_task is not None or done.update_task is not None:
            self._wake()
        return done.state.recurrence

    # -- the recurring methods -------------------------------------------------------------

    async def add_recurrence(
        self,
        session_id: str,
        group_id: str,
        payload: Payload,
        rule: str,
        *,
        timezone: str,
        starts_at: datetime | str | None = None,
        until: datetime | str | None = None,
        count: int | None = None,
        max_attempts: int = 3,
    ) -> Recurrence:
        """Add a recurrence and its first occurrence (a pending task), in one transaction."""
        plan = plan_add(
            new_task_id(),
            session_id,
            group_id,
            payload,
            rule,
            timezone=timezone,
            starts_at=starts_at,
            until=until,
            count=count,
            max_attempts=max_attempts,
            now=now_or(None, self._clock),
        )

        async def run(conn: _C) -> None:
            # Ids were drawn before the first try: a repeat after an unknown commit
            # finds the recurrence and its occurrence and inserts nothing twice.
            if await self._may_insert(conn, plan.state):
                await self._write_plan(conn, plan, insert=True)

        await self._recurrence_write(run, idempotent=True)
        self._wake()
        return plan.state.recurrence

    async def get_recurrence(self, recurrence_id: str) -> Recurrence:
        """Return the recurrence, or raise ``RecurrenceNotFound``."""
        check_identifier(recurrence_id, "recurrence_id")

        async def run(conn: _C) -> Recurrence:
            return (await self._load_state(conn, recurrence_id, lock=False)).recurrence

        return await self._recurrence_read(run)

    async def recurrences(
        self,
        session_id: str,
        group_id: str,
        *,
        status: RecurrenceStatus | str | Collection[RecurrenceStatus | str] | None = None,
    ) -> list[Recurrence]:
        """The group's recurrences, oldest first, optionally of some statuses only."""
        check_identifier(session_id, "session_id")
        check_identifier(group_id, "group_id")
        statuses = check_recurrence_status(status)
        d = self._dialect
        where = f"session_id = {d.mark} AND group_id = {d.mark}"
        params: list[Any] = [session_id, group_id]
        if statuses is not None:
            among, values = d.any_of("status", [s.value for s in statuses])
            where += f" AND {among}"
            params += values

        async def run(conn: _C) -> list[Recurrence]:
            rows = await self._recurrence_rows(
                conn, f"{d.select} WHERE {where} ORDER BY seq", params
            )
            return [d.read_state(r).recurrence for r in rows]

        return await self._recurrence_read(run)

    async def recurrence_events(self, recurrence_id: str) -> list[TaskEvent]:
        """The recurrence's audit trail, oldest first (``task_id`` holds the recurrence id)."""
        check_identifier(recurrence_id, "recurrence_id")
        d = self._dialect

        async def run(conn: _C) -> list[TaskEvent]:
            await self._load_state(conn, recurrence_id, lock=False)
            rows = await self._recurrence_rows(conn, d.events, (recurrence_id,))
            return [recurrence_event(r, d.decode) for r in rows]

        return await self._recurrence_read(run, snapshot=True)

    async def edit_recurrence(
        self,
        recurrence_id: str,
        *,
        payload: Payload | None = None,
        rule: str | None = None,
        timezone: str | None = None,
        until: datetime | str | None = None,
        count: int | None = None,
    ) -> Recurrence:
        """Change a recurrence; see ``RecurringTaskStore.edit_recurrence``."""
        return await self._change(
            recurrence_id,
            lambda state, now: plan_edit(
                state, now, payload=payload, rule=rule, timezone=timezone, until=until, count=count
            ),
        )

    async def pause_recurrence(self, recurrence_id: str) -> Recurrence:
        """Pause: cancel the pending occurrence and create no more until resumed."""
        return await self._change(recurrence_id, plan_pause)

    async def resume_recurrence(self, recurrence_id: str) -> Recurrence:
        """Resume: the first occurrence after now becomes the pending one."""
        return await self._change(recurrence_id, plan_resume)

    async def end_recurrence(self, recurrence_id: str) -> Recurrence:
        """End for good: cancel the pending occurrence."""
        return await self._change(recurrence_id, plan_end)
