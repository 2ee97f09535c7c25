"""History filters as text (the HTTP query, the command line) turned into core values.

Pure code without FastAPI, shared by ``engagequeue.http`` and the ``engagequeue`` command,
so ``?startDate=2026-03-01`` and ``--start 2026-03-01`` mean the same.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Final

from ._errors import ValidationError
from ._models import TaskStatus
from ._times import parse_instant

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["parse_bound", "parse_status_filter"]

_BARE_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
# "+02:00" arrives as " 02:00" when a client forgets to percent-encode the "+" of a query.
_SPACED_OFFSET: Final = re.compile(r"(.*T[0-9:.,]+) (\d{2}(?::?\d{2})?)")
_STATUSES: Final = ", ".join(s.value for s in TaskStatus)


def parse_bound(value: str | None, param: str, *, end: bool) -> datetime | None:
    """Return a history bound as an aware UTC instant, or ``None`` when absent or empty.

    A bare date (``2026-03-01``) means that whole day in UTC: as a start, its first
    instant; as an end (exclusive), the first instant of the next day, so
    ``startDate=2026-03-01&endDate=2026-03-31`` covers all of March. A date and time
    needs an offset or ``Z``.

    Raises:
        ValidationError: naming ``param`` when the value is neither.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    if _BARE_DATE.fullmatch(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ValidationError(f"{param} is not a valid date: {value!r}", field=param) from None
        if end:
            try:
                day += timedelta(days=1)
            except OverflowError:
                return None  # the end of 9999-12-31 bounds nothing
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    spaced = _SPACED_OFFSET.fullmatch(text)
    if spaced:
        text = f"{spaced[1]}+{spaced[2]}"
    try:
        return parse_instant(text, param)
    except ValidationError as exc:
        raise ValidationError(
            f"{exc} (or give a bare date such as 2026-03-01 for a whole UTC day)", field=param
        ) from None


def parse_status_filter(values: Iterable[str] | None) -> tuple[TaskStatus, ...] | None:
    """Return the statuses named by repeated and/or comma-separated ``status`` values.

    Empty values are ignored; ``None`` (no filter) when nothing is named.

    Raises:
        ValidationError: ``field="status"`` for a name that is not a status.
    """
    names = [part.strip().lower() for value in values or () for part in value.split(",")]
    statuses: dict[TaskStatus, None] = {}
    for name in names:
        if not name:
            continue
        try:
            statuses[TaskStatus(name)] = None
        except ValueError:
            raise ValidationError(
                f"status must be one of {_STATUSES}; got {name!r}", field="status"
            ) from None
    return tuple(statuses) or None
