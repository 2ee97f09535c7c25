"""The moderation endpoints: a thin FastAPI shell around a ``TaskStore``."""

from __future__ import annotations

import inspect
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from email.message import Message
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    ClassVar,
    Final,
    Literal,
    Protocol,
    runtime_checkable,
)

from fastapi import APIRouter, FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from engagequeue import __version__
from engagequeue._converters import converter
from engagequeue._errors import TaskConflict, TaskNotFound, ValidationError, VersionConflict
from engagequeue._models import Payload, Task, TaskStatus
from engagequeue._times import parse_instant

from ._console import add_console_routes
from ._errors import HTTPError, error_response, not_found, response_for
from ._params import merge_payload, parse_bound, parse_status_filter, to_http
from ._recurring import add_recurring_routes
from ._schemas import (
    EDIT_FIELDS,
    ConnectionBody,
    EditBody,
    ErrorBody,
    EventBody,
    PageBody,
    ScheduleBody,
    TaskBody,
)

if TYPE_CHECKING:
    from starlette.types import Message as ASGIMessage

    from engagequeue._abc import TaskStore

__all__ = ["DEFAULT_MAX_BODY_SIZE", "Action", "Authorize", "create_app", "create_router"]

logger: Final = logging.getLogger("engagequeue.http")

Action = Literal["read", "schedule", "edit", "cancel"]
"""What a request wants to do with a group's posts."""

Authorize = Callable[[Request, Action, str, str], "bool | Awaitable[bool]"]
"""``authorize(request, action, session_id, group_id)``: ``True`` allows, anything else refuses."""

DEFAULT_MAX_BODY_SIZE: Final = 64 * 1024
"""Request bodies larger than this (bytes) are refused with 413 before they are parsed."""

_MAX_OFFSET: Final = 1_000_000_000
_TASK_PATH: Final = "/api/moderation/engagement/{task_id}"
_GROUP_PATH: Final = "/api/sessions/{session_id}/groups/{group_id}/engagement"


_Responses = dict[int | str, dict[str, Any]]


@runtime_checkable
class _ConnectionStates(Protocol):
    """A store that can say whether a session is connected (both built-in stores can)."""

    async def is_connected(self, session_id: str) -> bool: ...


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


_ERROR_500: Final = _error("Unexpected error. No details are given; the server log has them.")
_ERROR_404_TASK: Final = _error(
    "No such task, or the caller may not see it (the two are indistinguishable)."
)
_ERROR_403: Final = _error("The authorize callback refused this (session, group).")
_ERROR_404_RECURRENCE: Final = _error(
    "No such recurrence, or the caller may not see it (the two are indistinguishable)."
)
_ERROR_409_RECURRENCE: Final = _error(
    'The recurrence has ended: `{"error": "conflict", "status": "ended"}`.'
)
_ERROR_409: Final = _error(
    'The task is not pending: `{"error": "conflict", "status": "<current status>"}`.'
)
_ERROR_412: Final = _error(
    "If-Match names no current version of the task; nothing changed. The body's `version` "
    "and the `ETag` header give the current one."
)
_ERROR_413: Final = _error("The body is larger than the limit (64 KiB by default).")
_ERROR_415: Final = _error("The body is not JSON (`Content-Type: application/json`).")
_ERROR_422: Final = _error("Invalid input; `field` names it and `errors` lists every problem.")
_ERROR_400: Final = _error("Malformed request framing, such as a non-numeric Content-Length.")
_ETAG: Final = {
    "ETag": {
        "description": 'The task\'s version as a strong entity tag (`"3"`), for `If-Match`.',
        "schema": {"type": "string"},
    }
}
_BODY_ERRORS: Final[_Responses] = {400: _ERROR_400, 413: _ERROR_413, 415: _ERROR_415}

TaskId = Annotated[str, Path(description="The task's opaque id.")]
SessionId = Annotated[
    str, Path(min_length=1, max_length=256, description="The WhatsApp session (gateway name).")
]
GroupId = Annotated[
    str, Path(min_length=1, max_length=256, description="The group's chat id (`...@g.us`).")
]


StartDate = Annotated[
    str | None,
    Query(
        alias="startDate",
        max_length=64,
        description="From this instant (inclusive). A bare date (2026-03-01) means from the "
        "start of that day in UTC; a date and time needs an offset or Z.",
    ),
]
EndDate = Annotated[
    str | None,
    Query(
        alias="endDate",
        max_length=64,
        description="Until this instant (exclusive). A bare date includes that whole day in "
        "UTC; a date and time needs an offset or Z.",
    ),
]
StatusFilter = Annotated[
    list[str] | None,
    Query(
        description="Only these statuses (pending, processing, completed, failed, cancelled): "
        "repeat the parameter or separate names with commas.",
    ),
]
RecurrenceFilter = Annotated[
    str | None,
    Query(
        alias="recurrenceId",
        max_length=128,
        description="Only the occurrences of this recurring post.",
    ),
]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size, 1 to 500.")]
Offset = Annotated[int, Query(ge=0, le=_MAX_OFFSET, description="Items to skip.")]


class _GuardedRoute(APIRoute):
    """A route that keeps the error shape and the body limit wherever the router is mounted.

    The host app's exception handlers never see our errors: every exception raised while
    handling one of these routes (validation included) is turned into the one error shape here.
    """

    body_limit: ClassVar[int] = DEFAULT_MAX_BODY_SIZE

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        limit = self.body_limit
        takes_body = self.body_field is not None

        async def guarded(request: Request) -> Response:
            try:
                if takes_body:
                    request = await _buffered(request, limit)
                return await handler(request)
            except Exception as exc:  # noqa: BLE001 - every error leaves in the one shape
                return response_for(exc)

        return guarded


async def _buffered(request: Request, limit: int) -> Request:
    """Read a JSON body of at most ``limit`` bytes; return a request that replays it."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPError(400, "the Content-Length header is not a number")
        if int(declared) > limit:
            raise HTTPError(413, f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if body and not _is_json(request.headers.get("content-type")):
        raise HTTPError(415, "the body must be JSON, sent with Content-Type: application/json")
    try:
        json.loads(body or b"null")  # FastAPI parses it again; this only screens it
    except (ValueError, RecursionError):  # bad syntax, bad UTF-8, absurd nesting
        raise HTTPError(422, "the body is not valid JSON", field="body") from None
    replayed = False

    async def receive() -> ASGIMessage:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await request.receive()

    return Request(request.scope, receive)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _json(content: Any, status_code: int = 200) -> JSONResponse:  # noqa: ANN401 - JSON values
    return JSONResponse(content, status_code=status_code)


_MAX_MERGES: Final = 16
"""How often a PUT without If-Match re-reads and re-merges after a concurrent change."""
_ENTITY_TAG: Final = re.compile(r'\s*(?:W/)?"(\d{1,18})"\s*')


def etag(task: Task) -> str:
    """A task's entity tag: its version, quoted (a strong tag: one version, one JSON form)."""
    return f'"{task.version}"'


def _task_json(task: Task, status_code: int = 200) -> JSONResponse:
    """A task response, with its ``ETag``."""
    return JSONResponse(
        converter.unstructure(task), status_code=status_code, headers={"ETag": etag(task)}
    )


def _if_match(request: Request) -> frozenset[int] | None:
    """The versions an ``If-Match`` header accepts; ``None`` when absent or ``*``.

    ``*`` matches any current version of an existing task, which the handlers check
    anyway. A weak tag (``W/"3"``) counts as ``"3"``: proxies that compress a response
    weaken its tag, and a client sends back what it got. Anything else never matches.
    """
    values = request.headers.getlist("if-match")
    if not values:
        return None
    tags = [tag for value in values for tag in value.split(",")]
    if any(tag.strip() == "*" for tag in tags):
        return None
    versions = set()
    for tag in tags:
        match = _ENTITY_TAG.fullmatch(tag)
        if match:
            versions.add(int(match[1]))
    return frozenset(versions)


def _precondition_failed(task_id: str, status: TaskStatus, version: int) -> JSONResponse:
    """412: the task is no longer at a version the ``If-Match`` names; nothing changed."""
    return error_response(
        412,
        f'task {task_id!r} changed: it is at version {version} (ETag "{version}"), '
        "not the one If-Match names; read it again and retry",
        extra={"status": status.value, "version": version},
        headers={"ETag": f'"{version}"'},
    )


class _Endpoints:
    """The route handlers, bound to one store and one ``authorize`` callback."""

    def __init__(self, store: TaskStore, authorize: Authorize | None) -> None:
        self.store = store
        self.authorize = authorize

    async def _allowed(
        self, request: Request, action: Action, session_id: str, group_id: str
    ) -> bool:
        if self.authorize is None:
            return True
        verdict = self.authorize(request, action, session_id, group_id)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        return verdict is True

    async def _require_group(
        self, request: Request, action: Action, session_id: str, group_id: str
    ) -> None:
        if not await self._allowed(request, action, session_id, group_id):
            raise HTTPError(403, f"not allowed to {action} posts of this group")

    async def _task_in_scope(self, request: Request, task_id: str, action: Action) -> Task:
        """The task, or the one 404 when it is unknown or outside the caller's scope."""
        try:
            task = await self.store.get(task_id)
        except (TaskNotFound, ValidationError):
            raise not_found(task_id) from None
        if not await self._allowed(request, action, task.session_id, task.group_id):
            raise not_found(task_id)
        return task

    async def schedule(
        self, request: Request, session_id: SessionId, group_id: GroupId, body: ScheduleBody
    ) -> JSONResponse:
        """Schedule a post for the group."""
        await self._require_group(request, "schedule", session_id, group_id)
        try:
            payload = Payload(body.media_type, content=body.content, media_url=body.media_url)
            scheduled_at = parse_instant(body.scheduled_at, "scheduledAt")
        except ValidationError as exc:
            raise to_http(exc) from None
        task = await self.store.schedule(
            session_id, group_id, payload, scheduled_at, max_attempts=body.max_attempts
        )
        return _task_json(task, 201)

    async def history(
        self,
        request: Request,
        session_id: SessionId,
        group_id: GroupId,
        *,
        start_date: StartDate = None,
        end_date: EndDate = None,
        status: StatusFilter = None,
        recurrence_id: RecurrenceFilter = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> JSONResponse:
        """A page of the group's posts, by scheduled time then id."""
        await self._require_group(request, "read", session_id, group_id)
        start = parse_bound(start_date, "startDate", end=False)
        end = parse_bound(end_date, "endDate", end=True)
        if start is not None and end is not None and end < start:
            raise ValidationError("endDate must not be before startDate", field="endDate")
        # Only when asked: a store of the original contract has no recurrence filter.
        only: dict[str, str] = {} if recurrence_id is None else {"recurrence_id": recurrence_id}
        try:
            page = await self.store.history(
                session_id,
                group_id,
                start=start,
                end=end,
                status=parse_status_filter(status),
                limit=limit,
                offset=offset,
                **only,
            )
        except ValidationError as exc:
            if exc.field == "recurrence_id":
                message = str(exc).replace("recurrence_id", "recurrenceId")
                raise ValidationError(message, field="recurrenceId") from None
            raise
        return _json(converter.unstructure(page))

    async def connection(
        self, request: Request, session_id: SessionId, group_id: GroupId
    ) -> JSONResponse:
        """Whether the group's session is connected (its posts wait while it is not)."""
        await self._require_group(request, "read", session_id, group_id)
        if not isinstance(self.store, _ConnectionStates):  # pragma: no cover - route not added
            raise HTTPError(404, "this store does not report session connections")
        connected = await self.store.is_connected(session_id)
        return _json({"sessionId": session_id, "groupId": group_id, "connected": connected})

    async def read(self, request: Request, task_id: TaskId) -> JSONResponse:
        """Read a post."""
        task = await self._task_in_scope(request, task_id, "read")
        return _task_json(task)

    async def edit(self, request: Request, task_id: TaskId, body: EditBody) -> JSONResponse:
        """Edit a pending post: merge onto the version read, then one conditional update.

        The update applies only to the version the merge was made on. With ``If-Match``,
        another version is a 412. Without it, a concurrent change (another moderator's PUT)
        makes the handler read the post again and merge onto the new version, so both
        changes land; a post that keeps changing is a 409 after a bounded number of tries.
        """
        changes = {name: getattr(body, name) for name in body.model_fields_set}
        if not changes:
            raise HTTPError(422, f"give at least one of {', '.join(EDIT_FIELDS)}", field="body")
        scheduled_at = None
        if "scheduled_at" in changes:
            scheduled_at = parse_instant(changes.pop("scheduled_at"), "scheduledAt")
        wanted = _if_match(request)
        for _ in range(_MAX_MERGES):
            task = await self._task_in_scope(request, task_id, "edit")
            if wanted is not None and task.version not in wanted:
                return _precondition_failed(task.id, task.status, task.version)
            if task.status is not TaskStatus.PENDING:
                raise TaskConflict(task.id, task.status, "edit", TaskStatus.PENDING.value)
            payload = merge_payload(task.payload, changes) if changes else None
            try:
                edited = await self.store.edit(
                    task.id, payload=payload, scheduled_at=scheduled_at, if_version=task.version
                )
            except VersionConflict as exc:
                if wanted is not None:
                    return _precondition_failed(task.id, exc.status, exc.current_version)
                if exc.status is not TaskStatus.PENDING:
                    raise TaskConflict(
                        task.id, exc.status, "edit", TaskStatus.PENDING.value
                    ) from None
                continue  # changed by someone else meanwhile: merge onto their version
            except TaskNotFound:
                raise not_found(task_id) from None
            return _task_json(edited)
        raise TaskConflict(
            task_id,
            TaskStatus.PENDING,
            "edit",
            TaskStatus.PENDING.value,
            reason=f"it changed {_MAX_MERGES} times while this edit was being merged; retry",
        )

    async def cancel(self, request: Request, task_id: TaskId) -> JSONResponse:
        """Cancel a pending post; with ``If-Match``, only at a version it names."""
        wanted = _if_match(request)
        task = await self._task_in_scope(request, task_id, "cancel")
        if wanted is not None and task.version not in wanted:
            return _precondition_failed(task.id, task.status, task.version)
        try:
            cancelled = await self.store.cancel(
                task.id, if_version=None if wanted is None else task.version
            )
        except VersionConflict as exc:
            return _precondition_failed(task.id, exc.status, exc.current_version)
        except TaskNotFound:
            raise not_found(task_id) from None
        return _task_json(cancelled)

    async def events(self, request: Request, task_id: TaskId) -> JSONResponse:
        """A post's audit trail, oldest first."""
        task = await self._task_in_scope(request, task_id, "read")
        try:
            trail = await self.store.events(task.id)
        except TaskNotFound:
            raise not_found(task_id) from None
        return _json([converter.unstructure(e) for e in trail])


def create_router(
    store: TaskStore,
    *,
    authorize: Authorize | None = None,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    console: bool = False,
) -> APIRouter:
    """Build the moderation endpoints over ``store``, ready for ``app.include_router``.

    Without ``authorize`` the router is **open**: anyone who can reach it can read, schedule,
    edit and cancel every group's posts. Mount it behind your own authentication, or pass
    ``authorize``.

    Args:
        store: the ``TaskStore`` to serve (``SQLiteTaskStore``, ``PostgresTaskStore``...),
            open by the time requests arrive.
        authorize: ``authorize(request, action, session_id, group_id)``, sync or async,
            where ``action`` is ``"read"``, ``"schedule"``, ``"edit"`` or ``"cancel"`` and the
            ids are those of the (session, group) the request touches (for a task id, the
            task's own). ``True`` allows; anything else refuses: 403 on the
            ``/api/sessions/...`` paths, and on the task-id paths the same 404 as an unknown
            task, so task ids cannot be probed. It may raise ``fastapi.HTTPException`` (a 401,
            say), which is answered in the error shape with its headers.
        max_body_size: the largest request body accepted, in bytes (413 beyond it).
        console: also serve the moderation console page at ``/moderation/``
            (``/moderation/?session=S&group=G`` opens that group). The page calls only
            these endpoints, so ``authorize`` decides what it shows. See docs/console.md.

    Returns:
        An ``APIRouter`` whose routes answer every error as
        ``{"error": code, "message": text}`` (plus ``field`` on a 422 and ``status`` on a
        409), whatever the host app's exception handlers.
    """
    if isinstance(max_body_size, bool) or not isinstance(max_body_size, int) or max_body_size < 1:
        raise ValidationError(
            f"max_body_size must be a positive integer, got {max_body_size!r}",
            field="max_body_size",
        )
    if authorize is None:
        logger.warning(
            "engagequeue.http router created without authorize: its endpoints are open to "
            "anyone who can reach them"
        )
    route_class = type("GuardedRoute", (_GuardedRoute,), {"body_limit": max_body_size})
    router = APIRouter(route_class=route_class, tags=["engagement"], responses={500: _ERROR_500})
    endpoints = _Endpoints(store, authorize)
    # 422 cannot happen on the task-id paths without a body (any string is an id), but
    # documenting it in the one shape keeps FastAPI from documenting its own.
    task_errors: _Responses = {404: _ERROR_404_TASK, 422: _ERROR_422}
    add_recurring_routes(
        router,
        endpoints,
        {
            "by_id": {404: _ERROR_404_RECURRENCE, 422: _ERROR_422},
            "group": {403: _ERROR_403, 404: _error("No such session."), 422: _ERROR_422},
            "body": _BODY_ERRORS,
            "conflict": {409: _ERROR_409_RECURRENCE},
        },
    )
    group_errors: _Responses = {403: _ERROR_403, 404: _error("No such session."), 422: _ERROR_422}
    router.add_api_route(
        _GROUP_PATH,
        endpoints.schedule,
        methods=["POST"],
        status_code=201,
        operation_id="scheduleEngagement",
        summary="Schedule a post for the group",
        response_model=None,
        responses={
            201: {"model": TaskBody, "description": "The new pending task.", "headers": _ETAG},
            403: _ERROR_403,
            404: _error("No such session."),
            422: _ERROR_422,
            **_BODY_ERRORS,
        },
    )
    router.add_api_route(
        f"{_GROUP_PATH}/history",
        endpoints.history,
        methods=["GET"],
        operation_id="getEngagementHistory",
        summary="A page of the group's posts",
        response_model=None,
        responses={
            200: {"model": PageBody, "description": "Posts by scheduled time, then id."},
            **group_errors,
        },
    )
    router.add_api_route(
        _TASK_PATH,
        endpoints.read,
        methods=["GET"],
        operation_id="getEngagement",
        summary="Read a post",
        response_model=None,
        responses={
            200: {"model": TaskBody, "description": "The task.", "headers": _ETAG},
            **task_errors,
        },
    )
    router.add_api_route(
        _TASK_PATH,
        endpoints.edit,
        methods=["PUT"],
        operation_id="editEngagement",
        summary="Edit a pending post",
        description="Changes any of `content`, `mediaType`, `mediaUrl`, `scheduledAt`. The "
        "post's fields are merged with the changes and validated as a whole; the store applies "
        "the edit only while the task is still pending and at the version the merge was made "
        "on (one conditional update), so an edit racing a send either lands before the claim "
        "or gets a 409, and two concurrent edits of different fields both land. With "
        '`If-Match: "<version>"` (the `ETag` of a read), the edit applies only to that '
        "version, else 412.",
        response_model=None,
        responses={
            200: {"model": TaskBody, "description": "The edited task.", "headers": _ETAG},
            **task_errors,
            409: _ERROR_409,
            412: _ERROR_412,
            **_BODY_ERRORS,
        },
    )
    router.add_api_route(
        _TASK_PATH,
        endpoints.cancel,
        methods=["DELETE"],
        operation_id="cancelEngagement",
        summary="Cancel a pending post",
        description='With `If-Match: "<version>"`, only at that version, else 412.',
        response_model=None,
        responses={
            200: {"model": TaskBody, "description": "The cancelled task.", "headers": _ETAG},
            **task_errors,
            409: _ERROR_409,
            412: _ERROR_412,
        },
    )
    router.add_api_route(
        f"{_TASK_PATH}/events",
        endpoints.events,
        methods=["GET"],
        operation_id="getEngagementEvents",
        summary="A post's audit trail, oldest first",
        response_model=None,
        responses={
            200: {"model": list[EventBody], "description": "Its events, oldest first."},
            **task_errors,
        },
    )
    if isinstance(store, _ConnectionStates):
        router.add_api_route(
            "/api/sessions/{session_id}/groups/{group_id}/connection",
            endpoints.connection,
            methods=["GET"],
            operation_id="getGroupConnection",
            summary="Whether the group's session is connected",
            description="Read-only; authorised like the history (action `read`). While the "
            "session is disconnected, the group's due posts wait for the reconnection.",
            response_model=None,
            responses={
                200: {"model": ConnectionBody, "description": "The session's state."},
                **group_errors,
            },
        )
    if console:
        add_console_routes(router)
    return router


async def _error_handler(_: Request, exc: Exception) -> Response:
    return response_for(exc)


def create_app(
    store: TaskStore,
    *,
    authorize: Authorize | None = None,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    console: bool = False,
) -> FastAPI:
    """A FastAPI app serving ``create_router(store, ...)``, with the error shape everywhere.

    Unknown paths (404), wrong methods (405) and unexpected errors (500, without details)
    are answered as ``{"error": code, "message": text}`` too. On startup the app opens the
    store (``open`` is idempotent); closing it stays with whoever created it. Like the
    router, the app is **open** without ``authorize``.

    Args:
        store: the ``TaskStore`` to serve.
        authorize: see ``create_router``.
        max_body_size: see ``create_router``.
        console: see ``create_router``: serve the moderation console at ``/moderation/``.
    """
    router = create_router(store, authorize=authorize, max_body_size=max_body_size, console=console)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await store.open()
        yield

    app = FastAPI(
        title="engagequeue moderation API",
        version=__version__,
        description="Schedule, read, edit, cancel and audit a WhatsApp group's posts.",
        lifespan=lifespan,
    )
    app.include_router(router)
    app.add_exception_handler(StarletteHTTPException, _error_handler)
    app.add_exception_handler(RequestValidationError, _error_handler)
    app.add_exception_handler(Exception, _error_handler)
    return app
