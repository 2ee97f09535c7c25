"""Rows to models: building the frozen attrs instances a store returns, without re-checking.

Every value in a row was validated when the store wrote it. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

import attrs

from ._models import MediaType, Payload, Task, TaskEvent, TaskStatus


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


def task_columns_ddl(text: str, instant: str, integer: str) -> str:
    """The task table's columns from ``media_type`` to ``updated_at``, in an engine's types.

    Part of both engines' first migration: their tables hold the same columns.
    """
    return f"""
        media_type       {text} NOT NULL
                             CHECK (media_type IN ('text', 'image', 'video', 'audio')),
        content          {text},
        media_url        {text},
        mimetype         {text},
        filename         {text},
        scheduled_at     {instant} NOT NULL,
        status           {text} NOT NULL CHECK (status IN
                             ('pending', 'processing', 'completed', 'failed', 'cancelled')),
        attempts         {integer} NOT NULL DEFAULT 0,
        max_attempts     {integer} NOT NULL,
        last_error       {text},
        worker_id        {text},
        lease_expires_at {instant},
        message_id       {text},
        created_at       {instant} NOT NULL,
        updated_at       {instant} NOT NULL
    """


def pending_task(build: Callable[..., Any], new: Any, created: datetime) -> Task:  # noqa: ANN401 - a NewTask
    """The ``Task`` a store returns for ``new`` (a ``NewTask``) just inserted at ``created``."""
    task: Task = build(
        id=new.id,
        session_id=new.session_id,
        group_id=new.group_id,
        payload=new.payload,
        scheduled_at=new.scheduled_at,
        status=TaskStatus.PENDING,
        attempts=0,
        max_attempts=new.max_attempts,
        last_error=None,
        created_at=created,
        updated_at=created,
        worker_id=None,
        lease_expires_at=None,
        message_id=None,
        recurrence_id=new.recurrence_id,
    )
    return task


def event_reader(
    instant: Callable[[Any], datetime], load: Callable[[Any], Any]
) -> Callable[[Sequence[Any]], TaskEvent]:
    """Return a function that builds a ``TaskEvent`` from ``(seq, task_id, at, kind, detail)``.

    ``load`` turns the stored detail into a mapping (JSON text on SQLite).
    """
    build = builder(TaskEvent)

    def read(row: Sequence[Any]) -> TaskEvent:
        event: TaskEvent = build(
            id=row[0],
            task_id=row[1],
            at=instant(row[2]),
            kind=row[3],
            detail=MappingProxyType(load(row[4])),
        )
        return event

    return read
