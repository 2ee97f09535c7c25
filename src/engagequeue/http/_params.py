"""Pure helpers of the HTTP adapter: query filters and the merge of a partial edit.

No FastAPI, no I/O: each function takes plain values and returns core values, or raises
``ValidationError`` naming the HTTP parameter or JSON field at fault.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from engagequeue._converters import json_field
from engagequeue._errors import ValidationError
from engagequeue._filters import parse_bound, parse_status_filter
from engagequeue._models import MediaType, Payload

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["merge_payload", "parse_bound", "parse_status_filter", "to_http"]


def merge_payload(current: Payload, changes: Mapping[str, Any]) -> Payload:
    """Apply a PUT's ``content``/``mediaType``/``mediaUrl`` changes and validate the whole.

    ``changes`` holds only the fields the client sent, by their Python names
    (``content``, ``media_type``, ``media_url``). Switching to text drops the media URL
    unless one is given; a new media type or URL drops the old file's MIME type and name.

    Raises:
        ValidationError: with ``field`` set to the JSON name (``"mediaUrl"``...) of the
            first rule the merged post breaks.
    """
    media_type = MediaType(changes.get("media_type", current.media_type))
    content = changes.get("content", current.content)
    if "media_url" in changes:
        media_url = changes["media_url"]
    elif media_type is MediaType.TEXT:
        media_url = None
    else:
        media_url = current.media_url
    same_file = media_type is current.media_type and media_url == current.media_url
    try:
        return Payload(
            media_type,
            content=content,
            media_url=media_url,
            mimetype=current.mimetype if same_file else None,
            filename=current.filename if same_file else None,
        )
    except ValidationError as exc:
        raise to_http(exc) from None


def to_http(exc: ValidationError) -> ValidationError:
    """Return ``exc`` with its field, and the field's mentions in its message, in JSON names."""
    field = json_field(exc.field)
    message = str(exc)
    if exc.field and field and field != exc.field:
        message = re.sub(rf"(?<![\w.]){re.escape(exc.field)}(?![\w.])", field, message)
    return ValidationError(message, field=field)
