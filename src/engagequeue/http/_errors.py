"""One error shape for every response: ``{"error": code, "message": text, ...}``.

``response_for`` turns any exception raised while handling a request into that shape.
Unexpected exceptions become a bare 500: the traceback goes to the log, never to the client.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from engagequeue._errors import (
    RecurrenceConflict,
    RecurrenceNotFound,
    SessionNotFound,
    TaskConflict,
    TaskNotFound,
    ValidationError,
)

from ._params import to_http

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["HTTPError", "error_response", "not_found", "response_for"]

logger: Final = logging.getLogger("engagequeue.http")

_CODES: Final = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}
_OBJECT_TYPES: Final = {"model_attributes_type", "dict_type", "model_type"}


class HTTPError(Exception):
    """An error response raised from inside a route: status, code, message and extras."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.field = field
        self.headers = headers


def not_found(task_id: str) -> HTTPError:
    """The one 404 of the task-id paths: unknown and out-of-scope tasks look the same."""
    return HTTPError(404, f"no task with id {task_id!r}")


def error_response(
    status_code: int,
    message: str,
    *,
    field: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """Build an error response in the one shape."""
    body: dict[str, Any] = {"error": _code(status_code), "message": message}
    if field is not None:
        body["field"] = field
    body.update(extra or {})
    return JSONResponse(body, status_code=status_code, headers=headers)


def _code(status_code: int) -> str:
    if status_code >= 500:  # noqa: PLR2004
        return "internal_error"
    return _CODES.get(status_code, f"http_{status_code}")


def _phrase(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return f"HTTP {status_code}"


def _location(loc: tuple[Any, ...]) -> str:
    """``("body", "mediaUrl")`` -> ``"mediaUrl"``; ``("query", "limit")`` -> ``"limit"``."""
    parts = [str(p) for p in loc[1:] if not isinstance(p, int)] if len(loc) > 1 else []
    if loc and loc[0] == "body" and (not parts or isinstance(loc[1], int)):
        return "body"
    return ".".join(parts) or str(loc[0] if loc else "body")


def _validation_items(exc: RequestValidationError) -> list[dict[str, Any]]:
    items = []
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        field = _location(loc)
        kind = error.get("type", "")
        if kind == "extra_forbidden":
            message = f"{field} is not a known field"
        elif kind == "json_invalid":
            message = "the body is not valid JSON"
        elif kind in _OBJECT_TYPES and field == "body":
            message = "the body must be a JSON object"
        elif kind == "missing" and field == "body":
            message = "a JSON body is required"
        else:
            text = str(error.get("msg", "is invalid"))
            text = text.removeprefix("Value error, ")
            message = f"{field}: {text}"
        items.append({"field": field, "message": message})
    return items


def response_for(exc: BaseException) -> JSONResponse:  # noqa: C901, PLR0911 - one exit per error kind
    """Map an exception raised while handling a request to an error response."""
    if isinstance(exc, HTTPError):
        return error_response(exc.status_code, exc.message, field=exc.field, headers=exc.headers)
    if isinstance(exc, RequestValidationError):
        items = _validation_items(exc) or [{"field": "body", "message": "invalid request"}]
        return error_response(
            422, items[0]["message"], field=items[0]["field"], extra={"errors": items}
        )
    if isinstance(exc, TaskConflict | RecurrenceConflict):
        return error_response(409, str(exc), extra={"status": exc.status.value})
    if isinstance(exc, RecurrenceNotFound):
        return error_response(404, f"no recurrence with id {exc.recurrence_id!r}")
    if isinstance(exc, TaskNotFound):
        return not_found_response(exc.task_id)
    if isinstance(exc, SessionNotFound):
        return error_response(404, f"no session with id {exc.session_id!r}")
    if isinstance(exc, ValidationError):
        http_exc = to_http(exc)
        field, message = http_exc.field, str(http_exc)
        items = [{"field": field, "message": message}]
        return error_response(422, message, field=field, extra={"errors": items})
    if isinstance(exc, ClientDisconnect):
        # Routine (a closed tab, a dropped mobile link): nobody reads this answer.
        logger.debug("the client disconnected before sending its whole request body")
        return error_response(400, "the client disconnected before sending its whole body")
    if isinstance(exc, StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail else None
        message = detail or _phrase(exc.status_code)
        if exc.status_code >= 500:  # noqa: PLR2004
            message = "internal server error"
        return error_response(exc.status_code, message, headers=exc.headers)
    logger.error("unexpected error while handling a request", exc_info=exc)
    return error_response(500, "internal server error")


def not_found_response(task_id: str) -> JSONResponse:
    """The 404 of an unknown task id."""
    error = not_found(task_id)
    return error_response(error.status_code, error.message)
