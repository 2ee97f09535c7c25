"""Checks and normal forms of the stores' arguments, shared by every engine.

Each ``check_*`` or ``prepare_*`` function raises ``ValidationError`` naming the bad field
before anything is written. Pure functions, no I/O.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import attrs

from ._detail import check_detail_value
from ._errors import ValidationError
from ._models import Payload, TaskStatus, check_identifier
from ._store_rows import builder
from ._times import isoformat, parse_instant, utcnow

Clock = Callable[[], datetime]
Durability = Literal["normal", "full"]
OnExpired = Literal["retry", "fail"]
MAX_HISTORY_LIMIT: Final = 500
MAX_OFFSET: Final = 1_000_000_000
MAX_CLAIM_LIMIT: Final = 10_000
MAX_ERROR_LENGTH: Final = 4_000


def new_task_id() -> str:
    """Return a fresh opaque task id: 13 hex digits of time, then 16 random ones.

    Time first keeps new rows at the end of the primary-key index.
    """
    return f"{time.time_ns() // 1000:013x}{os.urandom(8).hex()}"


def check_durability(value: object) -> Durability:
    """Validate the ``durability`` store option."""
    if value not in ("normal", "full"):
        raise ValidationError(
            f"durability must be 'normal' or 'full', got {value!r}", field="durability"
        )
    return "full" if value == "full" else "normal"


def check_on_expired(value: object) -> OnExpired:
    """Validate the ``on_expired`` store option."""
    if value not in ("retry", "fail"):
        raise ValidationError(
            f"on_expired must be 'retry' or 'fail', got {value!r}", field="on_expired"
        )
    return "fail" if value == "fail" else "retry"


def check_max_attempts(value: object) -> int:
    """Validate ``max_attempts``: an int from 1 to 100."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:  # noqa: PLR2004 - documented range
        raise ValidationError(
            f"max_attempts must be an integer from 1 to 100, got {value!r}", field="max_attempts"
        )
    return value


def check_payload(value: object, field: str = "payload") -> Payload:
    """Return ``value`` if it is a ``Payload``."""
    if not isinstance(value, Payload):
        raise ValidationError(
            f"{field} must be a Payload (Payload.text(...), Payload.image(...)...), "
            f"not {type(value).__name__}",
            field=field,
        )
    return value


def check_keep(value: object) -> tuple[str, ...]:
    """Validate ``session_disconnected``'s ``keep``: a collection of task ids."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValidationError("keep must be a collection of task ids", field="keep")
    ids = tuple(dict.fromkeys(value))
    if not all(isinstance(i, str) for i in ids):
        raise ValidationError("keep must hold task id strings", field="keep")
    return ids


def check_error(value: object) -> str:
    """Validate a failure reason: a non-blank string, cut to 4,000 characters.

    Reasons are free text from transports and exceptions, so characters a database cannot
    hold are replaced rather than refused: NUL with U+FFFD, a lone surrogate with ``?``.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("error must be a non-blank string", field="error")
    clean = value[:MAX_ERROR_LENGTH].replace("\x00", "\ufffd")
    return clean.encode("utf-8", "replace").decode("utf-8")


def check_optional_text(value: object, field: str) -> str | None:
    """Validate an optional id such as ``worker_id`` or ``message_id``."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string or None", field=field)
    if "\x00" in value:
        raise ValidationError(f"{field} contains a NUL character", field=field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(
            f"{field} is not valid Unicode text (lone surrogate)", field=field
        ) from None
    return value


def check_version(value: object, field: str = "if_version") -> int | None:
    """Validate an expected task version: ``None`` or an integer >= 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(
            f"{field} must be an integer >= 1 or None, got {value!r}", field=field
        )
    return value


def now_or(value: datetime | str | None, clock: Clock) -> datetime:
    """Return ``value`` as a UTC instant, or the clock's time when it is ``None``."""
    return parse_instant(clock() if value is None else value, "now")


@attrs.frozen
class NewTask:
    """A validated task about to be inserted."""

    id: str
    session_id: str
    group_id: str
    payload: Payload
    scheduled_at: datetime
    max_attempts: int
    recurrence_id: str | None = None


def prepare_task(
    session_id: object,
    group_id: object,
    payload: object,
    scheduled_at: object,
    max_attempts: object,
    prefix: str = "",
) -> NewTask:
    """Validate one task's arguments; field names are prefixed for batch errors."""
    try:
        return NewTask(
            id=new_task_id(),
            session_id=check_identifier(session_id, "session_id"),
            group_id=check_identifier(group_id, "group_id"),
            payload=check_payload(payload),
            scheduled_at=parse_instant(scheduled_at, "scheduled_at"),
            max_attempts=check_max_attempts(max_attempts),
        )
    except ValidationError as exc:
        if not prefix:
            raise
        raise _prefixed(exc, prefix) from exc


def _prefixed(exc: ValidationError, prefix: str) -> ValidationError:
    """``exc`` for item ``prefix`` of a batch: ``items[3]: ...``, field ``items[3].field``."""
    field = f"{prefix}.{exc.field}" if exc.field else prefix
    return ValidationError(f"{prefix}: {exc}", field=field)


def prepare_many(items: Iterable[object], max_attempts: object) -> list[NewTask]:
    """Validate every item of a ``schedule_many`` call before anything is written.

    The first item of each (session_id, group_id) pair goes through ``prepare_task``;
    later items of the pair (plain ``str`` ids, already found valid) only have their
    payload type and time checked. Errors are the same as ``prepare_task``'s.
    """
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise ValidationError("items must be an iterable of tuples", field="items")
    prepared: list[NewTask] = []
    known: set[tuple[str, str]] = set()
    build = builder(NewTask)
    for index, item in enumerate(items):
        if not isinstance(item, tuple | list) or len(item) != 4:  # noqa: PLR2004
            prefix = f"items[{index}]"
            raise ValidationError(
                f"{prefix} must be (session_id, group_id, payload, scheduled_at)", field=prefix
            )
        session_id, group_id, payload, scheduled_at = item
        ids = (session_id, group_id)
        if (
            type(session_id) is not str
            or type(group_id) is not str
            or ids not in known
            or not isinstance(payload, Payload)
        ):
            prepared.append(
                prepare_task(
                    session_id, group_id, payload, scheduled_at, max_attempts, f"items[{index}]"
                )
            )
            if type(session_id) is str and type(group_id) is str:
                known.add(ids)
            continue
        try:
            at = parse_instant(scheduled_at, "scheduled_at")
        except ValidationError as exc:
            raise _prefixed(exc, f"items[{index}]") from exc
        prepared.append(
            build(
                id=new_task_id(),
                session_id=session_id,
                group_id=group_id,
                payload=payload,
                scheduled_at=at,
                max_attempts=max_attempts,  # checked with the pair's first item
            )
        )
    return prepared


def prepare_claim(
    limit: object, lease: object, worker_id: object
) -> tuple[int, timedelta, str | None]:
    """Validate ``claim_due``'s options."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_CLAIM_LIMIT:
        raise ValidationError(
            f"limit must be an integer from 1 to {MAX_CLAIM_LIMIT}, got {limit!r}", field="limit"
        )
    if not isinstance(lease, timedelta) or lease <= timedelta(0):
        raise ValidationError(f"lease must be a positive timedelta, got {lease!r}", field="lease")
    return limit, lease, check_optional_text(worker_id, "worker_id")


def sending_bound(value: object) -> datetime | None:
    """Validate ``claim_due``'s ``sending_due_by``: ``None`` or an instant."""
    return None if value is None else parse_instant(value, "sending_due_by")


@attrs.frozen
class EditPlan:
    """A validated ``edit``: the columns to set, the new time, the ``edited`` event detail."""

    columns: tuple[tuple[str, object], ...]
    scheduled_at: datetime | None
    detail: dict[str, Any]


def prepare_edit(task_id: object, payload: object, scheduled_at: object) -> EditPlan:
    """Validate ``edit``'s arguments: at least one change, a ``Payload``, an instant."""
    check_identifier(task_id, "task_id")
    if payload is None and scheduled_at is None:
        raise ValidationError("edit needs a payload or a scheduled_at", field="payload")
    columns: tuple[tuple[str, object], ...] = ()
    detail: dict[str, Any] = {}
    if payload is not None:
        new = check_payload(payload)
        columns = (
            ("media_type", new.media_type.value),
            ("content", new.content),
            ("media_url", new.media_url),
            ("mimetype", new.mimetype),
            ("filename", new.filename),
        )
        detail["payload"] = True
        detail["media_type"] = new.media_type.value
    new_time = None if scheduled_at is None else parse_instant(scheduled_at, "scheduled_at")
    if new_time is not None:
        detail["scheduled_at"] = isoformat(new_time)
    return EditPlan(columns, new_time, detail)


@attrs.frozen
class HistoryQuery:
    """A validated ``history`` query."""

    session_id: str
    group_id: str
    start: datetime | None
    end: datetime | None
    statuses: tuple[TaskStatus, ...] | None
    limit: int
    offset: int
    recurrence_id: str | None = None


def _status(value: object) -> TaskStatus:
    if isinstance(value, TaskStatus):
        return value
    try:
        return TaskStatus(str(value).strip().lower())
    except ValueError:
        allowed = ", ".join(s.value for s in TaskStatus)
        raise ValidationError(
            f"status must be one of {allowed}; got {value!r}", field="status"
        ) from None


def parse_statuses(
    status: TaskStatus | str | Collection[TaskStatus | str] | None,
) -> tuple[TaskStatus, ...] | None:
    """Normalise a status filter: one status, a collection of them, or ``None`` for all."""
    if status is None:
        return None
    if isinstance(status, str):
        return (_status(status),)
    statuses = tuple(dict.fromkeys(_status(s) for s in status))
    if not statuses:
        raise ValidationError("status must name at least one status", field="status")
    return statuses


def prepare_history(
    session_id: object,
    group_id: object,
    start: object,
    end: object,
    status: TaskStatus | str | Collection[TaskStatus | str] | None,
    limit: object,
    offset: object,
    recurrence_id: object = None,
) -> HistoryQuery:
    """Validate ``history``'s arguments (``recurrence_id``: one recurrence's occurrences)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_HISTORY_LIMIT:
        raise ValidationError(
            f"limit must be an integer from 1 to {MAX_HISTORY_LIMIT}, got {limit!r}", field="limit"
        )
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise ValidationError(
            f"offset must be an integer from 0 to {MAX_OFFSET}, got {offset!r}", field="offset"
        )
    start_at = None if start is None else parse_instant(start, "start")
    end_at = None if end is None else parse_instant(end, "end")
    if start_at is not None and end_at is not None and end_at < start_at:
        raise ValidationError("end must not be before start", field="end")
    return HistoryQuery(
        session_id=check_identifier(session_id, "session_id"),
        group_id=check_identifier(group_id, "group_id"),
        start=start_at,
        end=end_at,
        statuses=parse_statuses(status),
        limit=limit,
        offset=offset,
        recurrence_id=None
        if recurrence_id is None
        else check_identifier(recurrence_id, "recurrence_id"),
    )


def default_clock() -> datetime:
    """The stores' default clock: the system's UTC time."""
    return utcnow()


def check_detail(detail: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate the extra detail of a ``created`` event: see ``_detail.check_detail_value``."""
    if detail is None:
        return {}
    return check_detail_value(detail)
