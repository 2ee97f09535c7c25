"""``engagequeue demo``: the queue at work in a few seconds, told as a short story.

A throw-away SQLite file, a real ``Scheduler`` and the ``ConsoleTransport`` (it prints each
post instead of sending it): no network, no set-up, nothing left behind.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final

import click

from engagequeue._errors import TaskConflict
from engagequeue._models import Payload, TaskStatus
from engagequeue._scheduler import Scheduler
from engagequeue._store_sqlite import SQLiteTaskStore
from engagequeue._transport_memory import ConsoleTransport

from ._app import register
from ._output import event_table, page_table, task_table

if TYPE_CHECKING:
    from engagequeue._models import Task

__all__ = ["demo"]

SESSION: Final = "demo-bot"
NEWS: Final = "news@g.us"
GALLERY: Final = "gallery@g.us"
_STEP: Final = 2.0  # seconds between two posts: slow enough to watch, fast enough to wait for


def _say(text: str = "") -> None:
    click.echo(text)


def _heading(number: int, text: str) -> None:
    _say()
    _say(click.style(f"{number}. {text}", bold=True))


async def _until(store: SQLiteTaskStore, task: Task, statuses: set[TaskStatus]) -> Task:
    """Wait (polling the store, as any other process could) until ``task`` is in ``statuses``."""
    while True:
        current = await store.get(task.id)
        if current.status in statuses:
            return current
        await asyncio.sleep(0.05)


async def _story(path: Path) -> None:
    started = time.monotonic()
    async with SQLiteTaskStore(path) as store:
        _heading(1, f"A community manager registers her WhatsApp session {SESSION!r}.")
        await store.add_session(SESSION)

        now = datetime.now(UTC)
        _heading(2, "She schedules four posts for two groups, a few seconds apart.")
        plan = [
            (NEWS, Payload.text("Good morning! The spring sale starts today."), 1),
            (GALLERY, Payload.image("https://example.com/spring.jpg", "The new collection"), 2),
            (NEWS, Payload.text("Reminder: the sale ends Sunday at midnigth."), 3),
            (GALLERY, Payload.video("https://example.com/tour.mp4", "A tour of the shop"), 4),
        ]
        tasks = [
            await store.schedule(SESSION, group, payload, now + timedelta(seconds=_STEP * n))
            for group, payload, n in plan
        ]
        _say(task_table(tasks))

        _heading(3, "A worker starts; the console transport prints each post as it leaves.")
        first, _, typo, _ = tasks
        async with Scheduler(store, ConsoleTransport(), poll_interval=1.0):
            sent_first = await _until(store, first, {TaskStatus.COMPLETED})

            _heading(4, "She spots a typo in the third post, still pending, and fixes it.")
            fixed = await store.edit(
                typo.id, payload=Payload.text("Reminder: the sale ends Sunday at midnight.")
            )
            _say(f"   edit accepted: {fixed.id} now reads {fixed.payload.content!r}")

            _heading(5, "She tries to edit the first post too, but it has already left.")
            try:
                await store.edit(sent_first.id, payload=Payload.text("Good morning, everyone!"))
            except TaskConflict as exc:
                _say(f"   edit refused (TaskConflict, status {exc.status.value}): {exc}")

            _heading(6, "The worker sends the rest, each at its time, in order.")
            for task in tasks:
                await _until(store, task, {TaskStatus.COMPLETED, TaskStatus.FAILED})

        _heading(7, "The history of each group: every post sent, once, on time.")
        for group in (NEWS, GALLERY):
            _say(f"   {group}")
            _say(page_table(await store.history(SESSION, group)))
            _say()
        _heading(8, "And the audit trail of the edited post.")
        _say(event_table(await store.events(typo.id)))

    elapsed = time.monotonic() - started
    _say()
    _say(
        f"Done in {elapsed:.1f} s, without touching the network. Try it on your own database: "
        "engagequeue --help"
    )


@click.command()
def demo() -> None:
    """Watch the queue at work: posts scheduled, edited, sent and audited, in under 30 s.

    Uses a throw-away SQLite file and prints posts instead of sending them: no network, no
    set-up, nothing left behind (whatever --db says).
    """
    with tempfile.TemporaryDirectory(prefix="engagequeue-demo-") as folder:
        path = Path(folder) / "demo.sqlite3"
        _say(f"engagequeue demo: a short story of the queue (throw-away database {path})")
        asyncio.run(_story(path))


register(demo)
