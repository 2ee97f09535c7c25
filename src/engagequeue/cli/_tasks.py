"""The admin commands: sessions, schedule, edit, cancel, show, events, history, migrate, health.

Every argument is checked before the database is opened, so bad input exits 2 without
creating, migrating or changing anything.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import click

from engagequeue._errors import ValidationError, VersionConflict
from engagequeue._filters import parse_bound, parse_status_filter
from engagequeue._models import MediaType, Payload, TaskStatus, check_identifier
from engagequeue._times import parse_instant

from ._app import BadInput, CliError, Config, bad_input, register, run_with_store
from ._inspect import Inspector
from ._output import (
    echo_json,
    event_table,
    page_table,
    session_table,
    task_detail,
)

if TYPE_CHECKING:
    from engagequeue._abc import TaskStore
    from engagequeue._models import Task

__all__ = ["parse_when"]

_RELATIVE: Final = re.compile(r"\+\s*(\d+(?:\.\d+)?)\s*([smhd])", re.IGNORECASE)
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_AT_HELP: Final = (
    "When to send: ISO 8601 with an offset or Z (2026-03-01T09:30:00+01:00), 'now', "
    "or from now: +90s, +15m, +2h, +1d."
)

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the HTTP API's JSON instead of a table."
)

_MAX_MERGES: Final = 16
"""How often ``edit`` re-reads and re-merges after a concurrent change of the post."""


def parse_when(text: str, option: str = "--at", *, now: datetime | None = None) -> datetime:
    """Parse a send time: ISO 8601 with an offset, ``now``, or ``+N`` seconds/minutes/hours/days."""
    stripped = text.strip()
    base = now or datetime.now(UTC)
    if stripped.lower() == "now":
        return base
    relative = _RELATIVE.fullmatch(stripped)
    if relative:
        return base + timedelta(seconds=float(relative[1]) * _UNITS[relative[2].lower()])
    try:
        return parse_instant(stripped, option)
    except ValidationError as exc:
        raise BadInput(f"{exc}; or 'now', or from now such as +15m") from None


def _identifier(value: str, name: str) -> str:
    try:
        return check_identifier(value, name)
    except ValidationError as exc:
        raise BadInput(str(exc)) from None


def _config(ctx: click.Context) -> Config:
    config = ctx.find_object(Config)
    if config is None:  # pragma: no cover - the root group always sets it
        raise CliError("no configuration")
    return config


def _print_task(task: Task, as_json: bool, verb: str | None = None) -> None:
    if as_json:
        echo_json(task)
        return
    if verb:
        click.echo(f"{verb} {task.id}")
    click.echo(task_detail(task))


# -- sessions ------------------------------------------------------------------------------


@click.group()
def sessions() -> None:
    """Add, list, connect, disconnect and delete WhatsApp sessions."""


@sessions.command("add")
@click.argument("session")
@click.pass_context
def sessions_add(ctx: click.Context, session: str) -> None:
    """Register SESSION (idempotent); a new session starts connected."""
    _identifier(session, "SESSION")
    run_with_store(_config(ctx), lambda store: store.add_session(session))
    click.echo(f"session {session} added")


@sessions.command("list")
@json_option
@click.pass_context
def sessions_list(ctx: click.Context, as_json: bool) -> None:
    """List the sessions, with their state and number of pending posts."""
    config = _config(ctx)

    async def rows() -> Any:  # noqa: ANN401 - list of SessionRow
        # Opening the store first creates or migrates the schema, like every other command.
        inspector = Inspector(config.db, config.schema)
        try:
            return await inspector.sessions()
        finally:
            await inspector.close()

    found = run_with_store(config, lambda _: rows())
    if as_json:
        echo_json([row.to_json() for row in found])
    else:
        click.echo(session_table(found))


@sessions.command("connect")
@click.argument("session")
@click.pass_context
def sessions_connect(ctx: click.Context, session: str) -> None:
    """Mark SESSION connected: its due posts can leave again (wakes running workers)."""
    _identifier(session, "SESSION")
    run_with_store(_config(ctx), lambda store: store.session_connected(session))
    click.echo(f"session {session} connected")


@sessions.command("disconnect")
@click.argument("session")
@click.pass_context
def sessions_disconnect(ctx: click.Context, session: str) -> None:
    """Mark SESSION disconnected; its posts being sent go back to pending."""
    _identifier(session, "SESSION")
    released = run_with_store(_config(ctx), lambda store: store.session_disconnected(session))
    click.echo(f"session {session} disconnected; {released} post(s) back to pending")


@sessions.command("delete")
@click.argument("session")
@click.pass_context
def sessions_delete(ctx: click.Context, session: str) -> None:
    """Delete SESSION with all its posts and their history."""
    _identifier(session, "SESSION")
    run_with_store(_config(ctx), lambda store: store.delete_session(session))
    click.echo(f"session {session} deleted, with its posts and their history")


# -- posts ---------------------------------------------------------------------------------

_MEDIA_OPTIONS: Final = {
    "text": "--text",
    "image": "--image",
    "video": "--video",
    "audio": "--audio",
}


def build_payload(
    text: str | None, image: str | None, video: str | None, audio: str | None, caption: str | None
) -> Payload:
    """The post the options describe: exactly one of text/image/video/audio, and a caption."""
    given = dict(zip(_MEDIA_OPTIONS, (text, image, video, audio), strict=True))
    chosen = [k for k, v in given.items() if v is not None]
    if len(chosen) != 1:
        names = ", ".join(_MEDIA_OPTIONS.values())
        what = "none" if not chosen else " and ".join(_MEDIA_OPTIONS[k] for k in chosen)
        raise BadInput(f"give exactly one of {names} (got {what})")
    kind = MediaType(chosen[0])
    option = _MEDIA_OPTIONS[kind.value]
    if caption is not None and kind in {MediaType.TEXT, MediaType.AUDIO}:
        raise BadInput(f"--caption: goes with --image or --video only, not {option}")
    content = given["text"] if kind is MediaType.TEXT else caption
    url = None if kind is MediaType.TEXT else given[kind.value]
    try:
        return Payload(kind, content=content, media_url=url)
    except ValidationError as exc:
        content_option = "--text" if kind is MediaType.TEXT else "--caption"
        raise bad_input(exc, {"content": content_option, "media_url": option}) from None


@click.command()
@click.argument("session")
@click.argument("group")
@click.option("--text", metavar="BODY", help="A text post with this body.")
@click.option("--image", metavar="URL", help="An image post of this http(s) URL.")
@click.option("--video", metavar="URL", help="A video post of this http(s) URL.")
@click.option("--audio", metavar="URL", help="A voice note of this http(s) URL.")
@click.option("--caption", metavar="TEXT", help="The caption of an image or video.")
@click.option("--at", "at", required=True, metavar="TIME", help=_AT_HELP)
@click.option(
    "--max-attempts",
    type=click.IntRange(1, 100),
    default=3,
    show_default=True,
    help="Send attempts before the post fails.",
)
@json_option
@click.pass_context
def schedule(
    ctx: click.Context,
    session: str,
    group: str,
    text: str | None,
    image: str | None,
    video: str | None,
    audio: str | None,
    caption: str | None,
    at: str,
    max_attempts: int,
    as_json: bool,
) -> None:
    """Schedule a post to GROUP (a chat id such as 1203...@g.us) through SESSION."""
    _identifier(session, "SESSION")
    _identifier(group, "GROUP")
    payload = build_payload(text, image, video, audio, caption)
    when = parse_when(at)
    task = run_with_store(
        _config(ctx),
        lambda store: store.schedule(session, group, payload, when, max_attempts=max_attempts),
    )
    _print_task(task, as_json, "scheduled")


def edited_payload(task: Task, text: str | None, caption: str | None) -> Payload | None:
    """The task's payload with ``--text`` or ``--caption`` applied (``None``: unchanged)."""
    payload = task.payload
    kind = payload.media_type
    if text is not None and kind is not MediaType.TEXT:
        raise BadInput(f"--text: post {task.id} is a {kind.value} post; change --caption instead")
    if caption is not None and kind is not MediaType.IMAGE and kind is not MediaType.VIDEO:
        raise BadInput(f"--caption: post {task.id} is a {kind.value} post, which has no caption")
    if text is None and caption is None:
        return None
    option = "--text" if text is not None else "--caption"
    content = text if text is not None else (caption or None)  # --caption '' removes it
    try:
        return Payload(
            kind,
            content=content,
            media_url=payload.media_url,
            mimetype=payload.mimetype,
            filename=payload.filename,
        )
    except ValidationError as exc:
        raise bad_input(exc, {"content": option}) from None


async def edit_merged(
    store: TaskStore,
    task_id: str,
    text: str | None,
    caption: str | None,
    when: datetime | None,
) -> Task:
    """Apply ``--text``/``--caption``/``--at`` to the post, never losing a concurrent edit.

    The new payload is built from the post as read, so it is applied to that version only;
    after a concurrent change the post is read again and the options merged onto it.
    """
    if text is None and caption is None:
        return await store.edit(task_id, scheduled_at=when)
    for _ in range(_MAX_MERGES):
        task = await store.get(task_id)
        payload = edited_payload(task, text, caption)
        try:
            return await store.edit(
                task_id, payload=payload, scheduled_at=when, if_version=task.version
            )
        except VersionConflict as exc:
            if exc.status is not TaskStatus.PENDING:
                raise
    raise CliError(f"post {task_id} changed {_MAX_MERGES} times while editing; retry")


@click.command()
@click.argument("task_id")
@click.option("--text", metavar="BODY", help="The new body of a text post.")
@click.option(
    "--caption", metavar="TEXT", help="The new caption of an image or video ('' removes it)."
)
@click.option("--at", "at", metavar="TIME", help=_AT_HELP)
@json_option
@click.pass_context
def edit(
    ctx: click.Context,
    task_id: str,
    text: str | None,
    caption: str | None,
    at: str | None,
    as_json: bool,
) -> None:
    """Change a pending post's text, caption and/or time."""
    if text is None and caption is None and at is None:
        raise BadInput("give at least one of --text, --caption, --at")
    _identifier(task_id, "TASK_ID")
    when = parse_when(at) if at is not None else None

    async def run(store: TaskStore) -> Task:
        return await edit_merged(store, task_id, text, caption, when)

    _print_task(run_with_store(_config(ctx), run), as_json, "edited")


@click.command()
@click.argument("task_id")
@json_option
@click.pass_context
def cancel(ctx: click.Context, task_id: str, as_json: bool) -> None:
    """Cancel a pending post."""
    _identifier(task_id, "TASK_ID")
    _print_task(run_with_store(_config(ctx), lambda s: s.cancel(task_id)), as_json, "cancelled")


@click.command()
@click.argument("task_id")
@json_option
@click.pass_context
def show(ctx: click.Context, task_id: str, as_json: bool) -> None:
    """Show a post."""
    _identifier(task_id, "TASK_ID")
    _print_task(run_with_store(_config(ctx), lambda s: s.get(task_id)), as_json)


@click.command()
@click.argument("task_id")
@json_option
@click.pass_context
def events(ctx: click.Context, task_id: str, as_json: bool) -> None:
    """Show a post's audit trail, oldest first."""
    _identifier(task_id, "TASK_ID")
    found = run_with_store(_config(ctx), lambda s: s.events(task_id))
    if as_json:
        echo_json(found)
    else:
        click.echo(event_table(found))


@click.command()
@click.argument("session")
@click.argument("group")
@click.option("--start", metavar="TIME|DATE", help="From this time (a bare date: its start, UTC).")
@click.option("--end", metavar="TIME|DATE", help="Before this time (a bare date: that whole day).")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    metavar="STATUS",
    help="pending, processing, completed, failed or cancelled; repeat or comma-separate.",
)
@click.option("--recurrence", metavar="ID", help="Only the occurrences of this recurring post.")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@json_option
@click.pass_context
def history(
    ctx: click.Context,
    session: str,
    group: str,
    start: str | None,
    end: str | None,
    statuses: tuple[str, ...],
    recurrence: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """List a group's posts by time, filtered and paginated."""
    _identifier(session, "SESSION")
    _identifier(group, "GROUP")
    if recurrence is not None:
        _identifier(recurrence, "--recurrence")
    try:
        lower = parse_bound(start, "--start", end=False)
        upper = parse_bound(end, "--end", end=True)
        wanted = parse_status_filter(statuses)
    except ValidationError as exc:
        raise bad_input(exc) from None
    # Both stores filter by recurrence; the TaskStore protocol predates recurring posts.
    filtered: dict[str, Any] = {} if recurrence is None else {"recurrence_id": recurrence}
    page = run_with_store(
        _config(ctx),
        lambda s: s.history(
            session,
            group,
            start=lower,
            end=upper,
            status=wanted,
            limit=limit,
            offset=offset,
            **filtered,
        ),
        errors={"recurrence_id": "--recurrence"},
    )
    if as_json:
        echo_json(page)
    else:
        click.echo(page_table(page))


@click.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Create the database's tables, or bring them to this version's schema."""
    config = _config(ctx)

    async def nothing(_: TaskStore) -> None:
        return None

    run_with_store(config, nothing)
    click.echo(f"database {config.db} is ready")


@click.command()
@click.pass_context
def health(ctx: click.Context) -> None:
    """Exit 0 when the database answers and its schema is current, 1 otherwise.

    Reads only: it never creates or migrates anything, so it is safe as a container probe.
    """
    config = _config(ctx)

    async def check() -> Any:  # noqa: ANN401 - SchemaState
        inspector = Inspector(config.db, config.schema)
        try:
            return await inspector.schema_state()
        finally:
            await inspector.close()

    try:
        state = asyncio.run(check())
    except Exception as exc:
        raise CliError(f"unhealthy: {exc}") from exc
    if not state.current:
        raise CliError(
            f"unhealthy: schema version {state.found}, this engagequeue needs {state.needed}; "
            "run 'engagequeue migrate'"
        )
    click.echo(f"ok: schema version {state.found}")


# The names the contract gives these commands.
register(sessions, schedule, edit, cancel, show, events, history, migrate, health)
