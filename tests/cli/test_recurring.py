"""``engagequeue recurring ...`` as a subprocess, on a real SQLite file and the real PostgreSQL."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
from clitools import Target, lines, one_line_error, serve

from engagequeue import daily_rule, monthly_rule, occurrences, weekly_rule
from engagequeue._times import isoformat

RECURRENCE_KEYS = {
    "id",
    "sessionId",
    "groupId",
    "mediaType",
    "content",
    "mediaUrl",
    "rule",
    "timezone",
    "startsAt",
    "until",
    "count",
    "status",
    "nextAt",
    "createdAt",
    "updatedAt",
}
GROUP = "news@g.us"
PARIS = ZoneInfo("Europe/Paris")


def add(target: Target, *args: str) -> dict:
    recurrence = json.loads(target.ok("recurring", "add", "bot", GROUP, *args, "--json"))
    assert set(recurrence) >= RECURRENCE_KEYS
    return recurrence


def show(target: Target, recurrence_id: str) -> dict:
    return json.loads(target.ok("recurring", "show", recurrence_id, "--json"))


def occurrence_ids(target: Target, recurrence_id: str, *args: str) -> list[dict]:
    page = json.loads(
        target.ok("history", "bot", GROUP, "--recurrence", recurrence_id, *args, "--json")
    )
    return page["items"]


def preview(target: Target, recurrence_id: str, n: int) -> list[str]:
    """The UTC column of ``recurring show``'s upcoming occurrences, as ISO instants."""
    out = target.ok("recurring", "show", recurrence_id, "--next", str(n))
    block = out.split("next occurrences:\n", 1)[1].split("\n\n", 1)[0]
    rows = lines(block)
    assert rows[0].split()[:3] == ["#", "AT", "(UTC)"]
    return [f"{row.split()[1]}T{row.split()[2].removesuffix('Z')}.000000Z" for row in rows[1:]]


def iso(values: object) -> list[str]:
    return [isoformat(v) for v in values]  # type: ignore[attr-defined]


def test_add_with_each_rule_option_then_list_and_show(target: Target) -> None:
    target.ok("sessions", "add", "bot")
    weekly = add(
        target, "--text", "Monday tips", "--weekly", "MO,TH@09:00", "--timezone", "Europe/Paris"
    )
    daily = add(
        target,
        "--image",
        "https://example.com/q.jpg",
        "--caption",
        "Question",
        "--daily",
        "18:30",
        "--timezone",
        "America/New_York",
        "--count",
        "3",
    )
    monthly = add(
        target,
        "--audio",
        "https://example.com/v.ogg",
        "--monthly",
        "-1@20:00",
        "--timezone",
        "Asia/Kolkata",
    )
    raw = add(
        target,
        "--video",
        "https://example.com/v.mp4",
        "--rule",
        "rrule:freq=weekly;interval=2;byday=fr;byhour=17;byminute=0",
        "--timezone",
        "UTC",
        "--max-attempts",
        "5",
    )

    assert weekly["rule"] == weekly_rule(["MO", "TH"], 9)
    assert daily["rule"] == daily_rule(18, 30)
    assert monthly["rule"] == monthly_rule(-1, 20)
    assert raw["rule"] == "FREQ=WEEKLY;INTERVAL=2;BYDAY=FR;BYHOUR=17;BYMINUTE=0"
    assert (daily["mediaType"], daily["content"], daily["mediaUrl"], daily["count"]) == (
        "image",
        "Question",
        "https://example.com/q.jpg",
        3,
    )
    assert (monthly["mediaType"], monthly["content"]) == ("audio", None)
    assert raw["maxAttempts"] == 5
    for recurrence in (weekly, daily, monthly, raw):
        assert recurrence["status"] == "active"
        # The first occurrence is the rule's first time after now, a pending post.
        first = next(
            occurrences(
                recurrence["rule"],
                timezone=recurrence["timezone"],
                starts_at=recurrence["startsAt"],
            )
        )
        assert recurrence["nextAt"] == isoformat(first)
        [task] = occurrence_ids(target, recurrence["id"])
        assert (task["id"], task["status"], task["scheduledAt"]) == (
            recurrence["nextTaskId"],
            "pending",
            recurrence["nextAt"],
        )
        assert show(target, recurrence["id"]) == recurrence

    listed = json.loads(target.ok("recurring", "list", "bot", GROUP, "--json"))
    assert [r["id"] for r in listed] == [r["id"] for r in (weekly, daily, monthly, raw)]
    table = lines(target.ok("recurring", "list", "bot", GROUP))
    assert table[0].split()[:4] == ["ID", "STATUS", "NEXT", "(UTC)"]
    assert [row.split()[:2] for row in table[1:]] == [[r["id"], "active"] for r in listed]
    assert "Monday tips" in table[1]
    assert "no recurring posts" in target.ok("recurring", "list", "bot", "other@g.us")

    detail = target.ok("recurring", "show", weekly["id"])
    assert f"id            {weekly['id']}" in detail
    assert "timezone      Europe/Paris" in detail
    # Upcoming occurrences, as the library's preview gives them, and the audit trail.
    expected = itertools.islice(
        occurrences(weekly["rule"], timezone="Europe/Paris", starts_at=weekly["startsAt"]), 4
    )
    assert preview(target, weekly["id"], 4) == iso(expected)
    trail = lines(detail.split("audit trail:\n", 1)[1])
    assert [row.split()[2] for row in trail[1:]] == ["created", "scheduled"]
    # A count caps the preview: three occurrences in all.
    assert len(preview(target, daily["id"], 10)) == 3


def test_dates_are_read_in_the_zone_and_the_dst_policy_holds(target: Target) -> None:
    target.ok("sessions", "add", "bot")
    # The EU's spring-forward night of 2030 is 31 March: 02:30 does not exist in Paris.
    recurrence = add(
        target,
        "--text",
        "night owl",
        "--daily",
        "02:30",
        "--timezone",
        "Europe/Paris",
        "--start",
        "2030-03-29",
        "--until",
        "2030-03-31",
    )
    assert recurrence["startsAt"] == isoformat(datetime(2030, 3, 29, tzinfo=PARIS))
    # A bare --until date covers that whole local day (CEST by its end).
    end_of_day = datetime(2030, 4, 1, tzinfo=PARIS) - timedelta(seconds=1)
    assert recurrence["until"] == isoformat(end_of_day)
    walls = [datetime(2030, 3, day, 2, 30, tzinfo=PARIS) for day in (29, 30)]
    gap_end = datetime(2030, 3, 31, 3, 0, tzinfo=PARIS)  # the first instant after the gap
    assert gap_end.utcoffset() == timedelta(hours=2)
    assert preview(target, recurrence["id"], 10) == iso([*walls, gap_end])
    assert recurrence["nextAt"] == isoformat(walls[0])
    shown = target.ok("recurring", "show", recurrence["id"])
    assert "Sun 2030-03-31 03:00 CEST" in shown


def test_edit_pause_resume_end_and_their_audit_trail(target: Target) -> None:
    target.ok("sessions", "add", "bot")
    one_off = json.loads(
        target.ok("schedule", "bot", GROUP, "--text", "one-off", "--at", "+1h", "--json")
    )
    image = add(
        target,
        "--image",
        "https://example.com/a.jpg",
        "--caption",
        "old",
        "--weekly",
        "MO@09:00",
        "--timezone",
        "Europe/Paris",
    )
    rid = image["id"]
    pending = image["nextTaskId"]

    recaptioned = json.loads(target.ok("recurring", "edit", rid, "--caption", "new", "--json"))
    assert (recaptioned["content"], recaptioned["mediaUrl"]) == ("new", image["mediaUrl"])
    uncaptioned = json.loads(target.ok("recurring", "edit", rid, "--caption", "", "--json"))
    assert uncaptioned["content"] is None
    # The pending occurrence follows the recurrence's edits.
    assert json.loads(target.ok("show", pending, "--json"))["content"] is None

    moved = json.loads(
        target.ok(
            "recurring", "edit", rid, "--daily", "07:15", "--timezone", "Asia/Kolkata", "--json"
        )
    )
    assert (moved["rule"], moved["timezone"]) == (daily_rule(7, 15), "Asia/Kolkata")
    now = datetime.now(UTC)
    expected = next(occurrences(moved["rule"], timezone="Asia/Kolkata", starts_at=now))
    assert moved["nextAt"] == isoformat(expected)
    assert json.loads(target.ok("show", pending, "--json"))["scheduledAt"] == moved["nextAt"]

    # A bare --until date is read in the recurrence's own zone (Asia/Kolkata now).
    year = now.year + 1
    ended_by = json.loads(
        target.ok("recurring", "edit", rid, "--until", f"{year}-06-30", "--count", "400", "--json")
    )
    kolkata = ZoneInfo("Asia/Kolkata")
    assert ended_by["until"] == isoformat(
        datetime(year, 7, 1, tzinfo=kolkata) - timedelta(seconds=1)
    )
    assert ended_by["count"] == 400

    replaced = json.loads(target.ok("recurring", "edit", rid, "--text", "now a text", "--json"))
    assert (replaced["mediaType"], replaced["content"], replaced["mediaUrl"]) == (
        "text",
        "now a text",
        None,
    )

    assert "paused recurrence" in target.ok("recurring", "pause", rid)
    paused = show(target, rid)
    assert (paused["status"], paused["nextAt"], paused["nextTaskId"]) == ("paused", None, None)
    assert json.loads(target.ok("show", pending, "--json"))["status"] == "cancelled"
    assert [
        r["id"]
        for r in json.loads(
            target.ok("recurring", "list", "bot", GROUP, "--status", "paused", "--json")
        )
    ] == [rid]
    assert (
        json.loads(
            target.ok("recurring", "list", "bot", GROUP, "--status", "active,ended", "--json")
        )
        == []
    )

    resumed = json.loads(target.ok("recurring", "resume", rid, "--json"))
    assert resumed["status"] == "active"
    assert resumed["nextTaskId"] not in (None, pending)
    ended = json.loads(target.ok("recurring", "end", rid, "--json"))
    assert (ended["status"], ended["nextAt"]) == ("ended", None)

    # history --recurrence: this recurrence's occurrences only, not the one-off post.
    tasks = occurrence_ids(target, rid)
    assert {t["id"] for t in tasks} == {pending, resumed["nextTaskId"]}
    assert {t["status"] for t in tasks} == {"cancelled"}
    assert {t["recurrenceId"] for t in tasks} == {rid}
    everything = json.loads(target.ok("history", "bot", GROUP, "--json"))["items"]
    assert one_off["id"] in {t["id"] for t in everything}

    kinds = [e["kind"] for e in json.loads(target.ok("recurring", "events", rid, "--json"))]
    assert kinds[:2] == ["created", "scheduled"]
    assert kinds.count("edited") == 5
    assert kinds[-4:] == ["paused", "resumed", "scheduled", "ended"]
    table = lines(target.ok("recurring", "events", rid))
    assert [row.split()[2] for row in table[1:]] == kinds

    # An ended recurrence can be neither edited, paused nor resumed: exit 1, one line.
    for args in (("edit", rid, "--text", "x"), ("pause", rid), ("resume", rid)):
        done = target.run("recurring", *args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        one_line_error(done, rid, "ended")
    assert show(target, rid) == ended
    assert target.ok("recurring", "end", rid).startswith("ended recurrence")  # idempotent


def test_unknown_recurrence_is_exit_1_naming_it(target: Target) -> None:
    target.ok("sessions", "add", "bot")
    for args in (
        ("show", "no-such-id"),
        ("events", "no-such-id"),
        ("edit", "no-such-id", "--text", "x"),
        ("edit", "no-such-id", "--caption", "x"),
        ("edit", "no-such-id", "--until", "2031-01-01"),
        ("pause", "no-such-id"),
        ("resume", "no-such-id"),
        ("end", "no-such-id"),
    ):
        done = target.run("recurring", *args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        one_line_error(done, "no recurrence", "no-such-id")
        assert done.stdout == ""


def test_unknown_session_is_exit_1(target: Target) -> None:
    done = target.run(
        "recurring", "add", "ghost", GROUP, "--text", "x", "--daily", "09:00", "--timezone", "UTC"
    )
    assert done.returncode == 1
    one_line_error(done, "ghost", "sessions add")


REC = "{recurrence}"  # replaced by the id of an active text recurrence
ADD = ("recurring", "add", "bot", GROUP, "--text", "hi")
BAD = [
    # (arguments, what the message must name)
    ((*ADD, "--daily", "09:00", "--timezone", "Mars/Base"), "Mars/Base"),
    ((*ADD, "--daily", "09:00"), "--timezone"),
    ((*ADD, "--rule", "FREQ=SECONDLY", "--timezone", "UTC"), "once a minute"),
    ((*ADD, "--rule", "FREQ=MINUTELY;BYSECOND=0,30", "--timezone", "UTC"), "once a minute"),
    ((*ADD, "--rule", "DTSTART:20300101T090000Z", "--timezone", "UTC"), "DTSTART"),
    ((*ADD, "--rule", "FREQ=DAILY;COUNT=3", "--timezone", "UTC"), "--count"),
    ((*ADD, "--rule", "FREQ=DAILY;UNTIL=20300101T000000Z", "--timezone", "UTC"), "--until"),
    ((*ADD, "--rule", "FREQ=DAILY;BYFOO=1", "--timezone", "UTC"), "BYFOO"),
    ((*ADD, "--rule", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "--timezone", "UTC"), "--rule"),
    ((*ADD, "--daily", "09:00", "--timezone", "UTC", "--start", "2030-01-01T09:00"), "--start"),
    ((*ADD, "--daily", "09:00", "--timezone", "UTC", "--until", "2030-01-01 09:00"), "--until"),
    ((*ADD, "--daily", "09:00", "--timezone", "UTC", "--start", "2030-02-30"), "--start"),
    ((*ADD, "--daily", "09:00", "--timezone", "UTC", "--until", "2020-01-01"), "--until"),
    (
        (
            *ADD,
            "--daily",
            "09:00",
            "--timezone",
            "UTC",
            "--start",
            "2030-02-01",
            "--until",
            "2030-01-01",
        ),
        "--until",
    ),
    ((*ADD, "--daily", "09:00", "--timezone", "UTC", "--count", "0"), "--count"),
    ((*ADD, "--weekly", "MO,XX@09:00", "--timezone", "UTC"), "--weekly"),
    ((*ADD, "--weekly", "MO,TH", "--timezone", "UTC"), "--weekly"),
    ((*ADD, "--weekly", "MO@9h", "--timezone", "UTC"), "--weekly"),
    ((*ADD, "--daily", "24:00", "--timezone", "UTC"), "--daily"),
    ((*ADD, "--monthly", "0@09:00", "--timezone", "UTC"), "--monthly"),
    ((*ADD, "--daily", "09:00", "--weekly", "MO@09:00", "--timezone", "UTC"), "--daily"),
    ((*ADD, "--timezone", "UTC"), "--rule, --daily, --weekly, --monthly"),
    (("recurring", "add", "bot", GROUP, "--daily", "09:00", "--timezone", "UTC"), "--text"),
    (
        ("recurring", "add", "bot", GROUP, "--text", " ", "--daily", "09:00", "--timezone", "UTC"),
        "--text",
    ),
    ((*ADD, "--caption", "c", "--daily", "09:00", "--timezone", "UTC"), "--caption"),
    (
        ("recurring", "add", "", GROUP, "--text", "x", "--daily", "09:00", "--timezone", "UTC"),
        "SESSION",
    ),
    (("recurring", "list", "bot", GROUP, "--status", "sleeping"), "--status"),
    (("recurring", "show", ""), "ID"),
    (("recurring", "edit", REC), "at least one of"),
    (("recurring", "edit", REC, "--rule", "FREQ=SECONDLY"), "once a minute"),
    (("recurring", "edit", REC, "--weekly", "XX@09:00"), "--weekly"),
    (("recurring", "edit", REC, "--timezone", "Mars/Base"), "Mars/Base"),
    (("recurring", "edit", REC, "--until", "2030-01-01T09:00"), "--until"),
    (("recurring", "edit", REC, "--count", "0"), "--count"),
    (("recurring", "edit", REC, "--image", "ftp://example.com/a.jpg"), "--image"),
    (("recurring", "edit", REC, "--text", "a", "--audio", "https://example.com/a.ogg"), "--audio"),
    (("history", "bot", GROUP, "--recurrence", ""), "--recurrence"),
]
# Only meaningful once the recurrence exists: checked against what it is.
BAD_EXISTING = [
    (("recurring", "edit", REC, "--caption", "c"), "--caption"),
    (("recurring", "edit", REC, "--until", "2020-01-01"), "--until"),
    (("recurring", "edit", REC, "--rule", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"), "--rule"),
]


def _check_refused(target: Target, args: tuple[str, ...], named: str) -> None:
    done = target.run(*args)
    assert done.returncode == 2, (args, done.stdout, done.stderr)
    one_line_error(done, named)
    assert done.stdout == "", args


def test_bad_input_on_a_fresh_database_exits_2_and_creates_nothing(target: Target) -> None:
    for args, named in BAD:
        _check_refused(
            target, tuple(a.replace(REC, "661a0000000000000000000000000") for a in args), named
        )
        assert target.snapshot() is None, args


def test_bad_input_on_a_database_with_a_recurrence_exits_2_and_changes_nothing(
    target: Target,
) -> None:
    target.ok("sessions", "add", "bot")
    recurrence = add(target, "--text", "t", "--daily", "09:00", "--timezone", "Europe/Paris")
    before = target.snapshot()
    for args, named in BAD + BAD_EXISTING:
        _check_refused(target, tuple(a.replace(REC, recurrence["id"]) for a in args), named)
        assert target.snapshot() == before, args


def test_json_is_exactly_the_http_apis(target: Target) -> None:
    target.ok("sessions", "add", "bot")
    first = add(
        target,
        "--image",
        "https://example.com/a.jpg",
        "--caption",
        "c",
        "--weekly",
        "MO,FR@09:00",
        "--timezone",
        "Europe/Paris",
        "--count",
        "10",
    )
    second = add(target, "--text", "daily", "--daily", "08:00", "--timezone", "UTC")
    paused = json.loads(target.ok("recurring", "pause", second["id"], "--json"))
    edited = json.loads(target.ok("recurring", "edit", first["id"], "--caption", "d", "--json"))
    server, base = serve(target, "--no-webhooks")
    try:
        one = f"{base}/api/moderation/engagement/recurring"
        assert httpx.get(f"{one}/{first['id']}").json() == edited
        assert httpx.get(f"{one}/{second['id']}").json() == paused
        assert show(target, first["id"]) == httpx.get(f"{one}/{first['id']}").json()
        assert (
            json.loads(target.ok("recurring", "events", first["id"], "--json"))
            == httpx.get(f"{one}/{first['id']}/events").json()
        )
        group = f"{base}/api/sessions/bot/groups/{GROUP}/engagement/recurring"
        assert (
            json.loads(target.ok("recurring", "list", "bot", GROUP, "--json"))
            == httpx.get(group).json()
        )
        assert (
            json.loads(target.ok("recurring", "list", "bot", GROUP, "--status", "paused", "--json"))
            == httpx.get(group, params={"status": "paused"}).json()
        )
        assert server.terminate() == 0, server.stderr()
    finally:
        server.close()
