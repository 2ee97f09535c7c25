"""The recurring-post endpoints: create, list, read, edit, pause, resume and end.

Mounted by ``create_router`` beside the task endpoints, with the same ``authorize`` hook
and error rules: 403 on the group paths, and on the recurrence-id paths the same 404 as an
unknown recurrence, so ids cannot be probed. Creating needs ``"schedule"``, reading
``"read"``, editing, pausing and resuming ``"edit"``, ending ``"cancel"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Final

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from engagequeue._converters import converter
from engagequeue._errors import RecurrenceNotFound, ValidationError
from engagequeue._models import MAX_TEXT_LENGTH, MAX_URL_LENGTH, Payload
from engagequeue._recurrence import MAX_COUNT, Recurrence
from engagequeue._store_recurring import check_recurrence_status
from engagequeue._times import parse_instant

from ._errors import HTTPError
from ._params import merge_payload, to_http
from ._schemas import (
    _CONTENT,
    _HTTP_URL,
    _INSTANT,
    EventBody,
    MediaTypeName,
    Text,
    _Body,
    _date_time_without_default,
    _no_default,
)

if TYPE_CHECKING:
    from ._router import _Endpoints

__all__ = ["RECURRING_EDIT_FIELDS", "add_recurring_routes"]

RECURRING_EDIT_FIELDS: Final = (
    "content",
    "mediaType",
    "mediaUrl",
    "rule",
    "timezone",
    "until",
    "count",
)
"""The fields a PUT on a recurrence may change."""

_GROUP_PATH: Final = "/api/sessions/{session_id}/groups/{group_id}/engagement/recurring"
_ID_PATH: Final = "/api/moderation/engagement/recurring/{recurrence_id}"
_RULE = (
    "An RFC 5545 RRULE value without DTSTART, such as FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0. "
    "At most once a minute; UNTIL and COUNT go in their own fields."
)
_ZONE = "IANA zone name (Europe/Paris): the rule's wall times are read in it."

RecurrenceId = Annotated[str, Path(description="The recurrence's opaque id.")]
SessionId = Annotated[str, Path(min_length=1, max_length=256)]
GroupId = Annotated[str, Path(min_length=1, max_length=256)]
StatusFilter = Annotated[
    list[str] | None,
    Query(description="Only these statuses (active, paused, ended): repeat or comma-separate."),
]


class RecurringBody(_Body):
    """A new recurring post for the group."""

    media_type: MediaTypeName = Field(alias="mediaType")
    content: Text | None = Field(default=None, max_length=MAX_TEXT_LENGTH, description=_CONTENT)
    media_url: Text | None = Field(
        default=None, alias="mediaUrl", max_length=MAX_URL_LENGTH, pattern=_HTTP_URL
    )
    rule: Text = Field(max_length=1000, description=_RULE)
    timezone: Text = Field(max_length=64, description=_ZONE)
    starts_at: Text | None = Field(
        default=None,
        alias="startsAt",
        max_length=64,
        description=f"DTSTART: {_INSTANT}. Defaults to now.",
        json_schema_extra={"format": "date-time"},
    )
    until: Text | None = Field(
        default=None,
        max_length=64,
        description=f"No occurrence after this instant (inclusive): {_INSTANT}.",
        json_schema_extra={"format": "date-time"},
    )
    count: int | None = Field(default=None, ge=1, le=MAX_COUNT, description="Occurrences in all.")
    max_attempts: int = Field(default=3, alias="maxAttempts", ge=1, le=100)


class RecurringEditBody(_Body):
    """Changes to a recurrence: any of the fields, at least one.

    They apply to every occurrence not yet claimed, except a pending one edited on its own.
    ``until`` and ``count`` may be changed but not removed.
    """

    model_config = ConfigDict(
        extra="forbid", strict=True, populate_by_name=False, json_schema_extra={"minProperties": 1}
    )

    content: Text | None = Field(default=None, max_length=MAX_TEXT_LENGTH, description=_CONTENT)
    media_type: MediaTypeName = Field(
        default=None,  # type: ignore[arg-type]  # absent is allowed, null is not
        alias="mediaType",
        json_schema_extra=_no_default,
    )
    media_url: Text | None = Field(
        default=None, alias="mediaUrl", max_length=MAX_URL_LENGTH, pattern=_HTTP_URL
    )
    rule: Text = Field(  # type: ignore[assignment]
        default=None, max_length=1000, description=_RULE, json_schema_extra=_no_default
    )
    timezone: Text = Field(  # type: ignore[assignment]
        default=None, max_length=64, description=_ZONE, json_schema_extra=_no_default
    )
    until: Text = Field(  # type: ignore[assignment]
        default=None, max_length=64, json_schema_extra=_date_time_without_default
    )
    count: int = Field(  # type: ignore[assignment]
        default=None, ge=1, le=MAX_COUNT, json_schema_extra=_no_default
    )


class RecurrenceBody(BaseModel):
    """A recurring post. Instants are ISO 8601 UTC with Z."""

    id: str
    session_id: str = Field(alias="sessionId")
    group_id: str = Field(alias="groupId")
    media_type: MediaTypeName = Field(alias="mediaType")
    content: str | None
    media_url: str | None = Field(alias="mediaUrl")
    rule: str
    timezone: str
    starts_at: str = Field(alias="startsAt", json_schema_extra={"format": "date-time"})
    until: str | None = Field(json_schema_extra={"format": "date-time"})
    count: int | None
    status: str = Field(description="active, paused or ended")
    next_at: str | None = Field(
        alias="nextAt", description="When the pending occurrence is due; null unless active."
    )
    next_task_id: str | None = Field(alias="nextTaskId", description="The pending occurrence.")
    issued: int = Field(ge=0, description="Occurrences used so far (created or skipped).")
    max_attempts: int = Field(alias="maxAttempts", ge=1)
    created_at: str = Field(alias="createdAt", json_schema_extra={"format": "date-time"})
    updated_at: str = Field(alias="updatedAt", json_schema_extra={"format": "date-time"})


def _not_found(recurrence_id: str) -> HTTPError:
    return HTTPError(404, f"no recurrence with id {recurrence_id!r}")


def _json(value: Any, status_code: int = 200) -> JSONResponse:  # noqa: ANN401 - JSON values
    return JSONResponse(converter.unstructure(value), status_code=status_code)


class _RecurringEndpoints:
    """The handlers, sharing the task endpoints' store and ``authorize`` checks."""

    def __init__(self, endpoints: _Endpoints) -> None:
        self.endpoints = endpoints
        self.store: Any = endpoints.store

    async def _in_scope(self, request: Request, recurrence_id: str, action: Any) -> Recurrence:  # noqa: ANN401
        try:
            recurrence: Recurrence = await self.store.get_recurrence(recurrence_id)
        except (RecurrenceNotFound, ValidationError):
            raise _not_found(recurrence_id) from None
        allowed = await self.endpoints._allowed(  # noqa: SLF001 - the one authorize rule
            request, action, recurrence.session_id, recurrence.group_id
        )
        if not allowed:
            raise _not_found(recurrence_id)
        return recurrence

    async def create(
        self, request: Request, session_id: SessionId, group_id: GroupId, body: RecurringBody
    ) -> JSONResponse:
        """Create a recurring post; its first occurrence is scheduled at once."""
        await self.endpoints._require_group(request, "schedule", session_id, group_id)  # noqa: SLF001
        try:
            payload = Payload(body.media_type, content=body.content, media_url=body.media_url)
            starts_at = (
                None if body.starts_at is None else parse_instant(body.starts_at, "startsAt")
            )
            until = None if body.until is None else parse_instant(body.until, "until")
        except ValidationError as exc:
            raise to_http(exc) from None
        recurrence = await self.store.add_recurrence(
            session_id,
            group_id,
            payload,
            body.rule,
            timezone=body.timezone,
            starts_at=starts_at,
            until=until,
            count=body.count,
            max_attempts=body.max_attempts,
        )
        return _json(recurrence, 201)

    async def list(
        self,
        request: Request,
        session_id: SessionId,
        group_id: GroupId,
        status: StatusFilter = None,
    ) -> JSONResponse:
        """The group's recurrences, oldest first."""
        await self.endpoints._require_group(request, "read", session_id, group_id)  # noqa: SLF001
        names = [part for value in status or () for part in value.split(",") if part.strip()]
        statuses = check_recurrence_status(names) if names else None
        found = await self.store.recurrences(session_id, group_id, status=statuses)
        return JSONResponse([converter.unstructure(r) for r in found])

    async def read(self, request: Request, recurrence_id: RecurrenceId) -> JSONResponse:
        """Read a recurrence."""
        return _json(await self._in_scope(request, recurrence_id, "read"))

    async def edit(
        self, request: Request, recurrence_id: RecurrenceId, body: RecurringEditBody
    ) -> JSONResponse:
        """Edit a recurrence: merge the payload fields, validate the whole, then apply."""
        changes = {name: getattr(body, name) for name in body.model_fields_set}
        if not changes:
            raise HTTPError(
                422, f"give at least one of {', '.join(RECURRING_EDIT_FIELDS)}", field="body"
            )
        current = await self._in_scope(request, recurrence_id, "edit")
        payload_changes: dict[str, Any] = {
            k: changes.pop(k) for k in ("content", "media_type", "media_url") if k in changes
        }
        payload = merge_payload(current.payload, payload_changes) if payload_changes else None
        until = changes.get("until")
        edited = await self.store.edit_recurrence(
            current.id,
            payload=payload,
            rule=changes.get("rule"),
            timezone=changes.get("timezone"),
            until=None if until is None else parse_instant(until, "until"),
            count=changes.get("count"),
        )
        return _json(edited)

    async def pause(self, request: Request, recurrence_id: RecurrenceId) -> JSONResponse:
        """Pause: the pending occurrence is cancelled and no more are created."""
        current = await self._in_scope(request, recurrence_id, "edit")
        return _json(await self.store.pause_recurrence(current.id))

    async def resume(self, request: Request, recurrence_id: RecurrenceId) -> JSONResponse:
        """Resume: the first occurrence after now is scheduled."""
        current = await self._in_scope(request, recurrence_id, "edit")
        return _json(await self.store.resume_recurrence(current.id))

    async def end(self, request: Request, recurrence_id: RecurrenceId) -> JSONResponse:
        """End for good: the pending occurrence is cancelled."""
        current = await self._in_scope(request, recurrence_id, "cancel")
        return _json(await self.store.end_recurrence(current.id))

    async def events(self, request: Request, recurrence_id: RecurrenceId) -> JSONResponse:
        """The recurrence's audit trail, oldest first (``taskId`` holds the recurrence id)."""
        current = await self._in_scope(request, recurrence_id, "read")
        trail = await self.store.recurrence_events(current.id)
        return JSONResponse([converter.unstructure(e) for e in trail])


def add_recurring_routes(
    router: APIRouter, endpoints: _Endpoints, errors: dict[str, dict[int | str, Any]]
) -> None:
    """Add the recurring routes to ``router``; ``errors`` holds the shared error responses.

    Added before the task routes, so ``/api/moderation/engagement/recurring/...`` is never
    read as a task id (task ids are hex and never ``recurring``).
    """
    handlers = _RecurringEndpoints(endpoints)
    one: dict[int | str, Any] = {200: {"model": RecurrenceBody, "description": "The recurrence."}}
    by_id = errors["by_id"]
    group = errors["group"]
    body = errors["body"]
    conflict = errors["conflict"]
    router.add_api_route(
        _GROUP_PATH,
        handlers.create,
        methods=["POST"],
        status_code=201,
        operation_id="createRecurringEngagement",
        summary="Create a recurring post for the group",
        response_model=None,
        responses={
            201: {"model": RecurrenceBody, "description": "The new active recurrence."},
            **group,
            **body,
        },
    )
    router.add_api_route(
        _GROUP_PATH,
        handlers.list,
        methods=["GET"],
        operation_id="listRecurringEngagement",
        summary="The group's recurring posts",
        response_model=None,
        responses={
            200: {"model": list[RecurrenceBody], "description": "Oldest first."},
            **group,
        },
    )
    router.add_api_route(
        _ID_PATH,
        handlers.read,
        methods=["GET"],
        operation_id="getRecurringEngagement",
        summary="Read a recurring post",
        response_model=None,
        responses={**one, **by_id},
    )
    router.add_api_route(
        _ID_PATH,
        handlers.edit,
        methods=["PUT"],
        operation_id="editRecurringEngagement",
        summary="Edit a recurring post",
        description="Changes apply to every occurrence not yet claimed, except a pending one "
        "that was edited on its own.",
        response_model=None,
        responses={**one, **by_id, **conflict, **body},
    )
    router.add_api_route(
        _ID_PATH,
        handlers.end,
        methods=["DELETE"],
        operation_id="endRecurringEngagement",
        summary="End a recurring post",
        response_model=None,
        responses={**one, **by_id},
    )
    for name, handler, summary in (
        ("pause", handlers.pause, "Pause a recurring post"),
        ("resume", handlers.resume, "Resume a recurring post"),
    ):
        router.add_api_route(
            f"{_ID_PATH}/{name}",
            handler,
            methods=["POST"],
            operation_id=f"{name}RecurringEngagement",
            summary=summary,
            response_model=None,
            responses={**one, **by_id, **conflict},
        )
    router.add_api_route(
        f"{_ID_PATH}/events",
        handlers.events,
        methods=["GET"],
        operation_id="getRecurringEngagementEvents",
        summary="A recurring post's audit trail, oldest first",
        response_model=None,
        responses={
            200: {"model": list[EventBody], "description": "Its events, oldest first."},
            **by_id,
        },
    )
