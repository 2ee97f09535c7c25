"""Recurrence rules: what is refused (naming the field), the DST policy's worked examples,
the rule builders and the cost of finding the next occurrence of an old recurrence."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

import engagequeue
from engagequeue import ValidationError, daily_rule, monthly_rule, occurrences, weekly_rule
from engagequeue._recurrence import Schedule, check_count, normalize_rule, skipped_details

START = "2026-01-01T00:00:00Z"


def build(rule: str, timezone: str = "Europe/Paris", **kwargs: object) -> Schedule:
    return Schedule.build(
        rule, timezone=timezone, starts_at=kwargs.pop("starts_at", START), **kwargs
    )


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ("FREQ=SECONDLY", "more frequent than once a minute"),
        ("FREQ=MINUTELY;BYSECOND=0,30", "more frequent than once a minute"),
        ("FREQ=DAILY;X-NAME=1", "unknown part X-NAME"),
        ("FREQ=DAILY;BYEASTER=0", "unknown part BYEASTER"),
        ("DTSTART:20260101T090000Z\nRRULE:FREQ=DAILY", "DTSTART"),
        ("FREQ=DAILY;DTSTART=20260101T090000", "DTSTART"),
        ("RRULE:FREQ=DAILY\nEXDATE:20260102T090000Z", "one RRULE value"),
        ("FREQ=DAILY;UNTIL=20260201T000000Z", "until= argument"),
        ("FREQ=DAILY;UNTIL=20260201", "until= argument"),
        ("FREQ=DAILY;COUNT=3", "count= argument"),
        ("FREQ=FORTNIGHTLY", "FREQ=FORTNIGHTLY is not one of"),
        ("BYHOUR=9", "FREQ is required"),
        ("FREQ=DAILY;BYHOUR=24", "BYHOUR=24 is out of range"),
        ("FREQ=DAILY;BYMINUTE=-1", "BYMINUTE=-1 is out of range"),
        ("FREQ=MONTHLY;BYMONTHDAY=0", "BYMONTHDAY=0 is out of range"),
        ("FREQ=DAILY;BYHOUR=nine", "takes integers"),
        ("FREQ=DAILY;INTERVAL=0", "INTERVAL must be"),
        ("FREQ=WEEKLY;BYDAY=1MO", "ordinal"),
        ("FREQ=WEEKLY;BYDAY=XX", "day codes"),
        ("FREQ=WEEKLY;BYMONTHDAY=1", "not allowed with FREQ=WEEKLY"),
        ("FREQ=MONTHLY;BYSETPOS=1", "BYSETPOS needs another"),
        ("FREQ=DAILY;BYHOUR=9;BYHOUR=10", "given twice"),
        ("FREQ=DAILY;BYHOUR", "NAME=VALUE"),
        ("FREQ=DAILY; BYHOUR=9", "no other properties, spaces"),
        ("", "must not be empty"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "no date"),
        ("FREQ=DAILY;BYMONTH=4;BYMONTHDAY=31", "no date"),
        ("FREQ=HOURLY;INTERVAL=2;BYHOUR=2", "no occurrence"),  # starts at 01:00: odd hours only
    ],
)
def test_bad_rules_are_refused_naming_the_rule(rule: str, words: str) -> None:
    with pytest.raises(ValidationError, match=words) as caught:
        build(rule)
    assert caught.value.field == "rule"


def test_a_rule_that_is_not_text_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        normalize_rule(None)
    assert caught.value.field == "rule"


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus", "", "localtime", "europe/paris", "../etc/passwd", 5]
)
def test_unknown_zones_are_refused_naming_the_timezone(zone: object) -> None:
    with pytest.raises(ValidationError) as caught:
        Schedule.build("FREQ=DAILY", timezone=zone, starts_at=START)
    assert caught.value.field == "timezone"


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("starts_at", {"starts_at": datetime(2026, 1, 1, 9)}),  # noqa: DTZ001 - the point
        ("starts_at", {"starts_at": "2026-01-01T09:00:00"}),
        ("starts_at", {"starts_at": datetime(2026, 3, 29, 2, 30, tzinfo=ZoneInfo("Europe/Paris"))}),
        ("until", {"until": datetime(2026, 2, 1)}),  # noqa: DTZ001
        ("until", {"until": "2025-12-31T00:00:00Z"}),
        ("until", {"until": "2026-01-01T00:00:01Z"}),  # before the first occurrence (09:00)
    ],
)
def test_naive_or_impossible_times_are_refused_naming_the_field(field: str, kwargs: dict) -> None:
    with pytest.raises(ValidationError) as caught:
        build("FREQ=DAILY;BYHOUR=9;BYMINUTE=0", **kwargs)
    assert caught.value.field == field


@pytest.mark.parametrize("count", [0, -1, True, 10_001, 2.0, "3"])
def test_bad_counts_are_refused(count: object) -> None:
    with pytest.raises(ValidationError) as caught:
        check_count(count)
    assert caught.value.field == "count"


def test_rules_are_normalised_and_an_rrule_prefix_is_accepted() -> None:
    assert normalize_rule(" rrule:freq=weekly;byday=mo,th;byhour=9;byminute=0; ") == (
        "FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=9;BYMINUTE=0"
    )


def local(instants: list[datetime], zone: str) -> list[str]:
    return [i.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %z") for i in instants]


# The DST policy's worked examples (docs/recurring.md shows the same table).
@pytest.mark.parametrize(
    ("rule", "zone", "starts_at", "expected"),
    [
        # Spring forward in Paris: 02:30 does not exist on 29 March; it leaves at 03:00.
        (
            daily_rule(2, 30),
            "Europe/Paris",
            "2026-03-28T00:00:00Z",
            ["2026-03-28 02:30 +0100", "2026-03-29 03:00 +0200", "2026-03-30 02:30 +0200"],
        ),
        # Fall back in Paris: 02:30 occurs twice on 25 October; it leaves once, the first time.
        (
            daily_rule(2, 30),
            "Europe/Paris",
            "2026-10-24T00:00:00Z",
            ["2026-10-24 02:30 +0200", "2026-10-25 02:30 +0200", "2026-10-26 02:30 +0100"],
        ),
        # Hourly across the fall back: the repeated hour is sent once, not twice.
        (
            "FREQ=HOURLY;BYMINUTE=30",
            "America/New_York",
            "2026-11-01T04:00:00Z",
            ["2026-11-01 00:30 -0400", "2026-11-01 01:30 -0400", "2026-11-01 02:30 -0500"],
        ),
        # Lord Howe moves by 30 minutes: 02:15 does not exist on 4 October; it leaves at 02:30.
        (
            daily_rule(2, 15),
            "Australia/Lord_Howe",
            "2026-10-02T12:00:00Z",
            ["2026-10-03 02:15 +1030", "2026-10-04 02:30 +1100", "2026-10-05 02:15 +1100"],
        ),
        # Chatham changes at 02:45 local: 03:00 does not exist on 27 September 2026.
        (
            daily_rule(3, 0),
            "Pacific/Chatham",
            "2026-09-25T12:00:00Z",
            ["2026-09-26 03:00 +1245", "2026-09-27 03:45 +1345", "2026-09-28 03:00 +1345"],
        ),
        # Sao Paulo (2018) skipped midnight itself: 00:00 leaves at 01:00.
        (
            daily_rule(0, 0),
            "America/Sao_Paulo",
            "2018-11-03T00:00:00Z",
            ["2018-11-03 00:00 -0300", "2018-11-04 01:00 -0200", "2018-11-05 00:00 -0200"],
        ),
        # Kolkata has no DST: every day at 09:00 +0530.
        (
            daily_rule(9, 0),
            "Asia/Kolkata",
            "2026-03-28T00:00:00Z",
            ["2026-03-28 09:00 +0530", "2026-03-29 09:00 +0530", "2026-03-30 09:00 +0530"],
        ),
    ],
)
def test_the_dst_policy_worked_examples(
    rule: str, zone: str, starts_at: str, expected: list[str]
) -> None:
    found = list(itertools.islice(occurrences(rule, timezone=zone, starts_at=starts_at), 3))
    assert local(found, zone) == expected


def test_a_minutely_rule_through_a_gap_leaves_once_at_its_end() -> None:
    found = list(
        itertools.islice(
            occurrences(
                "FREQ=MINUTELY;BYHOUR=1,2,3",
                timezone="Europe/Paris",
                starts_at="2026-03-29T00:58:00Z",
            ),
            4,
        )
    )
    # 01:58, 01:59, then every wall minute of 02:00..02:59 is skipped: all leave at 03:00.
    assert local(found, "Europe/Paris") == [
        "2026-03-29 01:58 +0100",
        "2026-03-29 01:59 +0100",
        "2026-03-29 03:00 +0200",
        "2026-03-29 03:01 +0200",
    ]


def test_the_first_occurrence_is_at_or_after_starts_at_and_until_is_inclusive() -> None:
    found = list(
        occurrences(
            daily_rule(9),
            timezone="UTC",
            starts_at="2026-01-01T09:00:00Z",
            until="2026-01-03T09:00:00Z",
        )
    )
    assert [f.isoformat() for f in found] == [
        "2026-01-01T09:00:00+00:00",
        "2026-01-02T09:00:00+00:00",
        "2026-01-03T09:00:00+00:00",
    ]
    assert len(list(occurrences(daily_rule(9), timezone="UTC", starts_at=START, count=5))) == 5


def test_parts_the_rule_leaves_out_come_from_starts_at_but_seconds_are_zero() -> None:
    first = build("FREQ=DAILY", timezone="UTC", starts_at="2026-01-01T08:12:37.5Z").first()
    assert first == datetime(2026, 1, 2, 8, 12, tzinfo=UTC)
    monthly = build(
        "FREQ=MONTHLY;BYHOUR=9;BYMINUTE=0", timezone="UTC", starts_at="2026-01-31T00:00:00Z"
    )
    assert [
        o.month for o in itertools.islice(monthly.iter_from(monthly.starts_at, inclusive=True), 3)
    ] == [1, 3, 5]


@pytest.mark.parametrize(
    ("made", "rule"),
    [
        (daily_rule(9), "FREQ=DAILY;BYHOUR=9;BYMINUTE=0"),
        (daily_rule(18, 45), "FREQ=DAILY;BYHOUR=18;BYMINUTE=45"),
        (weekly_rule(["th", "MO"], 9), "FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=9;BYMINUTE=0"),
        (weekly_rule("monday,Fri", 9, 30), "FREQ=WEEKLY;BYDAY=MO,FR;BYHOUR=9;BYMINUTE=30"),
        (weekly_rule(4, 17), "FREQ=WEEKLY;BYDAY=FR;BYHOUR=17;BYMINUTE=0"),
        (monthly_rule(1, 8), "FREQ=MONTHLY;BYMONTHDAY=1;BYHOUR=8;BYMINUTE=0"),
        (monthly_rule(-1, 20, 5), "FREQ=MONTHLY;BYMONTHDAY=-1;BYHOUR=20;BYMINUTE=5"),
    ],
)
def test_rule_builders_write_the_rule(made: str, rule: str) -> None:
    assert made == rule
    assert normalize_rule(made) == rule


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: daily_rule(24), "hour"),
        (lambda: daily_rule(9, 60), "minute"),
        (lambda: daily_rule(True), "hour"),
        (lambda: weekly_rule([], 9), "days"),
        (lambda: weekly_rule(["MX"], 9), "days"),
        (lambda: weekly_rule(7, 9), "days"),
        (lambda: monthly_rule(0, 9), "day"),
        (lambda: monthly_rule(32, 9), "day"),
    ],
)
def test_rule_builders_refuse_bad_values(call, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        call()
    assert caught.value.field == field


def test_after_on_an_old_recurrence_starts_near_the_instant_not_at_dtstart(monkeypatch) -> None:
    """The next occurrence of a minutely rule started in 1971 costs a few candidates."""
    produced = []
    real = engagequeue._recurrence._rrule.rrule

    class Counting(real):
        def __iter__(self):
            for wall in super().__iter__():
                produced.append(wall)
                yield wall

    monkeypatch.setattr(engagequeue._recurrence._rrule, "rrule", Counting)
    schedule = build(
        "FREQ=MINUTELY;INTERVAL=7", timezone="Europe/Paris", starts_at="1971-01-01T00:00:00Z"
    )
    produced.clear()
    instant = datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC)
    found = schedule.after(instant)
    assert found is not None
    assert instant < found <= instant + timedelta(minutes=7)
    # 1971-01-01 00:00 UTC is 01:00 in Paris: the phase is kept across 55 years.
    origin = datetime(1971, 1, 1, tzinfo=UTC)
    wall_start = datetime(1971, 1, 1, 1)  # noqa: DTZ001 - a wall time
    wall = found.astimezone(ZoneInfo("Europe/Paris")).replace(tzinfo=None)
    minutes = (wall - wall_start) // timedelta(minutes=1)
    assert minutes % 7 == 0
    assert found > origin
    assert len(produced) < 10


def test_following_counts_each_used_occurrence_and_ends_at_count() -> None:
    schedule = build(daily_rule(9), timezone="UTC")
    first = schedule.next_from(schedule.starts_at, inclusive=True, issued=0, count=3)
    assert first.next_at == datetime(2026, 1, 1, 9, tzinfo=UTC)
    assert first.issued == 1
    # Claimed on time: the next is the following day's.
    second = schedule.following(first.next_at, now=first.next_at, issued=1, count=3)
    assert second.next_at == datetime(2026, 1, 2, 9, tzinfo=UTC)
    assert second.skipped == ()
    # Claimed two and a half days late: the 3rd and 4th January are passed over, count reached.
    late = schedule.following(
        second.next_at, now=datetime(2026, 1, 4, 21, tzinfo=UTC), issued=2, count=3
    )
    assert late.next_at is None
    assert late.skipped == (datetime(2026, 1, 3, 9, tzinfo=UTC),)
    assert late.issued == 3
    endless = schedule.following(
        second.next_at, now=datetime(2026, 1, 4, 21, tzinfo=UTC), issued=2, count=None
    )
    assert endless.next_at == datetime(2026, 1, 5, 9, tzinfo=UTC)
    assert endless.issued == 5


def test_a_long_outage_records_a_hundred_skips_and_one_summary() -> None:
    schedule = build("FREQ=MINUTELY", timezone="UTC", starts_at="2026-01-01T00:00:00Z")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    following = schedule.following(start, now=start + timedelta(minutes=250), issued=1, count=None)
    assert following.next_at == start + timedelta(minutes=251)
    details = skipped_details(following)
    assert len(details) == 101
    assert details[0] == {"scheduled_at": "2026-01-01T00:01:00.000000Z"}
    assert details[-1] == {
        "count": 150,
        "from": "2026-01-01T01:41:00.000000Z",
        "to": "2026-01-01T04:10:00.000000Z",
    }
    # Weeks of a minutely rule down: no scan of every minute, a jump past now.
    weeks = schedule.following(start, now=start + timedelta(weeks=3), issued=1, count=None)
    assert weeks.next_at == start + timedelta(weeks=3, minutes=1)
    assert weeks.skipped_uncounted
    assert skipped_details(weeks)[-1]["count"] is None
