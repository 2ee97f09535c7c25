"""Media checks made before any gateway call: pure functions, no I/O.

WhatsApp accepts few formats natively (JPEG/PNG images, MP4 video, OGG/Opus voice notes);
the gateways convert some others on request. A post that cannot work is refused here with
an ``InvalidPostError`` naming the problem, instead of a gateway 500 at send time.
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING, Final
from urllib.parse import unquote, urlsplit

import attrs

from engagequeue._models import MAX_CAPTION_LENGTH, MAX_TEXT_LENGTH, MediaType, Payload

from ._errors import InvalidPostError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "MAX_MEDIA_BYTES",
    "Media",
    "apply_probe",
    "check_chat_id",
    "check_media",
    "check_text",
    "is_voice_native",
]

_MB: Final = 1024 * 1024
MAX_MEDIA_BYTES: Final[Mapping[MediaType, int]] = {
    MediaType.IMAGE: 5 * _MB,
    MediaType.VIDEO: 16 * _MB,
    MediaType.AUDIO: 16 * _MB,
}
"""Safe size caps per media type (see docs/gateways)."""

VOICE_MIMETYPE: Final = "audio/ogg; codecs=opus"

_NATIVE: Final[Mapping[MediaType, frozenset[str]]] = {
    MediaType.IMAGE: frozenset({"image/jpeg", "image/png"}),
    MediaType.VIDEO: frozenset({"video/mp4", "video/3gpp"}),
    MediaType.AUDIO: frozenset({"audio/ogg", "audio/opus"}),
}
_CONVERTIBLE: Final[Mapping[MediaType, frozenset[str]]] = {
    MediaType.IMAGE: frozenset(),
    MediaType.VIDEO: frozenset(
        {"video/quicktime", "video/webm", "video/x-matroska", "video/x-msvideo", "video/mpeg"}
    ),
    MediaType.AUDIO: frozenset(
        {
            "audio/mpeg",
            "audio/mp3",
            "audio/mp4",
            "audio/aac",
            "audio/x-m4a",
            "audio/amr",
            "audio/wav",
            "audio/x-wav",
            "audio/webm",
            "audio/flac",
        }
    ),
}
_BY_EXTENSION: Final[Mapping[str, str]] = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".jpe": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".3gp": "video/3gpp",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".avi": "video/x-msvideo",
    ".mpeg": "video/mpeg",
    ".mpg": "video/mpeg",
    ".opus": VOICE_MIMETYPE,
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".amr": "audio/amr",
    ".wav": "audio/wav",
    ".flac": "audio/flac",
}
_AMBIGUOUS: Final[Mapping[str, Mapping[MediaType, str]]] = {
    ".webm": {MediaType.VIDEO: "video/webm", MediaType.AUDIO: "audio/webm"},
}
_DEFAULT_NAMES: Final[Mapping[MediaType, str]] = {
    MediaType.IMAGE: "image",
    MediaType.VIDEO: "video",
    MediaType.AUDIO: "voice",
}
_EXTENSION_FOR: Final[Mapping[str, str]] = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "video/mp4": ".mp4",
    "video/3gpp": ".3gp",
    "audio/ogg": ".ogg",
    "audio/opus": ".opus",
}
_GENERIC_TYPES: Final = frozenset({"application/octet-stream", "binary/octet-stream", ""})


@attrs.frozen
class Media:
    """A media post's facts once checked: what the gateway is told about the file."""

    media_type: MediaType
    url: str
    mimetype: str | None
    filename: str
    needs_conversion: bool


def _a(media_type: MediaType) -> str:
    article = "an" if media_type.value[0] in "aeiou" else "a"
    return f"{article} {media_type.value}"


def base_type(mimetype: str) -> str:
    """``"Audio/OGG; codecs=opus"`` -> ``"audio/ogg"``."""
    return mimetype.split(";", 1)[0].strip().lower()


def is_voice_native(mimetype: str | None) -> bool:
    """Whether ``mimetype`` names OGG/Opus, the only format WhatsApp plays as a voice note."""
    if mimetype is None:
        return False
    base = base_type(mimetype)
    if base == "audio/opus":
        return True
    params = mimetype.lower().replace(" ", "").split(";")[1:]
    return base == "audio/ogg" and any(p in {"codecs=opus", 'codecs="opus"'} for p in params)


def check_text(text: object, field: str = "payload.content") -> str:
    """Return ``text`` if WhatsApp can carry it as a text message, else raise."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidPostError(f"{field} must be non-blank text", field=field)
    if len(text) > MAX_TEXT_LENGTH:
        raise InvalidPostError(
            f"{field} is {len(text)} characters long; WhatsApp's limit is {MAX_TEXT_LENGTH}",
            field=field,
        )
    return text


def check_chat_id(chat_id: object) -> str:
    """Return ``chat_id`` if it looks like a WhatsApp chat id (``...@g.us``), else raise."""
    if (
        not isinstance(chat_id, str)
        or "@" not in chat_id
        or chat_id.startswith("@")
        or any(ch.isspace() or ch in "/?#" for ch in chat_id)
    ):
        raise InvalidPostError(
            f"group_id must be a WhatsApp chat id such as '120363012345678901@g.us'; "
            f"got {chat_id!r}",
            field="group_id",
        )
    return chat_id


def _filename(payload: Payload, mimetype: str | None) -> str:
    if payload.filename:
        return payload.filename
    assert payload.media_url is not None  # noqa: S101 - checked by Payload for media posts
    name = posixpath.basename(unquote(urlsplit(payload.media_url).path))
    if name and "." in name.strip("."):
        return name
    extension = _EXTENSION_FOR.get(base_type(mimetype), "") if mimetype else ""
    return (name or _DEFAULT_NAMES[payload.media_type]) + extension


def _infer(payload: Payload) -> str | None:
    if payload.mimetype:
        return payload.mimetype
    assert payload.media_url is not None  # noqa: S101 - checked by Payload for media posts
    path = unquote(urlsplit(payload.media_url).path).lower()
    extension = posixpath.splitext(path)[1]
    if extension in _AMBIGUOUS:
        return _AMBIGUOUS[extension].get(payload.media_type)
    return _BY_EXTENSION.get(extension)


def _check_format(media_type: MediaType, mimetype: str, *, can_convert: bool, source: str) -> bool:
    """Return whether the file needs converting; raise if it cannot be sent at all."""
    base = base_type(mimetype)
    family = f"{media_type.value}/"
    if not base.startswith(family):
        raise InvalidPostError(
            f"payload.media_url serves {mimetype!r} ({source}), which is not "
            f"{_a(media_type)}; {_a(media_type)} post needs a {family}... file",
            field="payload.media_url",
        )
    if media_type is MediaType.AUDIO:
        if is_voice_native(mimetype):
            return False
        if base in _NATIVE[media_type] or base in _CONVERTIBLE[media_type]:
            # Plain "audio/ogg" may be Vorbis: only Opus plays as a voice note, so convert.
            return _need_conversion(media_type, mimetype, can_convert=can_convert, source=source)
    elif base in _NATIVE[media_type]:
        return False
    if base in _CONVERTIBLE[media_type]:
        return _need_conversion(media_type, mimetype, can_convert=can_convert, source=source)
    natives = ", ".join(sorted(_NATIVE[media_type]))
    raise InvalidPostError(
        f"WhatsApp cannot send {mimetype!r} ({source}) as {_a(media_type)}; use one of: {natives}",
        field="payload.mimetype",
    )


def _need_conversion(
    media_type: MediaType, mimetype: str, *, can_convert: bool, source: str
) -> bool:
    if can_convert:
        return True
    natives = ", ".join(sorted(_NATIVE[media_type]))
    raise InvalidPostError(
        f"{mimetype!r} ({source}) is not a format WhatsApp sends as {_a(media_type)} and "
        f"this gateway does not convert it; use one of: {natives}",
        field="payload.mimetype",
    )


def check_media(payload: Payload, *, can_convert: bool, require_mimetype: bool) -> Media:
    """Check a media post before any request; return what to tell the gateway.

    Args:
        payload: an image, video or audio payload (already valid as a ``Payload``).
        can_convert: whether the gateway converts this media type's other formats.
        require_mimetype: raise when the MIME type is neither given nor inferable from the
            URL; pass ``False`` when a probe of the URL will tell it.

    Raises:
        InvalidPostError: the caption is too long, the format is not one WhatsApp (or the
            gateway, by converting) can send, or the MIME type cannot be told.
    """
    if payload.media_type is MediaType.TEXT or payload.media_url is None:
        raise InvalidPostError("a media post needs payload.media_url", field="payload.media_url")
    if payload.content is not None and len(payload.content) > MAX_CAPTION_LENGTH:
        raise InvalidPostError(
            f"payload.content (the caption) is {len(payload.content)} characters long; "
            f"WhatsApp's limit is {MAX_CAPTION_LENGTH}",
            field="payload.content",
        )
    mimetype = _infer(payload)
    needs_conversion = False
    if mimetype is None:
        if require_mimetype:
            raise InvalidPostError(
                f"cannot tell the file type of {payload.media_url!r} from its name; "
                "give payload.mimetype (for example 'image/jpeg')",
                field="payload.mimetype",
            )
    else:
        source = "given" if payload.mimetype else "from the URL's extension"
        needs_conversion = _check_format(
            payload.media_type, mimetype, can_convert=can_convert, source=source
        )
    return Media(
        media_type=payload.media_type,
        url=payload.media_url,
        mimetype=mimetype,
        filename=_filename(payload, mimetype),
        needs_conversion=needs_conversion,
    )


def apply_probe(
    media: Media,
    *,
    content_type: str | None,
    content_length: int | None,
    can_convert: bool,
) -> Media:
    """Check what the media URL answered to a ``HEAD`` request; return the completed facts.

    Refuses a file over the size cap, and a URL that serves something other than the
    post's media type (an HTML page instead of an image is the usual mistake). Fills in the
    MIME type when the payload and the URL's name did not tell it.
    """
    cap = MAX_MEDIA_BYTES[media.media_type]
    if content_length is not None and content_length > cap:
        raise InvalidPostError(
            f"{media.url!r} is {content_length / _MB:.1f} MB; WhatsApp's safe limit for "
            f"{_a(media.media_type)} is {cap // _MB} MB",
            field="payload.media_url",
        )
    served = content_type.strip() if content_type else ""
    if base_type(served) in _GENERIC_TYPES:
        if media.mimetype is None:
            raise InvalidPostError(
                f"cannot tell the file type of {media.url!r} (its server does not say); "
                "give payload.mimetype (for example 'image/jpeg')",
                field="payload.mimetype",
            )
        return media
    if media.mimetype is not None:
        family = f"{media.media_type.value}/"
        if not base_type(served).startswith(family):
            raise InvalidPostError(
                f"{media.url!r} serves {served!r}, not {_a(media.media_type)}; "
                "check that the link points at the file itself",
                field="payload.media_url",
            )
        return media
    needs_conversion = _check_format(
        media.media_type, served, can_convert=can_convert, source="served by the URL"
    )
    return attrs.evolve(
        media,
        mimetype=served,
        filename=media.filename
        if "." in media.filename
        else media.filename + _EXTENSION_FOR.get(base_type(served), ""),
        needs_conversion=needs_conversion,
    )
