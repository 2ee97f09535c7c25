"""What the commands print: plain-text tables for people, the HTTP API's JSON for scripts.

The JSON comes from ``engagequeue._converters.converter``, the one serialiser the HTTP
adapter uses too, so ``engagequeue show --json`` prints exactly what ``GET
/api/moderation/engagement/{id}`` returns.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import click

from engagequeue._converters import converter

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from engagequeue._models import Page, Payload, Task, TaskEvent

    from ._inspect import SessionRow

__all__ = [
    "echo_json",
    "event_table",
    "field_lines",
    "page_table",
    "payload_fields",
    "payload_summary",
    "session_table",
    "task_detail",
    "task_table",
    "when",
]

_MAX_CELL: Final = 60


def echo_json(value: Any) -> None:  # noqa: ANN401 - any JSON value
    """Print ``value`` (a task, list of events, page, or plain JSON data) as the API's JSON."""
    click.echo(json.dumps(converter.unstructure(value), ensure_ascii=False, indent=2))


def when(value: datetime | None) -> str:
    """An instant as people read it in a table: ``2026-03-01 09:30:00Z`` (UTC, seconds)."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _cell(value: object, limit: int | None) -> str:
    text = "-" if value is None or value == "" else " ".join(str(value).split())
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], *, max_cell: int | None = _MAX_CELL
) -> str:
    """Left-aligned columns separated by two spaces, with a header line.

    Cells longer than ``max_cell`` characters are cut (``None``: never); line breaks in a
    cell become spaces, so each row stays on one line.
    """
    cells = [[_cell(v, max_cell) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [list(headers), *cells]
    ]
    return "\n".join(lines)


def payload_summary(payload: Payload) -> str:
    """A post in one table cell: its text, or its media URL and caption."""
    if payload.media_url is None:
        return payload.content or ""
    caption = f" | {payload.content}" if payload.content else ""
    return f"{payload.media_url}{caption}"


def _what(task: Task) -> str:
    return payload_summary(task.payload)


_TASK_HEADERS: Final = ("ID", "SCHEDULED (UTC)", "STATUS", "TYPE", "TRIES", "CONTENT")


def _task_row(task: Task) -> tuple[object, ...]:
    return (
        task.id,
        when(task.scheduled_at),
        task.status.value,
        task.payload.media_type.value,
        f"{task.attempts}/{task.max_attempts}",
        _what(task),
    )


def task_table(tasks: Sequence[Task]) -> str:
    """Tasks, one per line."""
    return table(_TASK_HEADERS, [_task_row(t) for t in tasks])


def page_table(page: Page) -> str:
    """A history page and a line saying which part of the matches it shows."""
    if not page.items:
        return f"no posts match ({page.total} in all)"
    first = page.offset + 1
    last = page.offset + len(page.items)
    more = f"; next page: --offset {last}" if page.has_more else ""
    return f"{task_table(page.items)}\n\nposts {first}-{last} of {page.total}{more}"


def task_detail(task: Task) -> str:
    """One task, one field per line."""
    fields: list[tuple[str, object]] = [
        ("id", task.id),
        ("session", task.session_id),
        ("group", task.group_id),
        *payload_fields(task.payload),
    ]
    fields += [
        ("scheduled", when(task.scheduled_at)),
        ("status", task.status.value),
        ("attempts", f"{task.attempts} of {task.max_attempts}"),
        ("last error", task.last_error),
        ("created", when(task.created_at)),
        ("updated", when(task.updated_at)),
    ]
    return field_lines(fields)


def payload_fields(payload: Payload) -> list[tuple[str, object]]:
    """A post's type and content as ``(name, value)`` lines of a detail view."""
    fields: list[tuple[str, object]] = [("type", payload.media_type.value)]
    if payload.media_url is not None:
        fields += [("media url", payload.media_url), ("caption", payload.content)]
    else:
        fields.append(("text", payload.content))
    return fields


def field_lines(fields: Sequence[tuple[str, object]]) -> str:
    """One ``name  value`` line per field, the values aligned; ``None`` shows as ``-``."""
    width = max(len(name) for name, _ in fields)
    return "\n".join(
        f"{name.ljust(width)}  {'-' if value is None else value}" for name, value in fields
    )


def _detail(detail: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in detail.items())


def event_table(events: Sequence[TaskEvent]) -> str:
    """A task's audit trail, oldest first."""
    rows = [
        (e.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%fZ"), e.kind, _detail(e.detail))
        for e in events
    ]
    return table(("AT (UTC)", "EVENT", "DETAIL"), rows, max_cell=None)


def session_table(sessions: Sequence[SessionRow]) -> str:
    """Sessions with their state and number of pending posts."""
    if not sessions:
        return "no sessions yet; add one with: engagequeue sessions add SESSION"
    rows = [
        (s.id, "connected" if s.connected else "disconnected", s.pending, when(s.created_at))
        for s in sessions
    ]
    return table(("SESSION", "STATE", "PENDING", "ADDED (UTC)"), rows)
