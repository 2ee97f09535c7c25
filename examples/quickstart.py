# Copyright 2026 engagequeue developers. Licensed under the MIT license.
"""Quick start: schedule three posts, let the Scheduler send them, read the history.

Run it with ``python examples/quickstart.py [db-path]`` (default: a temporary file). It
uses ``ConsoleTransport``, which prints each post instead of sending it to WhatsApp; swap
in ``engagequeue.transports.WahaTransport(...)`` or ``EvolutionTransport(...)`` to go live.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from engagequeue import ConsoleTransport, Payload, Scheduler, SQLiteTaskStore

SESSION = "shop-bot"  # a WAHA session name or an Evolution instance name
GROUP = "120363021234567890@g.us"  # a WhatsApp group's chat id


async def main(db_path: Path) -> None:
    async with SQLiteTaskStore(db_path) as store:
        await store.add_session(SESSION)
        start = datetime.now(UTC)
        posts = [
            Payload.text("Good morning! Our weekly tips are out: https://example.com/tips"),
            Payload.image("https://example.com/new-arrivals.jpg", caption="New arrivals are in"),
            Payload.text("Last call: the spring offer ends tonight https://example.com/offer"),
        ]
        for i, payload in enumerate(posts):
            task = await store.schedule(SESSION, GROUP, payload, start + timedelta(seconds=1 + i))
            print(f"scheduled {task.id} for {task.scheduled_at:%H:%M:%S}")

        # The scheduler sleeps until the next post is due and sends it. A bot keeps it
        # running for its whole life; this example stops once every post has left.
        async with Scheduler(store, ConsoleTransport()):
            while True:
                unsent = await store.history(
                    SESSION, GROUP, start=start, status=["pending", "processing"]
                )
                if unsent.total == 0:
                    break
                await asyncio.sleep(0.1)

        print("history:")
        page = await store.history(SESSION, GROUP, start=start)
        for task in page.items:
            print(
                f"  {task.scheduled_at:%H:%M:%S} {task.status.value:<9} "
                f"attempts={task.attempts} message_id={task.message_id}"
            )
        trail = await store.events(page.items[-1].id)
        print(f"audit trail of the last post: {', '.join(e.kind for e in trail)}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        asyncio.run(main(Path(sys.argv[1])))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(main(Path(tmp) / "quickstart.sqlite3"))
