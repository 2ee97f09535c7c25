"""What may enter an event's ``detail``: pure functions, no I/O.

An event's detail is stored as JSON (SQLite ``TEXT``, PostgreSQL ``jsonb``) and served
as JSON by ``GET .../{id}/events``. A value that cannot make that trip (a lone surrogate
that UTF-8 cannot encode, a NUL that ``jsonb`` refuses, ``NaN`` that strict JSON has no
word for, an object ``json`` cannot serialise) would be stored, or half-stored, and then
break every read of the task's audit trail. ``check_detail_value`` refuses such values
before anything is written; ``clean_text`` makes untrusted text (a model server's
answer, say) safe to put there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from ._errors import ValidationError

__all__ = ["MAX_DETAIL_DEPTH", "check_detail_value", "clean_text"]

MAX_DETAIL_DEPTH: Final = 32
"""How deeply detail values may nest (mappings and lists)."""
_MAX_KEY_LENGTH: Final = 200
_REPLACEMENT: Final = "\ufffd"


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text (lone surrogate)"
    return None


def clean_text(text: str, *, limit: int | None = None) -> str:
    """``text`` with lone surrogates and NUL replaced by U+FFFD, cut to ``limit`` characters.

    For untrusted text recorded for the audit trail, where refusing would lose the record.
    """
    if _text_problem(text) is not None:
        text = "".join(
            _REPLACEMENT if ch == "\x00" or 0xD800 <= ord(ch) <= 0xDFFF else ch  # noqa: PLR2004
            for ch in text
        )
    if limit is not None and len(text) > limit:
        text = text[:limit]
    return text


def _check_mapping(value: Mapping[Any, Any], path: str, depth: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise ValidationError(
                f"{path} has a key of type {type(key).__name__}; keys must be strings",
                field=path,
            )
        problem = _text_problem(key)
        if problem is None and len(key) > _MAX_KEY_LENGTH:
            problem = f"is longer than {_MAX_KEY_LENGTH} characters"
        if problem is not None:
            raise ValidationError(f"a key of {path} {problem}", field=path)
        result[key] = _check(item, f"{path}.{key}", depth + 1)
    return result


def _check(value: object, path: str, depth: int) -> Any:  # noqa: ANN401 - JSON is untyped
    if depth > MAX_DETAIL_DEPTH:
        raise ValidationError(f"{path} nests deeper than {MAX_DETAIL_DEPTH} levels", field=path)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        problem = _text_problem(value)
        if problem is not None:
            raise ValidationError(f"{path} {problem}", field=path)
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(
                f"{path} is {value!r}: JSON has no infinite or NaN numbers", field=path
            )
        return float(value)
    if isinstance(value, Mapping):
        return _check_mapping(value, path, depth)
    if isinstance(value, list | tuple):
        return [_check(item, f"{path}[{n}]", depth + 1) for n, item in enumerate(value)]
    raise ValidationError(
        f"{path} is a {type(value).__name__}, which is not JSON (use strings, numbers, "
        "booleans, null, lists and mappings)",
        field=path,
    )


def check_detail_value(detail: object, field: str = "detail") -> dict[str, Any]:
    """Return ``detail`` as a plain JSON mapping, or raise ``ValidationError`` naming the value.

    Accepts a mapping with string keys whose values are ``None``, booleans, finite numbers,
    strings without NUL or lone surrogates, and lists, tuples and mappings of them, nested
    at most ``MAX_DETAIL_DEPTH`` levels. Tuples become lists; nothing else changes.
    """
    if not isinstance(detail, Mapping):
        raise ValidationError(f"{field} must be a mapping", field=field)
    checked: dict[str, Any] = _check(detail, field, 0)
    return checked
