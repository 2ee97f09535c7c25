"""The HTTP bodies, as pydantic models: requests are validated by them, responses documented.

Responses are written by ``engagequeue._converters`` (the one JSON form of a task); the
models below describe that form in the OpenAPI document, and a test checks they agree.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from engagequeue._models import MAX_TEXT_LENGTH, MAX_URL_LENGTH

__all__ = [
    "EDIT_FIELDS",
    "ConnectionBody",
    "EditBody",
    "ErrorBody",
    "ErrorItem",
    "EventBody",
    "PageBody",
    "ScheduleBody",
    "TaskBody",
]

MediaTypeName = Literal["text", "image", "video", "audio"]
StatusName = Literal["pending", "processing", "completed", "failed", "cancelled"]

EDIT_FIELDS: Final = ("content", "mediaType", "mediaUrl", "scheduledAt")
"""The fields a PUT may change."""


def _unicode(value: str) -> str:
    r"""Refuse lone surrogates (``"\\ud800"`` in JSON): they cannot be stored or sent."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (it contains a lone surrogate)") from None
    return value


Text = Annotated[str, AfterValidator(_unicode)]


def _no_default(schema: dict[str, Any]) -> None:
    """Drop ``default: null`` from a field that may be absent but never ``null``."""
    schema.pop("default", None)


def _date_time_without_default(schema: dict[str, Any]) -> None:
    _no_default(schema)
    schema["format"] = "date-time"


_INSTANT = (
    "ISO 8601 date and time with an offset or Z, such as 2026-03-01T09:30:00Z "
    "or 2026-03-01T10:30:00+01:00; a time without an offset is refused"
)
_CONTENT = f"The text of a text post (required, at most {MAX_TEXT_LENGTH} characters), or the caption of a media post (at most 1024)."  # noqa: E501
_MEDIA_URL = "Absolute http(s) URL of the image, video or audio file; no credentials in it. Not allowed on a text post."  # noqa: E501


_HTTP_URL: Final = r"^https?://[^\s/?#@]+"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=False)


class ScheduleBody(_Body):
    """A new post for the group."""

    media_type: MediaTypeName = Field(alias="mediaType", description="What the post carries.")
    content: Text | None = Field(default=None, max_length=MAX_TEXT_LENGTH, description=_CONTENT)
    media_url: Text | None = Field(
        default=None,
        alias="mediaUrl",
        max_length=MAX_URL_LENGTH,
        pattern=_HTTP_URL,
        description=_MEDIA_URL,
    )
    scheduled_at: Text = Field(
        alias="scheduledAt",
        max_length=64,
        description=_INSTANT,
        json_schema_extra={"format": "date-time"},
    )
    max_attempts: int = Field(
        default=3, alias="maxAttempts", ge=1, le=100, description="Send attempts before failing."
    )


class EditBody(_Body):
    """Changes to a pending post: any of the fields, at least one.

    The post's media type, text and media URL are merged with the changes and validated as
    a whole. Switching to ``text`` drops the media URL unless one is given (then it is
    refused); ``content: null`` removes a caption.
    """

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    content: Text | None = Field(default=None, max_length=MAX_TEXT_LENGTH, description=_CONTENT)
    media_type: MediaTypeName = Field(
        default=None,  # type: ignore[arg-type]  # absent is allowed, null is not
        alias="mediaType",
        description="What the post carries.",
        json_schema_extra=_no_default,
    )
    media_url: Text | None = Field(
        default=None,
        alias="mediaUrl",
        max_length=MAX_URL_LENGTH,
        pattern=_HTTP_URL,
        description=_MEDIA_URL,
    )
    scheduled_at: Text = Field(  # type: ignore[assignment]  # absent is allowed, null is not
        default=None,
        alias="scheduledAt",
        max_length=64,
        description=_INSTANT,
        json_schema_extra=_date_time_without_default,
    )


class TaskBody(BaseModel):
    """A scheduled post and where it is in its life. Instants are ISO 8601 UTC with Z."""

    id: str = Field(description="Opaque task id.")
    session_id: str = Field(alias="sessionId")
    group_id: str = Field(alias="groupId")
    media_type: MediaTypeName = Field(alias="mediaType")
    content: str | None
    media_url: str | None = Field(alias="mediaUrl")
    scheduled_at: str = Field(alias="scheduledAt", json_schema_extra={"format": "date-time"})
    status: StatusName
    attempts: int = Field(ge=0, description="Finished send attempts.")
    max_attempts: int = Field(alias="maxAttempts", ge=1)
    last_error: str | None = Field(alias="lastError")
    created_at: str = Field(alias="createdAt", json_schema_extra={"format": "date-time"})
    updated_at: str = Field(alias="updatedAt", json_schema_extra={"format": "date-time"})
    version: int = Field(
        ge=1,
        description="Grows by one with every change of the task; the ETag header carries it "
        "for If-Match.",
    )
    recurrence_id: str | None = Field(
        alias="recurrenceId",
        description="The recurrence this post is an occurrence of; null on a one-off post.",
    )


class PageBody(BaseModel):
    """One page of a group's history: ``items`` from ``offset``, of ``total`` matches."""

    items: list[TaskBody]
    total: int = Field(ge=0)
    limit: int = Field(ge=1, le=500)
    offset: int = Field(ge=0)


class EventBody(BaseModel):
    """One step of a task's audit trail."""

    id: int | None
    task_id: str = Field(alias="taskId")
    at: str = Field(json_schema_extra={"format": "date-time"})
    kind: str = Field(description="created, edited, claimed, sending, completed, retried, ...")
    detail: dict[str, Any]


class ConnectionBody(BaseModel):
    """Whether the group's session is connected: its due posts leave only while it is."""

    session_id: str = Field(alias="sessionId")
    group_id: str = Field(alias="groupId")
    connected: bool = Field(
        description="False while the session is disconnected: its posts wait for it."
    )


class ErrorItem(BaseModel):
    """One problem with the request."""

    field: str | None
    message: str


class ErrorBody(BaseModel):
    """Every error response has this shape.

    ``error`` is a stable code (``not_found``, ``conflict``, ``validation_error``,
    ``forbidden``, ``payload_too_large``, ``unsupported_media_type``, ``internal_error``...);
    ``field`` names the offending input on a 422; ``status`` is the task's current status
    on a 409 and a 412 (which also gives the current ``version``); ``errors`` lists every
    problem on a 422.
    """

    error: str
    message: str
    field: str | None = None
    status: StatusName | None = None
    version: int | None = None
    errors: list[ErrorItem] | None = None
