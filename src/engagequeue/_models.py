"""The values engagequeue passes around: frozen attrs classes validated at construction.

Pure code, no I/O. ``attrs.evolve`` makes changed copies (and re-validates them).
"""

from __future__ import annotations

import enum
import ipaddress
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import urlsplit

import attrs

from ._errors import ValidationError
from ._times import parse_instant

__all__ = [
    "MAX_CAPTION_LENGTH",
    "MAX_TEXT_LENGTH",
    "MAX_URL_LENGTH",
    "GroupProfile",
    "MediaType",
    "Page",
    "Payload",
    "ProductLink",
    "Task",
    "TaskEvent",
    "TaskStatus",
    "check_url",
]

MAX_TEXT_LENGTH: Final = 4096
"""WhatsApp's cap on a text message, in characters."""
MAX_CAPTION_LENGTH: Final = 1024
"""WhatsApp's cap on a media caption, in characters."""
MAX_URL_LENGTH: Final = 2048
"""The longest media or product URL accepted."""
_MAX_ID_LENGTH: Final = 256
_MAX_FILENAME_LENGTH: Final = 255
_MIMETYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*(\s*;.*)?$")


class MediaType(enum.StrEnum):
    """What a post carries. Always explicit, so no ambiguous payload reaches WhatsApp."""

    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"


class TaskStatus(enum.StrEnum):
    """Where a task is in its life (see ``engagequeue._state`` for the moves)."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


def _media_type(value: object) -> MediaType:
    if isinstance(value, MediaType):
        return value
    if isinstance(value, str):
        try:
            return MediaType(value.strip().lower())
        except ValueError:
            pass
    allowed = ", ".join(m.value for m in MediaType)
    raise ValidationError(
        f"media_type must be one of {allowed}; got {value!r}", field="payload.media_type"
    )


def check_url(value: object, field: str) -> str:
    """Return ``value`` if it is an absolute http(s) URL fit to send; else ``ValidationError``.

    Refused: other schemes (``file:``, ``data:``, ``javascript:``...), relative URLs, URLs
    with credentials in them, whitespace or control characters, and URLs over 2,048 characters.
    """
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{field} must be a non-empty URL string", field=field)
    _check_url_text(value, field)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValidationError(
            f"{field} is not a valid URL: {value!r} ({exc})", field=field
        ) from exc
    if parts.scheme.lower() not in {"http", "https"}:
        raise ValidationError(
            f"{field} must be an absolute http or https URL; got scheme {parts.scheme or 'none'!r}",
            field=field,
        )
    if not parts.hostname:
        raise ValidationError(f"{field} has no host: {value!r}", field=field)
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValidationError(
            f"{field} must not carry credentials (user:password@); got {_redact(value)!r}",
            field=field,
        )
    if port == 0:
        raise ValidationError(f"{field} has port 0: {value!r}", field=field)
    host = parts.hostname
    if not _valid_host(host):
        raise ValidationError(f"{field} has an invalid host {host!r}", field=field)
    return value


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return True
    labels = host.rstrip(".").split(".")
    return all(0 < len(label) <= 63 for label in labels) and not host.startswith(".")  # noqa: PLR2004


def _check_url_text(value: str, field: str) -> None:
    if not _encodable(value):
        raise ValidationError(f"{field} is not valid Unicode text (lone surrogate)", field=field)
    if len(value) > MAX_URL_LENGTH:
        raise ValidationError(
            f"{field} is {len(value)} characters long; the limit is {MAX_URL_LENGTH}", field=field
        )
    if any(ch.isspace() or unicodedata.category(ch) in {"Cc", "Cf"} for ch in value):
        raise ValidationError(
            f"{field} contains whitespace or control characters: {value!r}", field=field
        )


def _encodable(text: str) -> bool:
    """Whether ``text`` can be stored as UTF-8 (no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _redact(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=f"***@{host}").geturl()


def _check_text(value: object, field: str, limit: int, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise ValidationError(f"{field} is required for a text post", field=field)
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string, not {type(value).__name__}", field=field)
    if "\x00" in value:
        raise ValidationError(f"{field} contains a NUL character", field=field)
    if not _encodable(value):
        raise ValidationError(f"{field} is not valid Unicode text (lone surrogate)", field=field)
    if required and not value.strip():
        raise ValidationError(f"{field} must not be blank", field=field)
    if len(value) > limit:
        raise ValidationError(
            f"{field} is {len(value)} characters long; WhatsApp's limit is {limit}", field=field
        )
    return value


_MIME_FAMILY: Final = {
    MediaType.IMAGE: "image/",
    MediaType.VIDEO: "video/",
    MediaType.AUDIO: "audio/",
}


@attrs.frozen
class Payload:
    """What a post says: its media type, text or caption, and media URL.

    Rules, checked at construction (``ValidationError`` otherwise): a text post needs
    non-blank ``content`` of at most 4,096 characters and no media fields; an image,
    video or audio post needs an absolute http(s) ``media_url`` without credentials, and
    its ``content`` (the caption) is at most 1,024 characters. ``mimetype``, when given,
    must belong to the media type's family (``image/...`` for an image).
    """

    media_type: MediaType = attrs.field(converter=_media_type)
    content: str | None = None
    media_url: str | None = None
    mimetype: str | None = None
    filename: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.media_type is MediaType.TEXT:
            _check_text(self.content, "payload.content", MAX_TEXT_LENGTH, required=True)
            for name in ("media_url", "mimetype", "filename"):
                if getattr(self, name) is not None:
                    raise ValidationError(
                        f"payload.{name} is not allowed on a text post; "
                        "choose image, video or audio to attach media",
                        field=f"payload.{name}",
                    )
            return
        if self.media_url is None:
            raise ValidationError(
                f"payload.media_url is required for a {self.media_type.value} post",
                field="payload.media_url",
            )
        check_url(self.media_url, "payload.media_url")
        _check_text(self.content, "payload.content", MAX_CAPTION_LENGTH, required=False)
        if self.mimetype is not None:
            mime = self.mimetype
            if not isinstance(mime, str) or not _MIMETYPE.match(mime.lower()):
                raise ValidationError(
                    f"payload.mimetype {mime!r} is not a MIME type", field="payload.mimetype"
                )
            family = _MIME_FAMILY[self.media_type]
            if not mime.lower().startswith(family):
                raise ValidationError(
                    f"payload.mimetype {mime!r} does not fit a {self.media_type.value} post "
                    f"(expected {family}...)",
                    field="payload.mimetype",
                )
        if self.filename is not None:
            name = self.filename
            if (
                not isinstance(name, str)
                or not name.strip()
                or len(name) > _MAX_FILENAME_LENGTH
                or any(ch in name for ch in "/\\\x00")
            ):
                raise ValidationError(
                    f"payload.filename {name!r} must be a plain file name of at most "
                    f"{_MAX_FILENAME_LENGTH} characters",
                    field="payload.filename",
                )

    @classmethod
    def text(cls, body: str) -> Payload:
        """A text post."""
        return cls(MediaType.TEXT, content=body)

    @classmethod
    def image(cls, url: str, caption: str | None = None) -> Payload:
        """An image post with an optional caption."""
        return cls(MediaType.IMAGE, content=caption, media_url=url)

    @classmethod
    def video(cls, url: str, caption: str | None = None) -> Payload:
        """A video post with an optional caption."""
        return cls(MediaType.VIDEO, content=caption, media_url=url)

    @classmethod
    def audio(cls, url: str) -> Payload:
        """A voice note."""
        return cls(MediaType.AUDIO, media_url=url)


def _datetime(value: object) -> datetime:
    return parse_instant(value)


def _detail(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@attrs.frozen
class Task:
    """A scheduled post and where it is in its life. Every datetime is aware UTC."""

    id: str
    session_id: str
    group_id: str
    payload: Payload
    scheduled_at: datetime = attrs.field(converter=_datetime)
    status: TaskStatus = attrs.field(converter=TaskStatus)
    attempts: int
    max_attempts: int
    last_error: str | None
    created_at: datetime = attrs.field(converter=_datetime)
    updated_at: datetime = attrs.field(converter=_datetime)
    worker_id: str | None = None
    lease_expires_at: datetime | None = attrs.field(
        default=None, converter=attrs.converters.optional(_datetime)
    )
    message_id: str | None = None
    version: int = 1
    """Starts at 1 and grows by one with every change of the task (an edit, a claim, a
    completion...), so ``edit`` and ``cancel`` can apply to the version a caller read."""
    recurrence_id: str | None = None
    """The recurrence this task is an occurrence of; ``None`` on a one-off post."""

    @property
    def media_type(self) -> MediaType:
        """The payload's media type."""
        return self.payload.media_type


@attrs.frozen
class TaskEvent:
    """One step in a task's audit trail (``created``, ``claimed``, ``completed``...)."""

    task_id: str
    at: datetime = attrs.field(converter=_datetime)
    kind: str
    detail: Mapping[str, Any] = attrs.field(factory=dict, converter=_detail, eq=False, hash=False)
    id: int | None = None


def _tasks(items: Iterable[Task]) -> tuple[Task, ...]:
    return tuple(items)


@attrs.frozen
class Page:
    """One page of a history query: ``items`` from ``offset``, of ``total`` matches."""

    items: Sequence[Task] = attrs.field(converter=_tasks)
    total: int
    limit: int
    offset: int

    @property
    def has_more(self) -> bool:
        """Whether another page follows this one."""
        return self.offset + len(self.items) < self.total


def _product_url(value: object) -> str:
    return check_url(value, "link.url")


@attrs.frozen
class ProductLink:
    """A product link a group's AI-written posts must carry: an absolute http(s) URL."""

    url: str = attrs.field(converter=_product_url)
    title: str = ""


def _links(value: Iterable[ProductLink | str]) -> tuple[ProductLink, ...]:
    if isinstance(value, (str, ProductLink)):
        value = (value,)
    return tuple(v if isinstance(v, ProductLink) else ProductLink(v) for v in value)


@attrs.frozen
class GroupProfile:
    """What an AI composer knows of a group: who it is, how it talks, what it links to."""

    name: str
    description: str = ""
    tone: str = ""
    language: str = "en"
    links: tuple[ProductLink, ...] = attrs.field(default=(), converter=_links)


def check_identifier(value: object, field: str) -> str:
    """Return a session or group id if it is a non-blank string of at most 256 characters."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{field} must be a non-blank string, got {value!r}", field=field)
    if len(value) > _MAX_ID_LENGTH or "\x00" in value or not _encodable(value):
        raise ValidationError(
            f"{field} must be at most {_MAX_ID_LENGTH} characters of valid text without NUL",
            field=field,
        )
    return value
