"""Post to a WhatsApp group through WAHA, following the session's status webhook.

What it does: opens a SQLite store, asks WAHA whether the session is WORKING, schedules a
text post (and an image and a voice note if you give their URLs), serves the webhook
endpoint WAHA calls on ``session.status``, and runs the scheduler until every post it
scheduled is finished. Posts are paced the way WAHA advises (random gaps of 30-60 s).

Needs: ``pip install 'engagequeue[gateways,http]' uvicorn``.

Environment:
    GROUP_ID            the group's chat id, e.g. 120363012345678901@g.us (required)
    WAHA_URL            default http://localhost:3000
    WAHA_API_KEY        WAHA's WAHA_API_KEY
    WAHA_SESSION        the session name, default "default"
    WAHA_MESSAGE_IDS    "1" if the session runs the NOWEB or GOWS engine (retry-safe ids)
    WAHA_HMAC_KEY       the hmac key set in the session's webhook config (required: the
                        receiver refuses unsigned requests)
    ALLOW_PRIVATE_MEDIA "1" if IMAGE_URL/VOICE_URL are on a private network shared with
                        WAHA (refused by default: see docs/security.md)
    WEBHOOK_PORT        where this script listens for WAHA's webhook, default 8090
    WEBHOOK_HOST        the address it listens on, default 0.0.0.0
    IMAGE_URL, VOICE_URL  optional media posts
    SEND_GAP, SEND_JITTER seconds between posts of the session, default 30 and 30
    EQ_DB               the SQLite file, default engagequeue-waha.sqlite3

Point the session's webhook at ``http://<this host>:<WEBHOOK_PORT>/hooks/waha`` with the
``session.status`` event and the same hmac key (see docs/gateways/waha.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime, timedelta

import uvicorn
from fastapi import FastAPI

from engagequeue import Payload, Scheduler, SQLiteTaskStore, TaskStatus
from engagequeue.http import create_webhook_router
from engagequeue.transports import SessionStatus, WahaTransport

FINISHED = {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}


def webhook_app(scheduler: Scheduler, key: str) -> FastAPI:
    """The gateway's webhook receiver: the key is required and checked before parsing,
    replays and stale states are refused (see docs/security.md)."""
    app = FastAPI()
    app.include_router(create_webhook_router(scheduler, waha_hmac_key=key))
    return app


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    group = os.environ["GROUP_ID"]
    session = os.environ.get("WAHA_SESSION", "default")
    hmac_key = os.environ["WAHA_HMAC_KEY"]
    async with (
        SQLiteTaskStore(os.environ.get("EQ_DB", "engagequeue-waha.sqlite3")) as store,
        WahaTransport(
            os.environ.get("WAHA_URL", "http://localhost:3000"),
            api_key=os.environ.get("WAHA_API_KEY") or None,
            message_ids=os.environ.get("WAHA_MESSAGE_IDS") == "1",
            allow_private_media=os.environ.get("ALLOW_PRIVATE_MEDIA") == "1",
        ) as transport,
    ):
        await store.add_session(session)
        # Start from what WAHA says now; the webhook keeps it up to date afterwards.
        status = await transport.session_status(session)
        print(f"WAHA session {session!r} is {status}")
        if status is SessionStatus.CONNECTED:
            await store.session_connected(session)
        elif status is SessionStatus.DISCONNECTED:
            await store.session_disconnected(session)

        now = datetime.now(UTC)
        posts = [Payload.text("Good morning! Today's offer: https://shop.example/today")]
        if image := os.environ.get("IMAGE_URL"):
            posts.append(Payload.image(image, caption="New this week"))
        if voice := os.environ.get("VOICE_URL"):
            posts.append(Payload("audio", content="Reply with a 👍", media_url=voice))
        tasks = [
            await store.schedule(session, group, payload, now + timedelta(seconds=n))
            for n, payload in enumerate(posts)
        ]

        scheduler = Scheduler(
            store,
            transport,
            min_send_gap=float(os.environ.get("SEND_GAP", "30")),
            send_gap_jitter=float(os.environ.get("SEND_JITTER", "30")),
            send_timeout=150,  # above the transport's 120 s read timeout: large groups are slow
            poll_interval=5,
        )
        server = uvicorn.Server(
            uvicorn.Config(
                webhook_app(scheduler, hmac_key),
                host=os.environ.get("WEBHOOK_HOST", "0.0.0.0"),  # noqa: S104 - the gateway must reach it
                port=int(os.environ.get("WEBHOOK_PORT", "8090")),
                log_level="warning",
            )
        )
        serving = asyncio.create_task(server.serve())
        async with scheduler:
            while True:
                current = [await store.get(t.id) for t in tasks]
                if all(t.status in FINISHED for t in current):
                    break
                await asyncio.sleep(1)
        server.should_exit = True
        await serving
        for task in current:
            print(f"{task.payload.media_type}: {task.status} {task.message_id or task.last_error}")


if __name__ == "__main__":
    asyncio.run(main())
