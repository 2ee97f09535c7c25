"""``engagequeue recurring``: add, list, show, edit, pause, resume and end recurring posts.

As with the other admin commands, every argument that can be checked alone is checked
before the database is opened, and ``add`` plans the whole recurrence (rule, zone, start,
end, first occurrence) the way the store will, so bad input exits 2 without creating,
migrating or changing anything. ``--json`` prints the HTTP API's Recurrence JSON, from the
converter the HTTP adapter uses.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import click

from engagequeue._abc import RecurringTaskStore
from engagequeue._errors import ValidationError
from engagequeue._models import MediaType, Payload
from engagequeue._recurrence import (
    MAX_COUNT,
    Recurrence,
    RecurrenceStatus,
    Schedule,
    check_timezone,
    daily_rule,
    monthly_rule,
    normalize_rule,
    resolve_wall_time,
    weekly_rule,
)
from engagequeue._store_args import new_task_id
from engagequeue._store_recurring import check_recurrence_status, plan_add

from ._app import BadInput, bad_input, register, run_with_store
from ._output import (
    echo_json,
    event_table,
    field_lines,
    payload_fields,
    payload_summary,
    table,
    when,
)
from ._tasks import _config, _identifier, build_payload, json_option, parse_when

if TYPE_CHECKING:
    from collections.abc import Awaitable
    from zoneinfo import ZoneInfo

    from engagequeue._abc import TaskStore
    from engagequeue._models import TaskEvent

__all__ = ["RecurringStore", "recurring", "rule_from_options"]

# ValidationError fields of the recurring methods, as the options users typed.
_FIELDS: Final = {
    "recurrence_id": "ID",
    "rule": "--rule",
    "timezone": "--timezone",
    "starts_at": "--start",
    "until": "--until",
    "count": "--count",
    "max_attempts": "--max-attempts",
}
_F = TypeVar("_F", bound=Callable[..., Any])

_CLOCK: Final = re.compile(r"(\d{1,2}):(\d{2})")
_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_PREVIEW: Final = 5
_TIME_HELP: Final = (
    "ISO 8601 with an offset or Z, 'now', +2h/+1d from now, or a bare date (YYYY-MM-DD) "
    "read in the recurrence's --timezone"
)


RecurringStore = RecurringTaskStore
"""The recurring methods both stores have, as ``RecurringTaskStore`` promises them."""


def _store(store: TaskStore) -> RecurringStore:
    return cast("RecurringStore", store)


# How the store's messages name arguments, and the options a command-line user types.
_SPELLINGS: Final = (
    ("the count= argument", "--count"),
    ("the until= argument", "--until"),
    ("give starts_at", "give --start"),
    ("before starts_at", "before --start (default now)"),
    ("after starts_at", "after --start (default now)"),
    ("see starts_at and --until", "see --start and --until"),
    ("see starts_at and until", "see --start and --until"),
)


def _refused(exc: ValidationError, fields: dict[str, str]) -> BadInput:
    """``bad_input`` for the recurring options, with the store's argument names as options."""
    message = bad_input(exc, fields).message
    for spelling, option in _SPELLINGS:
        message = message.replace(spelling, option)
    return BadInput(message)


# -- parsing the options -------------------------------------------------------------------


def _clock(text: str, option: str) -> tuple[int, int]:
    match = _CLOCK.fullmatch(text.strip())
    if not match:
        raise BadInput(f"{option}: the time must be HH:MM such as 09:30, got {text!r}")
    return int(match[1]), int(match[2])


def _at_split(text: str, option: str, example: str) -> tuple[str, tuple[int, int]]:
    what, sep, clock = text.rpartition("@")
    if not sep or not what.strip():
        raise BadInput(f"{option}: expected {example}, got {text!r}")
    return what.strip(), _clock(clock, option)


def rule_from_options(
    rule: str | None, daily: str | None, weekly: str | None, monthly: str | None
) -> tuple[str, str] | None:
    """The rule the options give, checked, and the option that gave it (``None``: none).

    ``--daily 09:30``, ``--weekly MO,TH@09:00`` and ``--monthly -1@18:00`` go through
    ``daily_rule``, ``weekly_rule`` and ``monthly_rule``; ``--rule`` is an RRULE value.
    """
    given = {
        "--rule": rule,
        "--daily": daily,
        "--weekly": weekly,
        "--monthly": monthly,
    }
    chosen = [(option, value) for option, value in given.items() if value is not None]
    if len(chosen) > 1:
        raise BadInput(
            f"give one of --rule, --daily, --weekly, --monthly, not {chosen[0][0]} "
            f"and {chosen[1][0]}"
        )
    if not chosen:
        return None
    option, value = chosen[0]
    try:
        if option == "--daily":
            text = daily_rule(*_clock(value, option))
        elif option == "--weekly":
            days, clock = _at_split(value, option, "DAYS@HH:MM such as MO,TH@09:00")
            text = weekly_rule(days, *clock)
        elif option == "--monthly":
            day, clock = _at_split(value, option, "DAY@HH:MM such as 1@09:00 or -1@18:00")
            if not re.fullmatch(r"[+-]?\d{1,2}", day):
                raise BadInput(f"{option}: the day must be 1..31 or -1 (the last), got {day!r}")
            text = monthly_rule(int(day), *clock)
        else:
            text = value
        return normalize_rule(text), option
    except ValidationError as exc:
        if exc.field in {"hour", "minute", "day"}:
            raise BadInput(f"{option}: {exc}") from None
        raise _refused(exc, {"rule": option, "days": option}) from None


def _zone(timezone: str) -> ZoneInfo:
    try:
        return check_timezone(timezone)
    except ValidationError as exc:
        raise _refused(exc, _FIELDS) from None


def parse_time(text: str, option: str, zone: ZoneInfo, *, end: bool) -> datetime:
    """``--start``/``--until``: what ``--at`` takes, or a bare date read in ``zone``.

    A bare date starts at its local midnight (``end=False``), or covers that whole local
    day (``end=True``: its last second, as ``until`` is inclusive).
    """
    stripped = text.strip()
    if not _DATE.fullmatch(stripped):
        return parse_when(text, option)
    try:
        day = date.fromisoformat(stripped)
    except ValueError:
        raise BadInput(f"{option}: {stripped!r} is not a date") from None
    if end:
        if day == date.max:
            raise BadInput(f"{option}: {stripped!r} is too far in the future")
        following = datetime.combine(day + timedelta(days=1), datetime.min.time())
        return resolve_wall_time(following, zone) - timedelta(seconds=1)
    return resolve_wall_time(datetime.combine(day, datetime.min.time()), zone)


def _media_given(*values: str | None) -> bool:
    return any(v is not None for v in values)


def _recaptioned(current: Recurrence, caption: str) -> Payload:
    """The recurrence's image or video with ``caption`` ('' removes it)."""
    payload = current.payload
    if payload.media_type not in {MediaType.IMAGE, MediaType.VIDEO}:
        raise BadInput(
            f"--caption: recurrence {current.id} is a {payload.media_type.value} post, which "
            "has no caption; give --text, --image, --video or --audio to replace the post"
        )
    try:
        return Payload(
            payload.media_type,
            content=caption or None,
            media_url=payload.media_url,
            mimetype=payload.mimetype,
            filename=payload.filename,
        )
    except ValidationError as exc:
        raise bad_input(exc, {"content": "--caption"}) from None


# -- printing ------------------------------------------------------------------------------


def _local(value: datetime | None, zone: str) -> str:
    """An instant as the recurrence's zone reads it: ``Mon 2026-03-02 09:00 CET``."""
    if value is None:
        return "-"
    return value.astimezone(check_timezone(zone)).strftime("%a %Y-%m-%d %H:%M %Z")


def recurrence_table(found: list[Recurrence]) -> str:
    """Recurrences, one per line, with their next occurrence."""
    if not found:
        return "no recurring posts"
    rows = [
        (
            r.id,
            r.status.value,
            when(r.next_at),
            _local(r.next_at, r.timezone),
            r.rule,
            r.timezone,
            r.payload.media_type.value,
            payload_summary(r.payload),
        )
        for r in found
    ]
    headers = ("ID", "STATUS", "NEXT (UTC)", "NEXT (LOCAL)", "RULE", "TIMEZONE", "TYPE", "CONTENT")
    return table(headers, rows)


def _upcoming(recurrence: Recurrence, limit: int) -> list[datetime]:
    """The pending occurrence and the ones after it, at most ``limit``, within ``count``."""
    r = recurrence
    if r.status is not RecurrenceStatus.ACTIVE or r.next_at is None or limit <= 0:
        return []
    schedule = Schedule.build(r.rule, timezone=r.timezone, starts_at=r.starts_at, until=r.until)
    # The pending occurrence is already counted in ``issued``.
    left = limit if r.count is None else min(limit, r.count - r.issued + 1)
    later = schedule.iter_after(r.next_at)
    return [r.next_at, *itertools.islice(later, max(left - 1, 0))]


def recurrence_detail(recurrence: Recurrence) -> str:
    """One recurrence, one field per line; instants in UTC and in its zone."""
    r = recurrence

    def both(value: datetime | None) -> str:
        return "-" if value is None else f"{when(value)}  ({_local(value, r.timezone)})"

    fields: list[tuple[str, object]] = [
        ("id", r.id),
        ("session", r.session_id),
        ("group", r.group_id),
        *payload_fields(r.payload),
    ]
    used = f"{r.issued}" if r.count is None else f"{r.issued} of {r.count}"
    fields += [
        ("rule", r.rule),
        ("timezone", r.timezone),
        ("starts", both(r.starts_at)),
        ("until", both(r.until)),
        ("count", r.count),
        ("status", r.status.value),
        ("next", both(r.next_at)),
        ("next post", r.next_task_id),
        ("occurrences", f"{used} used (created or skipped)"),
        ("max attempts", r.max_attempts),
        ("created", when(r.created_at)),
        ("updated", when(r.updated_at)),
    ]
    return field_lines(fields)


def _print(recurrence: Recurrence, as_json: bool, verb: str | None = None) -> None:
    if as_json:
        echo_json(recurrence)
        return
    if verb:
        click.echo(f"{verb} recurrence {recurrence.id}")
    click.echo(recurrence_detail(recurrence))


# -- the commands --------------------------------------------------------------------------


def _options(*options: Callable[[_F], _F]) -> Callable[[_F], _F]:
    """Several click options as one decorator, listed in the order given."""

    def decorate(command: _F) -> _F:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


_rule_options = _options(
    click.option(
        "--rule",
        metavar="RRULE",
        help="An RFC 5545 RRULE value without DTSTART, UNTIL or COUNT: "
        "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0.",
    ),
    click.option("--daily", metavar="HH:MM", help="Every day at this local time: 09:30."),
    click.option(
        "--weekly", metavar="DAYS@HH:MM", help="Every week on these days at this time: MO,TH@09:00."
    ),
    click.option(
        "--monthly",
        metavar="DAY@HH:MM",
        help="Every month on this day (-1: the last) at this time: 1@09:00.",
    ),
)


def _media_options(verb: str) -> Callable[[_F], _F]:
    return _options(
        click.option("--text", metavar="BODY", help=f"{verb} a text post with this body."),
        click.option("--image", metavar="URL", help=f"{verb} an image post of this http(s) URL."),
        click.option("--video", metavar="URL", help=f"{verb} a video post of this http(s) URL."),
        click.option("--audio", metavar="URL", help=f"{verb} a voice note of this http(s) URL."),
    )


@click.group()
def recurring() -> None:
    """Posts that repeat on a rule, in a timezone: add, list, show, edit, pause, resume, end."""


@recurring.command("add")
@click.argument("session")
@click.argument("group")
@_media_options("Send")
@click.option("--caption", metavar="TEXT", help="The caption of an image or video.")
@_rule_options
@click.option(
    "--timezone", required=True, metavar="ZONE", help="The IANA zone of the rule's wall times."
)
@click.option("--start", metavar="TIME|DATE", help=f"DTSTART, default now: {_TIME_HELP}.")
@click.option("--until", metavar="TIME|DATE", help=f"No occurrence after this: {_TIME_HELP}.")
@click.option(
    "--count", type=click.IntRange(1, MAX_COUNT), help="End after this many occurrences in all."
)
@click.option(
    "--max-attempts",
    type=click.IntRange(1, 100),
    default=3,
    show_default=True,
    help="Send attempts before an occurrence fails.",
)
@json_option
@click.pass_context
def recurring_add(
    ctx: click.Context,
    session: str,
    group: str,
    text: str | None,
    image: str | None,
    video: str | None,
    audio: str | None,
    caption: str | None,
    rule: str | None,
    daily: str | None,
    weekly: str | None,
    monthly: str | None,
    timezone: str,
    start: str | None,
    until: str | None,
    count: int | None,
    max_attempts: int,
    as_json: bool,
) -> None:
    """Add a recurring post to GROUP through SESSION; its first occurrence is scheduled now.

    Give the post (--text, --image, --video or --audio), the rule (--rule, --daily, --weekly
    or --monthly) and --timezone. A wall time skipped by a DST change leaves at the end of
    the gap; one that occurs twice leaves once.
    """
    _identifier(session, "SESSION")
    _identifier(group, "GROUP")
    payload = build_payload(text, image, video, audio, caption)
    chosen = rule_from_options(rule, daily, weekly, monthly)
    if chosen is None:
        raise BadInput("give one of --rule, --daily, --weekly, --monthly")
    text_rule, rule_option = chosen
    zone = _zone(timezone)
    starts_at = None if start is None else parse_time(start, "--start", zone, end=False)
    ends_at = None if until is None else parse_time(until, "--until", zone, end=True)
    fields = {**_FIELDS, "rule": rule_option}
    try:
        # The store's own plan, without I/O: whatever it would refuse is refused before the
        # database is opened (or created).
        plan_add(
            new_task_id(),
            session,
            group,
            payload,
            text_rule,
            timezone=timezone,
            starts_at=starts_at,
            until=ends_at,
            count=count,
            max_attempts=max_attempts,
            now=datetime.now(UTC),
        )
    except ValidationError as exc:
        raise _refused(exc, fields) from None
    added = run_with_store(
        _config(ctx),
        lambda store: _store(store).add_recurrence(
            session,
            group,
            payload,
            text_rule,
            timezone=timezone,
            starts_at=starts_at,
            until=ends_at,
            count=count,
            max_attempts=max_attempts,
        ),
        errors=fields,
    )
    _print(added, as_json, "added")


@recurring.command("list")
@click.argument("session")
@click.argument("group")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    metavar="STATUS",
    help="active, paused or ended; repeat or comma-separate.",
)
@json_option
@click.pass_context
def recurring_list(
    ctx: click.Context, session: str, group: str, statuses: tuple[str, ...], as_json: bool
) -> None:
    """List GROUP's recurring posts, oldest first, with their next occurrence."""
    _identifier(session, "SESSION")
    _identifier(group, "GROUP")
    names = [part for value in statuses for part in value.split(",") if part.strip()]
    try:
        wanted = check_recurrence_status(names) if names else None
    except ValidationError as exc:
        raise bad_input(exc) from None
    found = run_with_store(
        _config(ctx), lambda store: _store(store).recurrences(session, group, status=wanted)
    )
    if as_json:
        echo_json(found)
    else:
        click.echo(recurrence_table(found))


@recurring.command("show")
@click.argument("recurrence_id", metavar="ID")
@click.option(
    "--next",
    "preview",
    type=click.IntRange(0, 100),
    default=_PREVIEW,
    show_default=True,
    help="How many upcoming occurrences to list.",
)
@json_option
@click.pass_context
def recurring_show(ctx: click.Context, recurrence_id: str, preview: int, as_json: bool) -> None:
    """Show a recurring post, its next occurrences and its audit trail.

    With --json, only the recurrence, as the HTTP API returns it.
    """
    _identifier(recurrence_id, "ID")

    async def read(store: TaskStore) -> tuple[Recurrence, list[TaskEvent]]:
        found = await _store(store).get_recurrence(recurrence_id)
        return found, [] if as_json else await _store(store).recurrence_events(recurrence_id)

    found, trail = run_with_store(_config(ctx), read, errors=_FIELDS)
    if as_json:
        echo_json(found)
        return
    click.echo(recurrence_detail(found))
    upcoming = _upcoming(found, preview)
    if upcoming:
        click.echo("\nnext occurrences:")
        rows = [(n, when(at), _local(at, found.timezone)) for n, at in enumerate(upcoming, 1)]
        click.echo(table(("#", "AT (UTC)", f"LOCAL ({found.timezone})"), rows))
    click.echo("\naudit trail:")
    click.echo(event_table(trail))


@recurring.command("events")
@click.argument("recurrence_id", metavar="ID")
@json_option
@click.pass_context
def recurring_events(ctx: click.Context, recurrence_id: str, as_json: bool) -> None:
    """Show a recurring post's audit trail, oldest first."""
    _identifier(recurrence_id, "ID")
    trail = run_with_store(
        _config(ctx), lambda store: _store(store).recurrence_events(recurrence_id), errors=_FIELDS
    )
    if as_json:
        echo_json(trail)
    else:
        click.echo(event_table(trail))


@recurring.command("edit")
@click.argument("recurrence_id", metavar="ID")
@_media_options("Replace the post with")
@click.option(
    "--caption",
    metavar="TEXT",
    help="The caption: with --image/--video, or alone to change it ('' removes it).",
)
@_rule_options
@click.option("--timezone", metavar="ZONE", help="The new IANA zone.")
@click.option("--until", metavar="TIME|DATE", help=f"The new end: {_TIME_HELP}.")
@click.option("--count", type=click.IntRange(1, MAX_COUNT), help="The new number of occurrences.")
@json_option
@click.pass_context
def recurring_edit(
    ctx: click.Context,
    recurrence_id: str,
    text: str | None,
    image: str | None,
    video: str | None,
    audio: str | None,
    caption: str | None,
    rule: str | None,
    daily: str | None,
    weekly: str | None,
    monthly: str | None,
    timezone: str | None,
    until: str | None,
    count: int | None,
    as_json: bool,
) -> None:
    """Change a recurring post: every occurrence not yet sent follows.

    A pending occurrence edited on its own (engagequeue edit TASK_ID) keeps its edit.
    --until and --count can be changed, not removed.
    """
    if not _media_given(text, image, video, audio, caption, rule, daily, weekly, monthly) and (
        timezone is None and until is None and count is None
    ):
        raise BadInput(
            "give at least one of --text, --image, --video, --audio, --caption, --rule, "
            "--daily, --weekly, --monthly, --timezone, --until, --count"
        )
    _identifier(recurrence_id, "ID")
    replaced = (
        build_payload(text, image, video, audio, caption)
        if _media_given(text, image, video, audio)
        else None
    )
    chosen = rule_from_options(rule, daily, weekly, monthly)
    new_rule, rule_option = chosen if chosen is not None else (None, "--rule")
    zone = None if timezone is None else _zone(timezone)
    # A bare --until date is read in the recurrence's zone: looked up unless --timezone.
    ends_at = None
    if until is not None and not _DATE.fullmatch(until.strip()):
        ends_at = parse_when(until, "--until")
    elif until is not None and zone is not None:
        ends_at = parse_time(until, "--until", zone, end=True)
    fields = {**_FIELDS, "rule": rule_option}

    async def change(store: TaskStore) -> Recurrence:
        recurring_store = _store(store)
        payload = replaced
        limit = ends_at
        if (caption is not None and replaced is None) or (until is not None and limit is None):
            current = await recurring_store.get_recurrence(recurrence_id)
            if caption is not None and replaced is None:
                payload = _recaptioned(current, caption)
            if until is not None and limit is None:
                limit = parse_time(until, "--until", check_timezone(current.timezone), end=True)
        try:
            return await recurring_store.edit_recurrence(
                recurrence_id,
                payload=payload,
                rule=new_rule,
                timezone=timezone,
                until=limit,
                count=count,
            )
        except ValidationError as exc:
            raise _refused(exc, fields) from None

    _print(run_with_store(_config(ctx), change, errors=fields), as_json, "edited")


def _state_command(
    name: str,
    verb: str,
    summary: str,
    method: Callable[[RecurringStore, str], Awaitable[Recurrence]],
) -> None:
    @click.argument("recurrence_id", metavar="ID")
    @json_option
    @click.pass_context
    def command(ctx: click.Context, recurrence_id: str, as_json: bool) -> None:
        _identifier(recurrence_id, "ID")
        done = run_with_store(
            _config(ctx), lambda store: method(_store(store), recurrence_id), errors=_FIELDS
        )
        _print(done, as_json, verb)

    command.__doc__ = summary
    recurring.command(name)(command)


_state_command(
    "pause",
    "paused",
    "Pause a recurring post: its pending occurrence is cancelled, no more are created.",
    lambda store, rid: store.pause_recurrence(rid),
)
_state_command(
    "resume",
    "resumed",
    "Resume a paused recurring post: the first occurrence after now is scheduled.",
    lambda store, rid: store.resume_recurrence(rid),
)
_state_command(
    "end",
    "ended",
    "End a recurring post for good: its pending occurrence is cancelled.",
    lambda store, rid: store.end_recurrence(rid),
)

register(recurring)
