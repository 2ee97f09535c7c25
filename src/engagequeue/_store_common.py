"""What every store shares: argument checks, ids, event logging and wake-up callbacks.

Pure functions and a small mixin; no database code.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import attrs

from ._detail import check_detail_value
from ._errors import TaskConflict, TaskNotFound, ValidationError, VersionConflict
from ._models import MediaType, Payload, Task, TaskStatus, check_identifier
from ._state import TRANSITIONS
from ._times import isoformat, parse_instant, utcnow

__all__ = [
    "Clock",
    "HistoryQuery",
    "NewTask",
    "WakeupMixin",
    "check_durability",
    "check_on_expired",
    "log_event",
    "new_task_id",
    "prepare_claim",
    "prepare_history",
    "prepare_task",
]

logger: Final = logging.getLogger("engagequeue")

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


def conditional_where(source: str, mark: str, *, worker_id: bool, version: bool) -> str:
    """The WHERE clause of a conditional update of one task in ``source`` status.

    Optionally also: still claimed by the given worker, at the expected version.
    ``mark`` is the engine's parameter marker; parameters follow in the order task id,
    worker id, version.
    """
    where = f"id = {mark} AND status = '{source}'"
    if worker_id:
        where += f" AND worker_id = {mark}"
    if version:
        where += f" AND version = {mark}"
    return where


def refusal(
    task_id: str,
    operation: str,
    found: Sequence[Any] | None,
    *,
    worker_id: str | None = None,
    version: int | None = None,
) -> Exception:
    """Why a conditional update matched no row: the error to raise.

    ``found`` is the task's ``(status, worker_id, version)`` read after the update, or
    ``None`` when the task does not exist. A version mismatch comes first (the caller's
    view is stale, whatever the status), then the status, then the claim holder.
    """
    if found is None:
        return TaskNotFound(task_id)
    status, holder, current = STATUSES[found[0]], found[1], found[2]
    source = TRANSITIONS[operation].source
    if version is not None and current != version:
        return VersionConflict(task_id, status, operation, version, current)
    if status is not source or worker_id is None or holder == worker_id:
        return TaskConflict(task_id, status, operation, source.value)
    return TaskConflict(
        task_id,
        status,
        operation,
        source.value,
        reason=(
            f"it is claimed by worker {holder!r}, not {worker_id!r} "
            f"(the lease of {worker_id!r} ended and the task was claimed again)"
        ),
    )


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


def sending_detail(task: Task, worker_id: str | None) -> dict[str, Any]:
    """Check that ``mark_sending`` may record the send of ``task``; return the event detail.

    The task must be processing and, when ``worker_id`` is given, claimed by that worker.
    """
    if task.status is not TaskStatus.PROCESSING:
        raise TaskConflict(task.id, task.status, "mark_sending", "processing")
    if worker_id is not None and task.worker_id != worker_id:
        raise TaskConflict(
            task.id,
            task.status,
            "mark_sending",
            "processing",
            reason=(
                f"it is claimed by worker {task.worker_id!r}, not {worker_id!r} "
                f"(the lease of {worker_id!r} ended and the task was claimed again)"
            ),
        )
    return {"worker_id": task.worker_id, "attempt": task.attempts + 1}


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


def log_event(
    kind: str, task_id: str, session_id: str, group_id: str, status: str, detail: Mapping[str, Any]
) -> None:
    """Log a task event through the ``engagequeue`` logger, with its ids as ``extra``."""
    level = logging.WARNING if kind in {"failed", "expired"} else logging.INFO
    if not logger.isEnabledFor(level):
        return
    logger.log(
        level,
        "task %s %s (session=%s group=%s status=%s)%s",
        task_id,
        kind,
        session_id,
        group_id,
        status,
        f" {dict(detail)}" if detail else "",
        extra={
            "task_id": task_id,
            "session_id": session_id,
            "group_id": group_id,
            "status": status,
            "event": kind,
        },
    )


class WakeupMixin:
    """Wake-up callbacks: a store calls them after a schedule, an edit or a reconnect.

    Engines extend it to other processes and hosts: ``_listen_changed`` starts or stops
    listening for other store objects' changes when callbacks come and go (those changes
    then run ``_wake_local``), and ``_announce`` tells the other store objects after a
    commit made through this one.
    """

    _wakeups: list[Callable[[], None]]

    def add_wakeup(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after each schedule, edit or reconnect committed on this database.

        Made through this store object or, once the store is open and a callback is added
        from a running event loop, through any other store object on the same SQLite file
        or PostgreSQL schema, in any process.
        """
        self._wakeups.append(callback)
        self._listen_changed()

    def remove_wakeup(self, callback: Callable[[], None]) -> None:
        """Stop calling ``callback``; no error if it was never added."""
        with contextlib.suppress(ValueError):
            self._wakeups.remove(callback)
        self._listen_changed()

    def _listen_changed(self) -> None:
        """Start or stop listening to other store objects (engines override)."""

    def _announce(self) -> None:
        """Tell other store objects that this one committed a wake-worthy change."""

    def _wake(self) -> None:
        self._wake_local()
        self._announce()

    def _wake_local(self) -> None:
        for callback in tuple(self._wakeups):
            try:
                callback()
            except Exception:
                logger.exception("engagequeue wake-up callback failed")


def default_clock() -> datetime:
    """The stores' default clock: the system's UTC time."""
    return utcnow()


def unchecked(cls: type[Any], **values: Any) -> Any:  # noqa: ANN401 - builds any attrs class
    """Build a frozen attrs instance from trusted values (rows the store wrote), skipping checks.

    Every value was validated when it was written; re-validating each row on read would
    double the cost of a claim. Fields left out take their plain (non-factory) default.
    """
    return builder(cls)(**values)


def builder(cls: type[Any]) -> Callable[..., Any]:
    """The keyword-only constructor ``unchecked`` uses for ``cls``, for hot loops to keep."""
    build = _BUILDERS.get(cls)
    if build is None:
        build = _BUILDERS[cls] = _builder(cls)
    return build


_BUILDERS: Final[dict[type[Any], Callable[..., Any]]] = {}


def _builder(cls: type[Any]) -> Callable[..., Any]:
    """Compile a keyword-only constructor for a slotted attrs class that sets each slot directly.

    About four times faster than a loop of ``object.__setattr__`` (a store builds one ``Task``
    per row it returns).
    """
    fields = attrs.fields(cls)
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    params, body = [], []
    for index, field in enumerate(fields):
        slot_setter = getattr(cls.__dict__.get(field.name), "__set__", None)
        setter = f"_set{index}"
        if slot_setter is not None:
            namespace[setter] = slot_setter
            body.append(f"    {setter}(obj, {field.name})")
        else:  # not a slotted class: fall back to the generic setter
            namespace[setter] = object.__setattr__
            body.append(f"    {setter}(obj, {field.name!r}, {field.name})")
        default = field.default
        if default is attrs.NOTHING or isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            params.append(field.name)
        else:
            namespace[f"_default{index}"] = default
            params.append(f"{field.name}=_default{index}")
    source = "\n".join(
        [f"def build(*, {', '.join(params)}):", "    obj = _new(_cls)", *body, "    return obj"]
    )
    exec(compile(source, f"<engagequeue unchecked {cls.__name__}>", "exec"), namespace)  # noqa: S102 - source built from attrs field names only
    build: Callable[..., Any] = namespace["build"]
    return build


def to_micros_delta(delta: timedelta) -> int:
    """Return a ``timedelta`` in whole microseconds."""
    return delta // timedelta(microseconds=1)


def message_detail(message_id: str | None) -> dict[str, Any]:
    """The detail of a ``completed`` event."""
    return {} if message_id is None else {"message_id": message_id}


def fail_event(task: Task, reason: str) -> tuple[str, dict[str, Any]]:
    """The event kind and detail that record a ``fail``: ``retried`` or ``failed``."""
    if task.status is TaskStatus.PENDING:
        return "retried", {"error": reason, "retry_at": isoformat(task.scheduled_at)}
    return "failed", {"error": reason}


def check_detail(detail: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate the extra detail of a ``created`` event: see ``_detail.check_detail_value``."""
    if detail is None:
        return {}
    return check_detail_value(detail)


TASK_COLUMNS: Final = (
    "id, session_id, group_id, media_type, content, media_url, mimetype, filename, "
    "scheduled_at, status, attempts, max_attempts, last_error, created_at, updated_at, "
    "worker_id, lease_expires_at, message_id, version, recurrence_id"
)
"""The task columns every store selects, in the order ``task_reader`` reads them."""

MEDIA_TYPES: Final = {m.value: m for m in MediaType}
STATUSES: Final = {s.value: s for s in TaskStatus}


def task_reader(instant: Callable[[Any], datetime]) -> Callable[[Sequence[Any]], Task]:
    """Return a function that builds a ``Task`` from a row of ``TASK_COLUMNS``.

    ``instant`` turns a stored time (microseconds, a ``timestamptz``...) into an aware UTC
    datetime. Rows were validated when written, so no check runs again.
    """
    build_payload = builder(Payload)
    build_task = builder(Task)

    def read(row: Sequence[Any]) -> Task:
        payload = build_payload(
            media_type=MEDIA_TYPES[row[3]],
            content=row[4],
            media_url=row[5],
            mimetype=row[6],
            filename=row[7],
        )
        lease = row[16]
        task: Task = build_task(
            id=row[0],
            session_id=row[1],
            group_id=row[2],
            payload=payload,
            scheduled_at=instant(row[8]),
            status=STATUSES[row[9]],
            attempts=row[10],
            max_attempts=row[11],
            last_error=row[12],
            created_at=instant(row[13]),
            updated_at=instant(row[14]),
            worker_id=row[15],
            lease_expires_at=None if lease is None else instant(lease),
            message_id=row[17],
            version=row[18],
            recurrence_id=row[19],
        )
        return task

    return read
