"""Property tests of recurrence expansion against a plain-Python model of a year.

Rules are generated (daily, weekly with BYDAY, monthly with BYMONTHDAY or BYSETPOS, with
BYHOUR/BYMINUTE that hit DST gaps and folds), in zones with unusual changes. The model
knows nothing of dateutil or of zoneinfo's ``fold``: it lists the rule's wall times day by
day and maps each one to an instant through the zone's offset periods, found by sampling.
"""

from __future__ import annotations

import calendar
import functools
import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engagequeue._recurrence import Schedule

ZONES = [
    "Europe/Paris",
    "America/Sao_Paulo",  # DST until 2019, changing at midnight
    "Australia/Lord_Howe",  # a 30-minute shift
    "Pacific/Chatham",  # +12:45 / +13:45, changing at 02:45
    "Asia/Kolkata",  # no DST
    "America/New_York",
]
DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
YEAR = timedelta(days=365)
# Hours and minutes that fall in or next to the gaps and folds of the zones above.
HOURS = st.sampled_from([0, 1, 2, 3, 9, 23])
MINUTES = st.sampled_from([0, 15, 30, 45, 59])


# --- the model -----------------------------------------------------------------------------


@functools.cache
def offset_periods(zone_name: str, year: int) -> list[tuple[datetime, datetime, timedelta]]:
    """The zone's (start, end, offset) periods from Dec 1 of ``year - 1`` to Feb of ``year + 2``.

    Every change of these zones since 2000 happens on a quarter hour UTC, so sampling each
    quarter hour finds it exactly; the assertion checks that the offset holds up to it.
    """
    zone = ZoneInfo(zone_name)
    start = datetime(year - 1, 12, 1, tzinfo=UTC)
    end = datetime(year + 2, 2, 1, tzinfo=UTC)
    step = timedelta(minutes=15)
    periods = []
    begin, offset = start, start.astimezone(zone).utcoffset()
    at = start
    while at < end:
        at += step
        current = at.astimezone(zone).utcoffset()
        if current != offset:
            assert (at - timedelta(seconds=1)).astimezone(zone).utcoffset() == offset
            periods.append((begin, at, offset))
            begin, offset = at, current
    periods.append((begin, end, offset))
    return periods


def model_instant(wall: datetime, zone_name: str) -> datetime:
    """The policy, stated plainly: the earliest instant showing ``wall``; in a gap, its end."""
    periods = offset_periods(zone_name, wall.year)
    showing = [
        wall.replace(tzinfo=UTC) - offset
        for begin, end, offset in periods
        if begin <= wall.replace(tzinfo=UTC) - offset < end
    ]
    if showing:
        return min(showing)
    for (_, change, before), (_, _, after) in itertools.pairwise(periods):
        naive = change.replace(tzinfo=None)
        if naive + before <= wall < naive + after:
            return change
    raise AssertionError(f"{wall} neither exists nor lies in a gap of {zone_name}")


def month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


def week_index(day: date) -> int:
    return (day - timedelta(days=day.weekday())).toordinal() // 7


def model_walls(spec: dict, origin: datetime, last_day: date) -> list[datetime]:
    """The rule's local wall times from the start of ``origin``'s period to ``last_day``."""
    times = sorted(itertools.product(spec["hours"], spec["minutes"]))
    step = spec["interval"]
    walls: list[datetime] = []
    day = origin.date() - timedelta(days=40)
    while day <= last_day:
        if spec["kind"] == "daily":
            index = (day - origin.date()).days
            chosen = day if index >= 0 and index % step == 0 else None
        elif spec["kind"] == "weekly":
            index = week_index(day) - week_index(origin.date())
            ok = index >= 0 and index % step == 0 and DAYS[day.weekday()] in spec["days"]
            chosen = day if ok else None
        else:
            chosen = None
        if chosen is not None:
            walls.extend(
                datetime.combine(day, datetime.min.time()).replace(hour=h, minute=m)
                for h, m in times
            )
        day += timedelta(days=1)
    if spec["kind"] in {"monthday", "setpos"}:
        month = month_index(origin.date())
        while True:
            year, month0 = divmod(month, 12)
            first = date(year, month0 + 1, 1)
            if first > last_day:
                break
            length = calendar.monthrange(year, month0 + 1)[1]
            days = [date(year, month0 + 1, d) for d in range(1, length + 1)]
            if spec["kind"] == "monthday":
                wanted = {d if d > 0 else length + 1 + d for d in spec["monthdays"]}
                walls.extend(
                    datetime(x.year, x.month, x.day, h, m)  # noqa: DTZ001 - wall time
                    for x in days
                    if x.day in wanted
                    for h, m in times
                )
            else:
                pool = [
                    datetime(x.year, x.month, x.day, h, m)  # noqa: DTZ001 - wall time
                    for x in days
                    if DAYS[x.weekday()] in spec["days"]
                    for h, m in times
                ]
                picked = {
                    pool[p - 1 if p > 0 else p]
                    for p in spec["setpos"]
                    if p <= len(pool) and -p <= len(pool)
                }
                walls.extend(picked)
            month += step
    return sorted(walls)


def model_occurrences(spec: dict, zone_name: str, starts_at: datetime) -> list[datetime]:
    """Every occurrence in ``[starts_at, starts_at + 1 year)``, by the model."""
    origin = starts_at.astimezone(ZoneInfo(zone_name)).replace(tzinfo=None)
    end = starts_at + YEAR
    walls = model_walls(spec, origin, (end + timedelta(days=2)).date())
    instants = {model_instant(w, zone_name) for w in walls}
    return sorted(i for i in instants if starts_at <= i < end)


# --- generated rules -----------------------------------------------------------------------


def rule_text(spec: dict) -> str:
    freq = {"daily": "DAILY", "weekly": "WEEKLY", "monthday": "MONTHLY", "setpos": "MONTHLY"}
    parts = [f"FREQ={freq[spec['kind']]}"]
    if spec["interval"] != 1:
        parts.append(f"INTERVAL={spec['interval']}")
    if spec["kind"] in {"weekly", "setpos"}:
        parts.append("BYDAY=" + ",".join(spec["days"]))
    if spec["kind"] == "monthday":
        parts.append("BYMONTHDAY=" + ",".join(map(str, spec["monthdays"])))
    if spec["kind"] == "setpos":
        parts.append("BYSETPOS=" + ",".join(map(str, spec["setpos"])))
    parts.append("BYHOUR=" + ",".join(map(str, spec["hours"])))
    parts.append("BYMINUTE=" + ",".join(map(str, spec["minutes"])))
    return ";".join(parts)


def sorted_unique(elements: st.SearchStrategy, max_size: int) -> st.SearchStrategy:
    return st.lists(elements, min_size=1, max_size=max_size, unique=True).map(sorted)


days = st.lists(st.sampled_from(DAYS), min_size=1, max_size=4, unique=True).map(
    lambda ds: sorted(ds, key=DAYS.index)
)
specs = st.one_of(
    st.fixed_dictionaries({"kind": st.just("daily"), "interval": st.integers(1, 3)}),
    st.fixed_dictionaries({"kind": st.just("weekly"), "interval": st.integers(1, 3), "days": days}),
    st.fixed_dictionaries(
        {
            "kind": st.just("monthday"),
            "interval": st.integers(1, 2),
            "monthdays": sorted_unique(st.integers(1, 31) | st.integers(-31, -1), max_size=3),
        }
    ),
    st.fixed_dictionaries(
        {
            "kind": st.just("setpos"),
            "interval": st.just(1),
            "days": days,
            "setpos": sorted_unique(st.sampled_from([1, 2, 3, -1, -2]), max_size=2),
        }
    ),
).flatmap(
    lambda base: st.fixed_dictionaries(
        {"hours": sorted_unique(HOURS, 2), "minutes": sorted_unique(MINUTES, 2)}
    ).map(lambda times: {**base, **times})
)
starts = st.datetimes(
    min_value=datetime(2016, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
    max_value=datetime(2026, 12, 31),  # noqa: DTZ001
).map(lambda naive: naive.replace(tzinfo=UTC))
zones = st.sampled_from(ZONES)
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def year_of(schedule: Schedule) -> list[datetime]:
    end = schedule.starts_at + YEAR
    return list(
        itertools.takewhile(
            lambda i: i < end, schedule.iter_from(schedule.starts_at, inclusive=True)
        )
    )


@SETTINGS
@given(spec=specs, zone=zones, start=starts)
def test_a_year_of_occurrences_matches_the_model(spec, zone, start) -> None:
    schedule = Schedule.build(rule_text(spec), timezone=zone, starts_at=start)
    assert year_of(schedule) == model_occurrences(spec, zone, start)


@SETTINGS
@given(spec=specs, zone=zones, start=starts)
def test_occurrences_increase_sit_on_rule_times_or_gap_ends_and_never_repeat_a_wall_time(
    spec, zone, start
) -> None:
    schedule = Schedule.build(rule_text(spec), timezone=zone, starts_at=start)
    tz = ZoneInfo(zone)
    occurrences = year_of(schedule)
    assert all(a < b for a, b in itertools.pairwise(occurrences))
    walls = [o.astimezone(tz).replace(tzinfo=None) for o in occurrences]
    assert len(set(walls)) == len(walls), "a local wall time was sent twice"
    for instant, wall in zip(occurrences, walls, strict=True):
        on_rule_time = wall.hour in spec["hours"] and wall.minute in spec["minutes"]
        offset_before = (instant - timedelta(seconds=1)).astimezone(tz).utcoffset()
        gap_end = offset_before != instant.astimezone(tz).utcoffset() and wall.second == 0
        if not on_rule_time:
            # The rule time fell in the gap that ends at this instant.
            skipped = [
                (instant.replace(tzinfo=None) + offset_before).replace(hour=h, minute=m)
                for h in spec["hours"]
                for m in spec["minutes"]
            ]
            gap = (instant.replace(tzinfo=None) + offset_before, wall)
            assert gap_end, f"{wall} is neither a rule time nor the end of a gap"
            assert any(gap[0] <= s < gap[1] for s in skipped)
        assert wall.second == 0
        assert wall.microsecond == 0


@SETTINGS
@given(spec=specs, zone=zones, start=starts, offset=st.integers(0, 364 * 24 * 60))
def test_after_any_instant_is_the_first_model_occurrence_after_it(
    spec, zone, start, offset
) -> None:
    """after() starts from the period holding the instant, not from DTSTART, and agrees."""
    schedule = Schedule.build(rule_text(spec), timezone=zone, starts_at=start)
    instant = start + timedelta(minutes=offset, seconds=offset % 60)
    expected = [o for o in model_occurrences(spec, zone, start) if o > instant]
    found = schedule.after(instant)
    if expected:
        assert found == expected[0]
    else:
        assert found is None or found >= start + YEAR


@settings(max_examples=60, deadline=None)
@given(spec=specs, zone=zones, start=starts, down=st.integers(0, 60 * 24 * 40))
def test_following_after_downtime_is_the_first_after_now_and_skips_the_rest(
    spec, zone, start, down
) -> None:
    schedule = Schedule.build(rule_text(spec), timezone=zone, starts_at=start)
    year = model_occurrences(spec, zone, start)
    if not year:
        return
    previous = year[0]
    now = previous + timedelta(minutes=down)
    following = schedule.following(previous, now=now, issued=1, count=None)
    passed = [o for o in year if previous < o <= now]
    later = [o for o in year if o > now]
    assert list(following.skipped) == passed
    if later:
        assert following.next_at == later[0]
        assert following.issued == 1 + len(passed) + 1
