"""Recurring posts, the pure part: RFC 5545 rules, IANA zones and the DST policy.

No I/O. A rule is parsed and checked here (python-dateutil's ``rrule`` expands it into
local wall times); the wall times are turned into instants here too, with ``zoneinfo``
and engagequeue's policy, because dateutil emits wall times that do not exist
(dateutil#1425) and leaves repeated ones to the caller:

- a wall time skipped by a DST gap leaves at the first instant after the gap (02:30 on
  a spring-forward night in Europe/Paris leaves at 03:00 local);
- a wall time that occurs twice (a fall-back night) leaves once, at its first occurrence;
- so occurrences strictly increase and no local wall time is sent twice.

The stores keep the state (how many occurrences were used, which task is pending) and
call :meth:`Schedule.following` in the transaction that claims or cancels an occurrence.
"""

from __future__ import annotations

import enum
import functools
import re
import zoneinfo
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Literal

import attrs
from dateutil import rrule as _rrule

from ._errors import ValidationError
from ._models import MediaType, Payload
from ._times import isoformat, parse_instant

__all__ = [
    "MAX_COUNT",
    "SKIPPED_DETAIL_LIMIT",
    "Following",
    "Recurrence",
    "RecurrenceStatus",
    "Schedule",
    "check_count",
    "check_timezone",
    "daily_rule",
    "monthly_rule",
    "normalize_rule",
    "occurrences",
    "resolve_wall_time",
    "skipped_details",
    "weekly_rule",
]

MAX_COUNT: Final = 10_000
"""The largest ``count`` a recurrence takes (27 years of a daily post)."""
MAX_RULE_LENGTH: Final = 1000
MAX_INTERVAL: Final = 1000
SKIPPED_DETAIL_LIMIT: Final = 100
"""Passed-over occurrences recorded one ``skipped`` event each; the rest share one event."""
_SKIP_SCAN_LIMIT: Final = MAX_COUNT
"""Beyond this many passed-over occurrences the store jumps to the first after now."""

_DAYS: Final = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_Frequency = Literal[0, 1, 2, 3, 4, 5, 6]
_FREQS: Final[dict[str, _Frequency]] = {
    "YEARLY": _rrule.YEARLY,
    "MONTHLY": _rrule.MONTHLY,
    "WEEKLY": _rrule.WEEKLY,
    "DAILY": _rrule.DAILY,
    "HOURLY": _rrule.HOURLY,
    "MINUTELY": _rrule.MINUTELY,
}
# (low, high, signed): signed parts also take -high..-1 (counted from the end).
_INT_PARTS: Final = {
    "BYSECOND": (0, 59, False),
    "BYMINUTE": (0, 59, False),
    "BYHOUR": (0, 23, False),
    "BYMONTHDAY": (1, 31, True),
    "BYYEARDAY": (1, 366, True),
    "BYWEEKNO": (1, 53, True),
    "BYMONTH": (1, 12, False),
    "BYSETPOS": (1, 366, True),
}
_BY_PARTS: Final = frozenset({*_INT_PARTS, "BYDAY"} - {"BYSETPOS"})
_KNOWN_PARTS: Final = frozenset({"FREQ", "INTERVAL", "WKST", "BYDAY", *_INT_PARTS})
_BYDAY = re.compile(r"^([+-]?)(\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")
_INTEGER = re.compile(r"^[+-]?\d{1,4}$")


class RecurrenceStatus(enum.StrEnum):
    """Where a recurrence is in its life: creating occurrences, paused, or over for good."""

    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"


def _optional_instant(value: object) -> datetime | None:
    return None if value is None else parse_instant(value)


@attrs.frozen
class Recurrence:
    """A recurring post: a payload sent at every occurrence of ``rule`` in ``timezone``.

    ``rule`` is an RFC 5545 ``RRULE`` value without ``DTSTART``; ``starts_at`` acts as
    ``DTSTART`` (in ``timezone``); ``until`` (inclusive) and ``count`` end the series.
    ``issued`` counts the occurrences used so far (created as tasks or passed over);
    ``next_at`` is when the pending occurrence (task ``next_task_id``) is due, ``None``
    unless the recurrence is active. Every datetime is aware UTC.
    """

    id: str
    session_id: str
    group_id: str
    payload: Payload
    rule: str
    timezone: str
    starts_at: datetime = attrs.field(converter=parse_instant)
    until: datetime | None = attrs.field(converter=_optional_instant)
    count: int | None
    status: RecurrenceStatus = attrs.field(converter=RecurrenceStatus)
    next_at: datetime | None = attrs.field(converter=_optional_instant)
    created_at: datetime = attrs.field(converter=parse_instant)
    updated_at: datetime = attrs.field(converter=parse_instant)
    max_attempts: int = 3
    issued: int = 0
    next_task_id: str | None = None

    @property
    def media_type(self) -> MediaType:
        """The payload's media type."""
        return self.payload.media_type


# --- parsing and checking ------------------------------------------------------------------


@attrs.frozen
class _Rule:
    """A checked rule: its normal text and the keyword arguments dateutil takes."""

    text: str
    freq: _Frequency
    interval: int
    wkst: int
    parts: tuple[tuple[str, Any], ...]


def _refuse(message: str) -> ValidationError:
    return ValidationError(f"rule: {message}", field="rule")


def _int_list(name: str, value: str) -> tuple[int, ...]:
    low, high, signed = _INT_PARTS[name]
    out: list[int] = []
    for item in value.split(","):
        if not _INTEGER.match(item):
            raise _refuse(f"{name} takes integers, got {item!r}")
        number = int(item)
        magnitude = abs(number) if signed else number
        if (number < 0 and not signed) or not low <= magnitude <= high:
            span = f"{low}..{high}" + (f" or -{high}..-1" if signed else "")
            raise _refuse(f"{name}={item} is out of range {span}")
        out.append(number)
    return tuple(out)


def _byday(value: str, freq: str) -> tuple[_rrule.weekday, ...]:
    out: list[_rrule.weekday] = []
    for item in value.split(","):
        match = _BYDAY.match(item)
        if not match:
            raise _refuse(f"BYDAY takes day codes such as MO or -1FR, got {item!r}")
        sign, ordinal, day = match.groups()
        weekday = _rrule.weekday(_DAYS.index(day))
        if ordinal is None:
            if sign:
                raise _refuse(f"BYDAY {item!r} has a sign but no ordinal")
            out.append(weekday)
            continue
        number = int(ordinal)
        if not 1 <= number <= 53:  # noqa: PLR2004 - weeks in a year
            raise _refuse(f"BYDAY ordinal in {item!r} must be 1..53")
        if freq not in {"MONTHLY", "YEARLY"}:
            raise _refuse(f"BYDAY {item!r} has an ordinal, allowed only with MONTHLY or YEARLY")
        out.append(weekday(-number if sign == "-" else number))
    return tuple(out)


_DATEUTIL_NAMES: Final = {
    "BYSECOND": "bysecond",
    "BYMINUTE": "byminute",
    "BYHOUR": "byhour",
    "BYMONTHDAY": "bymonthday",
    "BYYEARDAY": "byyearday",
    "BYWEEKNO": "byweekno",
    "BYMONTH": "bymonth",
    "BYSETPOS": "bysetpos",
    "BYDAY": "byweekday",
}


def _split(text: str) -> dict[str, str]:
    raw: dict[str, str] = {}
    for chunk in text.split(";"):
        name, sep, value = chunk.partition("=")
        if not sep or not name or not value:
            raise _refuse(f"{chunk!r} is not a NAME=VALUE part")
        if name in raw:
            raise _refuse(f"{name} is given twice")
        raw[name] = value
    if "UNTIL" in raw or "COUNT" in raw:
        part = "UNTIL" if "UNTIL" in raw else "COUNT"
        raise _refuse(
            f"{part} belongs in the {part.lower()}= argument, not inside the rule "
            "(one place for the end of the series)"
        )
    unknown = sorted(set(raw) - _KNOWN_PARTS)
    if unknown:
        raise _refuse(f"unknown part {unknown[0]} (known: {', '.join(sorted(_KNOWN_PARTS))})")
    return raw


def _freq(raw: dict[str, str]) -> str:
    freq = raw.get("FREQ")
    if freq is None:
        raise _refuse("FREQ is required (MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY or YEARLY)")
    if freq == "SECONDLY":
        raise _refuse("FREQ=SECONDLY is more frequent than once a minute; the finest is MINUTELY")
    if freq not in _FREQS:
        raise _refuse(f"FREQ={freq} is not one of {', '.join(_FREQS)}")
    return freq


@functools.lru_cache(maxsize=512)
def _parse(text: str) -> _Rule:
    raw = _split(text)
    freq = _freq(raw)
    interval = 1
    if "INTERVAL" in raw:
        if not raw["INTERVAL"].isdigit() or not 1 <= int(raw["INTERVAL"]) <= MAX_INTERVAL:
            raise _refuse(f"INTERVAL must be an integer 1..{MAX_INTERVAL}, got {raw['INTERVAL']!r}")
        interval = int(raw["INTERVAL"])
    wkst = 0
    if "WKST" in raw:
        if raw["WKST"] not in _DAYS:
            raise _refuse(f"WKST must be a day code (MO..SU), got {raw['WKST']!r}")
        wkst = _DAYS.index(raw["WKST"])
    parts: dict[str, Any] = {}
    for name, value in raw.items():
        if name in _INT_PARTS:
            parts[_DATEUTIL_NAMES[name]] = _int_list(name, value)
        elif name == "BYDAY":
            parts["byweekday"] = _byday(value, freq)
    _check_combination(freq, raw, parts)
    return _Rule(text, _FREQS[freq], interval, wkst, tuple(sorted(parts.items())))


def _check_combination(freq: str, raw: dict[str, str], parts: dict[str, Any]) -> None:
    seconds = parts.get("bysecond", ())
    if len(seconds) > 1:
        raise _refuse(
            "BYSECOND with several values is more frequent than once a minute; give one value"
        )
    if "BYMONTHDAY" in raw and freq == "WEEKLY":
        raise _refuse("BYMONTHDAY is not allowed with FREQ=WEEKLY (RFC 5545)")
    if "BYYEARDAY" in raw and freq in {"DAILY", "WEEKLY", "MONTHLY"}:
        raise _refuse(f"BYYEARDAY is not allowed with FREQ={freq} (RFC 5545)")
    if "BYWEEKNO" in raw and freq != "YEARLY":
        raise _refuse("BYWEEKNO is allowed only with FREQ=YEARLY (RFC 5545)")
    if "BYWEEKNO" in raw and any(day.n for day in parts.get("byweekday", ())):
        raise _refuse("BYDAY ordinals are not allowed with BYWEEKNO (RFC 5545)")
    if "BYSETPOS" in raw and not (_BY_PARTS & set(raw)):
        raise _refuse("BYSETPOS needs another BYxxx part to select from (RFC 5545)")


def normalize_rule(rule: object) -> str:
    """Return ``rule`` checked and in normal form (upper case, no ``RRULE:`` prefix).

    Refused with ``ValidationError(field="rule")``: anything but one ``RRULE`` value,
    ``DTSTART`` or other properties in the text (give ``starts_at``), unknown parts,
    ``UNTIL``/``COUNT`` (give the ``until``/``count`` arguments), values out of range,
    combinations RFC 5545 forbids, and rules more frequent than once a minute
    (``FREQ=SECONDLY``, or several ``BYSECOND`` values).
    """
    if not isinstance(rule, str):
        raise _refuse(f"must be a string such as 'FREQ=DAILY;BYHOUR=9', not {type(rule).__name__}")
    text = rule.strip()
    if not text:
        raise _refuse("must not be empty")
    if len(text) > MAX_RULE_LENGTH:
        raise _refuse(f"is {len(text)} characters long; the limit is {MAX_RULE_LENGTH}")
    upper = text.upper()
    if "DTSTART" in upper:
        raise _refuse("DTSTART is not part of a rule; give starts_at instead")
    upper = upper.removeprefix("RRULE:")
    if any(ch in upper for ch in ":\r\n") or any(ch.isspace() for ch in upper):
        raise _refuse("must be one RRULE value (no other properties, spaces or line breaks)")
    return _parse(upper.rstrip(";")).text


@functools.lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    # "localtime" and "posixrules" are host aliases, not IANA zones.
    return frozenset(zoneinfo.available_timezones() - {"localtime", "posixrules"})


@functools.lru_cache(maxsize=256)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    names = _zone_names()
    if names and name not in names:
        raise zoneinfo.ZoneInfoNotFoundError(name)
    return zoneinfo.ZoneInfo(name)


def check_timezone(value: object) -> zoneinfo.ZoneInfo:
    """Return the IANA zone ``value`` names, or ``ValidationError(field="timezone")``."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(
            f"timezone must be an IANA zone name such as 'Europe/Paris', got {value!r}",
            field="timezone",
        )
    try:
        return _zone(value.strip())
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValidationError(
            f"timezone {value!r} is not a known IANA zone (such as 'Europe/Paris')",
            field="timezone",
        ) from exc


def check_count(value: object) -> int | None:
    """Return ``count`` if it is ``None`` or an integer 1..10,000, else ``ValidationError``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
        raise ValidationError(
            f"count must be an integer 1..{MAX_COUNT} or None, got {value!r}", field="count"
        )
    return value


# --- wall times to instants ----------------------------------------------------------------


def _wall(instant: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def resolve_wall_time(wall: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    """Return the instant (aware UTC) at which the naive local ``wall`` time leaves.

    An existing wall time leaves at its first occurrence (``fold=0``); one skipped by a
    gap leaves at the first instant after the gap.
    """
    utc = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _wall(utc, zone) == wall:
        return utc
    # In a gap: zoneinfo maps fold=0 with the offset before the change and fold=1 with the
    # one after, so the change lies between the two readings. Bisect on whole seconds
    # (zone changes happen on whole seconds) for the first instant whose wall time is later.
    other = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low = int(min(utc, other).timestamp())
    high = int(max(utc, other).timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if _wall(datetime.fromtimestamp(middle, UTC), zone) > wall:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


# --- occurrences ---------------------------------------------------------------------------


def _week_start(day: date, wkst: int) -> date:
    return day - timedelta(days=(day.weekday() - wkst) % 7)


@attrs.frozen
class Following:
    """What follows an occurrence.

    The next one (``None``: the series is over), the occurrences passed over on the way
    (already due), and ``issued`` counting them all.
    """

    next_at: datetime | None
    issued: int
    skipped: tuple[datetime, ...] = ()
    skipped_uncounted: bool = False
    """More occurrences than ``skipped`` holds were passed over (a very long downtime)."""


@attrs.frozen
class Schedule:
    """A rule in a zone from ``starts_at``: the occurrences of a recurrence, as instants.

    Build it with :meth:`build`, which checks every argument and names the bad one.
    """

    rule: str
    timezone: str
    starts_at: datetime
    until: datetime | None = None
    zone: zoneinfo.ZoneInfo = attrs.field(eq=False, repr=False, default=None)
    _parsed: _Rule = attrs.field(eq=False, repr=False, default=None)
    _kwargs: dict[str, Any] = attrs.field(eq=False, repr=False, factory=dict)
    _origin: datetime = attrs.field(eq=False, repr=False, default=None)

    @classmethod
    def build(
        cls,
        rule: object,
        *,
        timezone: object,
        starts_at: object,
        until: object = None,
    ) -> Schedule:
        """Check the arguments (``ValidationError`` naming the field) and build the schedule."""
        text = normalize_rule(rule)
        zone = check_timezone(timezone)
        start = parse_instant(starts_at, "starts_at")
        end = None if until is None else parse_instant(until, "until")
        if end is not None and end < start:
            raise ValidationError("until is before starts_at", field="until")
        parsed = _parse(text)
        origin = _wall(start, zone).replace(microsecond=0)
        kwargs = _pinned(parsed, origin)
        try:
            _rrule.rrule(parsed.freq, dtstart=origin, interval=parsed.interval, **kwargs)
        except ValueError as exc:  # dateutil: a BYxxx set the interval can never reach
            raise _refuse(f"has no occurrence ({exc})") from exc
        if not _some_day_matches(kwargs, origin):
            raise _refuse("matches no date at all (such as BYMONTH=2;BYMONTHDAY=30)")
        schedule = cls(text, zone.key, start, None, zone, parsed, kwargs, origin)
        first = schedule.first()
        if first is None:
            raise _refuse("has no occurrence at or after starts_at")
        if end is not None and first > end:
            raise ValidationError(
                f"until is before the first occurrence ({isoformat(first)})", field="until"
            )
        return attrs.evolve(schedule, until=end)

    def first(self) -> datetime | None:
        """The first occurrence: the first at or after ``starts_at`` (``None``: none left)."""
        return next(self.iter_from(self.starts_at, inclusive=True), None)

    def after(self, instant: datetime) -> datetime | None:
        """The first occurrence strictly after ``instant`` (and at or after ``starts_at``)."""
        return next(self.iter_after(instant), None)

    def iter_after(self, instant: datetime) -> Iterator[datetime]:
        """Occurrences strictly after ``instant`` (and at or after ``starts_at``), in order."""
        if instant < self.starts_at:
            return self.iter_from(self.starts_at, inclusive=True)
        return self.iter_from(instant, inclusive=False)

    def iter_from(self, lower: datetime, *, inclusive: bool) -> Iterator[datetime]:
        """Occurrences from ``lower`` on, strictly increasing, until ``until`` if set.

        Starts from the rule period that holds ``lower`` (never from ``DTSTART``), so the
        cost does not grow with the age of the recurrence.
        """
        if lower < self.starts_at:
            # starts_at itself is after lower, so it counts even when lower does not.
            lower, inclusive = self.starts_at, True
        floor = self._wall_floor(lower)
        horizon = _MAX_WALL if floor >= _HORIZON_START else floor + _HORIZON
        if self.until is not None:
            horizon = min(horizon, _wall(self.until, self.zone) + timedelta(days=2))
        period = self._period_start(floor)
        rule = _rrule.rrule(
            self._parsed.freq,
            dtstart=period,
            interval=self._parsed.interval,
            wkst=self._parsed.wkst,
            until=horizon,
            **self._kwargs,
        )
        last: datetime | None = None
        try:
            for wall in rule:
                if wall < floor:
                    continue
                instant = resolve_wall_time(wall, self.zone)
                if instant < lower or (instant == lower and not inclusive):
                    continue
                if last is not None and instant <= last:
                    continue  # several walls of one gap leave at its end: once
                if self.until is not None and instant > self.until:
                    return
                last = instant
                yield instant
        except ValueError:  # dateutil: an interval and BYxxx that never meet
            return

    def next_from(
        self, lower: datetime, *, inclusive: bool, issued: int, count: int | None
    ) -> Following:
        """The first occurrence from ``lower`` on, as occurrence number ``issued + 1``.

        For a recurrence that starts (``inclusive``: at or after ``lower``), resumes or
        changes its rule: occurrences before ``lower`` were never due, so none is skipped.
        """
        if count is not None and issued >= count:
            return Following(None, issued)
        instant = next(self.iter_from(lower, inclusive=inclusive), None)
        return Following(instant, issued + (instant is not None))

    def following(
        self, previous: datetime, *, now: datetime, issued: int, count: int | None
    ) -> Following:
        """What follows the occurrence at ``previous`` (its rule time), claimed or cancelled.

        The next occurrence is the first after both ``previous`` and ``now``; the ones in
        between were due and are passed over (``skipped``), so a downtime never causes a
        burst. Each one used counts towards ``count``; ``issued`` is how many were used.
        """
        skipped: list[datetime] = []
        for instant in self.iter_after(previous):
            if count is not None and issued >= count:
                return Following(None, issued, tuple(skipped))
            issued += 1
            if instant > now:
                return Following(instant, issued, tuple(skipped))
            skipped.append(instant)
            if count is None and len(skipped) >= _SKIP_SCAN_LIMIT:
                # Counting every missed minute of a long outage helps nobody: jump.
                jump = self.after(now)
                return Following(
                    jump, issued + (jump is not None), tuple(skipped), skipped_uncounted=True
                )
        return Following(None, issued, tuple(skipped))

    def _wall_floor(self, lower: datetime) -> datetime:
        """The earliest wall time that can leave at or after ``lower``.

        After a backward shift, wall times repeat, so a wall time a little before
        ``lower``'s own can leave later than it; step back by the lowest offset in the next
        two days (no zone shifts by more than a day).
        """
        offsets = [
            (lower + timedelta(hours=hours)).astimezone(self.zone).utcoffset() or timedelta()
            for hours in range(0, 49, 3)
        ]
        return (lower + min(offsets)).replace(tzinfo=None).replace(microsecond=0)

    def _period_start(self, wall: datetime) -> datetime:
        """The start of the rule period (of ``INTERVAL`` phase from ``starts_at``) holding ``wall``.

        dateutil counts periods from its ``DTSTART``; starting it at an aligned period
        start, with every part it would take from ``DTSTART`` pinned, gives the same
        occurrences as starting it at ``starts_at`` and scanning forward.
        """
        origin, step, freq = self._origin, self._parsed.interval, self._parsed.freq
        wall = max(wall, origin)
        if freq == _rrule.YEARLY:
            return datetime(origin.year + (wall.year - origin.year) // step * step, 1, 1)  # noqa: DTZ001
        if freq == _rrule.MONTHLY:
            months = (wall.year - origin.year) * 12 + wall.month - origin.month
            index = origin.year * 12 + origin.month - 1 + months // step * step
            return datetime(index // 12, index % 12 + 1, 1)  # noqa: DTZ001
        if freq == _rrule.WEEKLY:
            first = _week_start(origin.date(), self._parsed.wkst)
            weeks = (_week_start(wall.date(), self._parsed.wkst) - first).days // 7
            return datetime.combine(first + timedelta(weeks=weeks // step * step), _MIDNIGHT)
        if freq == _rrule.DAILY:
            days = (wall.date() - origin.date()).days
            return datetime.combine(origin.date() + timedelta(days=days // step * step), _MIDNIGHT)
        unit = timedelta(hours=1) if freq == _rrule.HOURLY else timedelta(minutes=1)
        base = origin.replace(minute=0 if freq == _rrule.HOURLY else origin.minute, second=0)
        units = (wall - base) // unit
        return base + unit * (units // step * step)


_MIDNIGHT: Final = datetime.min.time()
# The Gregorian calendar repeats every 400 years: a rule with no occurrence in 400 years has
# none at all, so no search looks further.
_HORIZON: Final = timedelta(days=146_097)
_HORIZON_START: Final = datetime(9998, 12, 31) - _HORIZON  # noqa: DTZ001
_MAX_WALL: Final = datetime(9998, 12, 31)  # noqa: DTZ001 - naive wall time on purpose


def _pinned(parsed: _Rule, origin: datetime) -> dict[str, Any]:
    """The keyword arguments for dateutil, with what it would take from ``DTSTART`` made explicit.

    RFC 5545 fills parts a rule leaves out from ``DTSTART`` (``FREQ=DAILY`` alone means
    daily at ``starts_at``'s time). Seconds are the exception: they are 0 unless
    ``BYSECOND`` says otherwise, so a recurrence started "now" still leaves on the minute.
    """
    kwargs: dict[str, Any] = dict(parsed.parts)
    freq = parsed.freq
    kwargs.setdefault("bysecond", (0,))
    if freq < _rrule.MINUTELY:
        kwargs.setdefault("byminute", (origin.minute,))
    if freq < _rrule.HOURLY:
        kwargs.setdefault("byhour", (origin.hour,))
    if not any(k in kwargs for k in ("byweekno", "byyearday", "bymonthday", "byweekday")):
        if freq == _rrule.YEARLY:
            kwargs.setdefault("bymonth", (origin.month,))
            kwargs["bymonthday"] = (origin.day,)
        elif freq == _rrule.MONTHLY:
            kwargs["bymonthday"] = (origin.day,)
        elif freq == _rrule.WEEKLY:
            kwargs["byweekday"] = (origin.weekday(),)
    return kwargs


_DATE_PARTS: Final = ("bymonth", "bymonthday", "byyearday", "byweekno", "byweekday")


def _some_day_matches(kwargs: dict[str, Any], origin: datetime) -> bool:
    """Whether any date in 400 years passes the rule's date filters, seen year by year.

    A day-by-day rule (``FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30``) that matches nothing would
    otherwise be scanned a day at a time for 400 years before being refused. Ordinal
    weekdays (``-1FR``) select within a month or year, so such rules skip this probe.
    """
    parts = {k: kwargs[k] for k in _DATE_PARTS if k in kwargs}
    if not parts or any(getattr(day, "n", None) for day in parts.get("byweekday", ())):
        return True
    probe = _rrule.rrule(
        _rrule.YEARLY,
        dtstart=datetime(origin.year, 1, 1),  # noqa: DTZ001 - naive wall time on purpose
        byhour=0,
        byminute=0,
        bysecond=0,
        until=_MAX_WALL if origin >= _HORIZON_START else origin + _HORIZON,
        **parts,
    )
    return next(iter(probe), None) is not None


def occurrences(
    rule: str,
    *,
    timezone: str,
    starts_at: datetime | str,
    until: datetime | str | None = None,
    count: int | None = None,
) -> Iterator[datetime]:
    """The occurrences (aware UTC) a recurrence with these settings would have, in order.

    A preview, with the same checks and DST policy as ``add_recurrence``; endless when
    neither ``until`` nor ``count`` is given (take what you need with ``itertools.islice``).
    """
    schedule = Schedule.build(rule, timezone=timezone, starts_at=starts_at, until=until)
    limit = check_count(count)
    for number, instant in enumerate(schedule.iter_from(schedule.starts_at, inclusive=True)):
        if limit is not None and number >= limit:
            return
        yield instant


def skipped_details(following: Following) -> list[dict[str, Any]]:
    """The ``detail`` of each ``skipped`` event recording ``following.skipped``.

    One event per passed-over occurrence (``{"scheduled_at": ...}``) up to
    ``SKIPPED_DETAIL_LIMIT``; the rest share one event
    (``{"count": N, "from": ..., "to": ...}``, ``count`` ``None`` when it was not counted).
    """
    each = following.skipped[:SKIPPED_DETAIL_LIMIT]
    details: list[dict[str, Any]] = [{"scheduled_at": isoformat(at)} for at in each]
    rest = following.skipped[SKIPPED_DETAIL_LIMIT:]
    if rest:
        details.append(
            {
                "count": None if following.skipped_uncounted else len(rest),
                "from": isoformat(rest[0]),
                "to": isoformat(rest[-1]),
            }
        )
    return details


# --- rule builders -------------------------------------------------------------------------


def _clock(hour: int, minute: int) -> str:
    for name, value, high in (("hour", hour, 23), ("minute", minute, 59)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
            raise ValidationError(f"{name} must be an integer 0..{high}, got {value!r}", field=name)
    return f"BYHOUR={hour};BYMINUTE={minute}"


def daily_rule(hour: int, minute: int = 0) -> str:
    """Every day at ``hour:minute`` local time.

    ``daily_rule(9)`` is ``"FREQ=DAILY;BYHOUR=9;BYMINUTE=0"``.
    """
    return f"FREQ=DAILY;{_clock(hour, minute)}"


_DAY_NAMES: Final = {
    spelling: code
    for code, name in zip(
        _DAYS,
        ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"),
        strict=True,
    )
    for spelling in (code, name, name[:3])
}


def _day_code(day: object) -> str:
    if isinstance(day, int) and not isinstance(day, bool) and 0 <= day < len(_DAYS):
        return _DAYS[day]
    if isinstance(day, str) and day.strip().upper() in _DAY_NAMES:
        return _DAY_NAMES[day.strip().upper()]
    raise ValidationError(
        f"days: {day!r} is not a weekday (MO..SU, a name such as 'monday', or 0..6 from Monday)",
        field="days",
    )


def weekly_rule(days: str | int | Iterable[str | int], hour: int, minute: int = 0) -> str:
    """Every week on ``days`` at ``hour:minute``: ``weekly_rule(["MO", "TH"], 9)``.

    ``days`` are codes (``"MO"``), names (``"monday"``) or numbers (0 is Monday, as in
    ``date.weekday()``); a comma-separated string works too.
    """
    items: list[str | int]
    if isinstance(days, str):
        items = [part for part in days.split(",") if part.strip()]
    elif isinstance(days, int):
        items = [days]
    else:
        items = list(days)
    if not items:
        raise ValidationError("days must name at least one weekday", field="days")
    codes = sorted({_day_code(day) for day in items}, key=_DAYS.index)
    return f"FREQ=WEEKLY;BYDAY={','.join(codes)};{_clock(hour, minute)}"


def monthly_rule(day: int, hour: int, minute: int = 0) -> str:
    """Every month on ``day`` (1..31; -1 is the last day) at ``hour:minute``.

    Months without that day are passed by, as RFC 5545 says (``monthly_rule(31, 9)`` runs
    seven times a year); use ``-1`` for "the last day of every month".
    """
    if isinstance(day, bool) or not isinstance(day, int) or not (1 <= abs(day) <= 31):  # noqa: PLR2004
        raise ValidationError(f"day must be 1..31 or -31..-1, got {day!r}", field="day")
    return f"FREQ=MONTHLY;BYMONTHDAY={day};{_clock(hour, minute)}"
