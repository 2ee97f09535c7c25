"""Instants: every time engagequeue takes or returns is an aware UTC ``datetime``.

Pure functions, no I/O. Stores keep instants as integer microseconds since the Unix
epoch (UTC): fixed width in meaning, so ``ORDER BY`` and ``<=`` are exact.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Final

import pendulum

from ._errors import ValidationError

__all__ = ["EPOCH", "from_micros", "isoformat", "parse_instant", "to_micros", "utcnow"]

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICRO: Final = timedelta(microseconds=1)


def utcnow() -> datetime:
    """Return the current instant, aware, in UTC."""
    return datetime.now(UTC)


def parse_instant(value: object, field: str = "time") -> datetime:
    """Return ``value`` as an aware UTC ``datetime``, or raise ``ValidationError``.

    Accepts an aware ``datetime`` (pendulum's included) or an ISO 8601 string with an
    offset or ``Z``. Naive datetimes, offset-less strings, bare dates and local wall
    times that do not exist (the hour skipped by a spring-forward DST change) are refused:
    guessing a zone is how scheduled posts get lost.
    """
    if type(value) is datetime and value.tzinfo is UTC and not value.fold:
        return value  # already what _from_datetime would return (the common case)
    if isinstance(value, str):
        return _parse_string(value, field)
    if isinstance(value, datetime):
        return _from_datetime(value, field)
    if isinstance(value, date):
        raise ValidationError(
            f"{field} must be an instant, not a bare date ({value.isoformat()})", field=field
        )
    raise ValidationError(
        f"{field} must be an aware datetime or an ISO 8601 string with an offset, "
        f"not {type(value).__name__}",
        field=field,
    )


def _parse_string(text: str, field: str) -> datetime:
    stripped = text.strip()
    if "T" not in stripped.upper() and " " not in stripped:
        raise ValidationError(
            f"{field} must be an ISO 8601 date and time with an offset or Z, got {text!r}",
            field=field,
        )
    not_iso = f"{field} is not an ISO 8601 date and time: {text!r}"
    try:
        parsed: object = pendulum.parse(stripped, tz=None, strict=True)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValidationError(not_iso, field=field) from exc
    if not isinstance(parsed, datetime):
        raise ValidationError(not_iso, field=field)
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValidationError(
            f"{field} has no UTC offset: {text!r}; add Z or an offset such as +02:00",
            field=field,
        )
    return _to_utc(parsed, field)


def _from_datetime(value: datetime, field: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(
            f"{field} is a naive datetime ({value.isoformat()}); give it a timezone",
            field=field,
        )
    if not isinstance(value, pendulum.DateTime):
        _to_utc(value, field)  # refuses instants outside the calendar before the round trip
        # A stdlib datetime with a zone rule (zoneinfo) can name a wall time that does not
        # exist, such as 02:30 on a spring-forward day; zoneinfo would silently move it by
        # an hour. Round-trip it to find out. (pendulum resolves such times when the
        # datetime is built, so by now it names an existing instant.)
        roundtrip = value.astimezone(UTC).astimezone(value.tzinfo)
        if roundtrip.replace(tzinfo=None) != value.replace(tzinfo=None):
            raise ValidationError(
                f"{field} {value.replace(tzinfo=None).isoformat()} does not exist in "
                f"{value.tzinfo} (skipped by a daylight saving change); pick an existing "
                "local time or give a UTC instant",
                field=field,
            )
    return _to_utc(value, field)


def _to_utc(value: datetime, field: str) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        # 0001-01-01T00:00+01:00 is in year 0 in UTC, 9999-12-31T23:59-01:00 in year 10000:
        # instants that no datetime (and so no store) can hold.
        raise ValidationError(
            f"{field} {value.isoformat()} is outside the range of representable instants "
            "(years 1 to 9999 in UTC)",
            field=field,
        ) from None
    return datetime(
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, tzinfo=UTC
    )


def to_micros(value: datetime) -> int:
    """Return an aware ``datetime`` as integer microseconds since the epoch."""
    return (value - EPOCH) // _ONE_MICRO


def from_micros(value: int) -> datetime:
    """Return integer microseconds since the epoch as an aware UTC ``datetime``."""
    return EPOCH + timedelta(0, 0, value)


def isoformat(value: datetime) -> str:
    """Return an aware ``datetime`` as ISO 8601 UTC with ``Z`` (``2026-01-02T03:04:05.000006Z``)."""
    utc = value if value.tzinfo is UTC else value.astimezone(UTC)
    return f"{utc.replace(tzinfo=None).isoformat(timespec='microseconds')}Z"
