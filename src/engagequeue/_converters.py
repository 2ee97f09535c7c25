"""The JSON form of engagequeue's values: camelCase keys, ISO 8601 UTC instants with ``Z``.

One cattrs converter holds every hook, so the HTTP adapter (and anything else that speaks
JSON) writes and reads tasks the same way. Pure code, no I/O::

    converter.unstructure(task)["scheduledAt"]  # '2026-03-01T09:30:00.000000Z'

``converter.structure(data, Task)`` turns such a mapping back into a ``Task``; a missing
key or a bad value raises ``ValidationError`` naming the JSON key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import cattrs

from ._errors import ValidationError
from ._models import MediaType, Page, Payload, Task, TaskEvent, TaskStatus
from ._recurrence import Recurrence, RecurrenceStatus
from ._times import parse_instant

__all__ = ["JSON_FIELDS", "converter", "isoformat", "json_field"]

_T = TypeVar("_T")

JSON_FIELDS: Final[Mapping[str, str]] = {
    "id": "id",
    "session_id": "sessionId",
    "group_id": "groupId",
    "task_id": "taskId",
    "payload.media_type": "mediaType",
    "payload.content": "content",
    "payload.media_url": "mediaUrl",
    "payload.mimetype": "mimetype",
    "payload.filename": "filename",
    "media_type": "mediaType",
    "media_url": "mediaUrl",
    "scheduled_at": "scheduledAt",
    "max_attempts": "maxAttempts",
    "last_error": "lastError",
    "created_at": "createdAt",
    "updated_at": "updatedAt",
    "start": "startDate",
    "end": "endDate",
    "recurrence_id": "recurrenceId",
    "starts_at": "startsAt",
    "next_at": "nextAt",
}
"""Python field names (as ``ValidationError.field`` carries them) and their JSON keys."""


def json_field(field: str | None) -> str | None:
    """Return the JSON key for a Python field name (``"payload.media_url"`` -> ``"mediaUrl"``).

    Names without a JSON spelling of their own (``"limit"``, ``"status"``) come back unchanged.
    """
    if field is None:
        return None
    return JSON_FIELDS.get(field, field)


def isoformat(value: datetime) -> str:
    """Return an aware ``datetime`` as ISO 8601 UTC with microseconds and ``Z``.

    Years before 1000 keep four digits (``0733-04-19T...Z``), which ``strftime("%Y")``
    does not guarantee (``engagequeue._times.isoformat`` writes ``733-...`` on glibc).
    """
    utc = value.astimezone(UTC)
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _optional_str(value: object, key: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValidationError(f"{key} must be a string or null, not {type(value).__name__}", field=key)


def _int(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{key} must be an integer, got {value!r}", field=key)
    return value


def _require(data: Mapping[str, Any], key: str) -> Any:  # noqa: ANN401 - JSON values
    if not isinstance(data, Mapping):
        raise ValidationError(f"expected a JSON object, got {type(data).__name__}", field=key)
    try:
        return data[key]
    except KeyError:
        raise ValidationError(f"{key} is missing", field=key) from None


def _structuring(key: str, fn: Callable[[], _T]) -> _T:
    """Run ``fn``; re-raise its ``ValidationError`` or ``ValueError`` naming the JSON key."""
    try:
        return fn()
    except ValidationError as exc:
        field = json_field(exc.field) or key
        raise ValidationError(str(exc), field=field) from exc
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"{key}: {exc}", field=key) from exc


def _unstructure_task(task: Task) -> dict[str, Any]:
    payload = task.payload
    return {
        "id": task.id,
        "sessionId": task.session_id,
        "groupId": task.group_id,
        "mediaType": payload.media_type.value,
        "content": payload.content,
        "mediaUrl": payload.media_url,
        "scheduledAt": isoformat(task.scheduled_at),
        "status": task.status.value,
        "attempts": task.attempts,
        "maxAttempts": task.max_attempts,
        "lastError": task.last_error,
        "createdAt": isoformat(task.created_at),
        "updatedAt": isoformat(task.updated_at),
        "version": task.version,
        "recurrenceId": task.recurrence_id,
    }


def _unstructure_recurrence(recurrence: Recurrence) -> dict[str, Any]:
    payload = recurrence.payload
    until, next_at = recurrence.until, recurrence.next_at
    return {
        "id": recurrence.id,
        "sessionId": recurrence.session_id,
        "groupId": recurrence.group_id,
        "mediaType": payload.media_type.value,
        "content": payload.content,
        "mediaUrl": payload.media_url,
        "rule": recurrence.rule,
        "timezone": recurrence.timezone,
        "startsAt": isoformat(recurrence.starts_at),
        "until": None if until is None else isoformat(until),
        "count": recurrence.count,
        "status": recurrence.status.value,
        "nextAt": None if next_at is None else isoformat(next_at),
        "nextTaskId": recurrence.next_task_id,
        "issued": recurrence.issued,
        "maxAttempts": recurrence.max_attempts,
        "createdAt": isoformat(recurrence.created_at),
        "updatedAt": isoformat(recurrence.updated_at),
    }


def _structure_task(data: Mapping[str, Any], _: type[Task]) -> Task:
    payload = _structuring(
        "mediaType",
        lambda: Payload(
            _require(data, "mediaType"),
            content=_optional_str(data.get("content"), "content"),
            media_url=_optional_str(data.get("mediaUrl"), "mediaUrl"),
        ),
    )
    return _structuring(
        "id",
        lambda: Task(
            id=_require(data, "id"),
            session_id=_require(data, "sessionId"),
            group_id=_require(data, "groupId"),
            payload=payload,
            scheduled_at=parse_instant(_require(data, "scheduledAt"), "scheduledAt"),
            status=_structuring("status", lambda: TaskStatus(_require(data, "status"))),
            attempts=_int(_require(data, "attempts"), "attempts"),
            max_attempts=_int(_require(data, "maxAttempts"), "maxAttempts"),
            last_error=_optional_str(data.get("lastError"), "lastError"),
            created_at=parse_instant(_require(data, "createdAt"), "createdAt"),
            updated_at=parse_instant(_require(data, "updatedAt"), "updatedAt"),
            version=_int(data.get("version", 1), "version"),
            recurrence_id=_optional_str(data.get("recurrenceId"), "recurrenceId"),
        ),
    )


def _unstructure_event(event: TaskEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "taskId": event.task_id,
        "at": isoformat(event.at),
        "kind": event.kind,
        "detail": dict(event.detail),
    }


def _structure_event(data: Mapping[str, Any], _: type[TaskEvent]) -> TaskEvent:
    detail = data.get("detail") or {}
    if not isinstance(detail, Mapping):
        raise ValidationError("detail must be a JSON object", field="detail")
    event_id = data.get("id")
    return _structuring(
        "taskId",
        lambda: TaskEvent(
            task_id=_require(data, "taskId"),
            at=parse_instant(_require(data, "at"), "at"),
            kind=_require(data, "kind"),
            detail=detail,
            id=None if event_id is None else _int(event_id, "id"),
        ),
    )


def _unstructure_page(page: Page) -> dict[str, Any]:
    return {
        "items": [_unstructure_task(t) for t in page.items],
        "total": page.total,
        "limit": page.limit,
        "offset": page.offset,
    }


def _structure_page(data: Mapping[str, Any], _: type[Page]) -> Page:
    items = _require(data, "items")
    if not isinstance(items, list):
        raise ValidationError("items must be a JSON array", field="items")
    tasks: list[Task] = [_structure_task(item, Task) for item in items]
    return Page(
        items=tasks,
        total=_int(_require(data, "total"), "total"),
        limit=_int(_require(data, "limit"), "limit"),
        offset=_int(_require(data, "offset"), "offset"),
    )


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter()
    conv.register_unstructure_hook(datetime, isoformat)
    conv.register_structure_hook(datetime, lambda value, _: parse_instant(value))
    for enum_type in (MediaType, TaskStatus, RecurrenceStatus):
        conv.register_unstructure_hook(enum_type, lambda member: member.value)
    conv.register_unstructure_hook(Task, _unstructure_task)
    conv.register_structure_hook(Task, _structure_task)
    conv.register_unstructure_hook(TaskEvent, _unstructure_event)
    conv.register_structure_hook(TaskEvent, _structure_event)
    conv.register_unstructure_hook(Page, _unstructure_page)
    conv.register_unstructure_hook(Recurrence, _unstructure_recurrence)
    conv.register_structure_hook(Page, _structure_page)
    return conv


converter: Final = _make_converter()
"""The converter: ``converter.unstructure(task)`` gives the contract's Task JSON."""
