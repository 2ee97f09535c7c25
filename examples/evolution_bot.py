"""Post to a WhatsApp group through Evolution API, following its connection webhook.

What it does: opens a SQLite store, asks Evolution whether the instance is ``open``,
schedules a text post (and an image and a voice note if you give their URLs), serves the
endpoint Evolution calls on ``connection.update``, and runs the scheduler until every
post it scheduled is finished, with random gaps of 30-60 s between posts.

Needs: ``pip install 'engagequeue[gateways,http]' uvicorn``.

Environment:
    GROUP_ID            the group's chat id, e.g. 120363012345678901@g.us (required)
    EVOLUTION_URL       default http://localhost:8080
    EVOLUTION_API_KEY   the global AUTHENTICATION_API_KEY or the instance's token
    EVOLUTION_INSTANCE  the instance name, default "default"
    WEBHOOK_API_KEY     the instance token Evolution puts in its webhooks (required: the
                        receiver refuses requests without it)
    ALLOW_PRIVATE_MEDIA "1" if IMAGE_URL/VOICE_URL are on a private network shared with
                        Evolution (refused by default: see docs/security.md)
    WEBHOOK_PORT        where this script listens for Evolution's webhook, default 8091
    WEBHOOK_HOST        the address it listens on, default 0.0.0.0
    IMAGE_URL, VOICE_URL  optional media posts
    SEND_GAP, SEND_JITTER seconds between posts of the instance, default 30 and 30
    EQ_DB               the SQLite file, default engagequeue-evolution.sqlite3

Set the instance's webhook to ``http://<this host>:<WEBHOOK_PORT>/hooks/evolution`` with
the ``CONNECTION_UPDATE`` event (see docs/gateways/evolution.md).
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
from engagequeue.transports import EvolutionTransport, SessionStatus

FINISHED = {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}


def webhook_app(scheduler: Scheduler, key: str) -> FastAPI:
    """The gateway's webhook receiver: the key is required and checked before parsing,
    replays and stale states are refused (see docs/security.md)."""
    app = FastAPI()
    app.include_router(create_webhook_router(scheduler, evolution_api_key=key))
    return app


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    group = os.environ["GROUP_ID"]
    webhook_key = os.environ["WEBHOOK_API_KEY"]
    instance = os.environ.get("EVOLUTION_INSTANCE", "default")
    async with (
        SQLiteTaskStore(os.environ.get("EQ_DB", "engagequeue-evolution.sqlite3")) as store,
        EvolutionTransport(
            os.environ.get("EVOLUTION_URL", "http://localhost:8080"),
            api_key=os.environ.get("EVOLUTION_API_KEY") or None,
            allow_private_media=os.environ.get("ALLOW_PRIVATE_MEDIA") == "1",
        ) as transport,
    ):
        await store.add_session(instance)
        status = await transport.session_status(instance)
        print(f"Evolution instance {instance!r} is {status}")
        if status is SessionStatus.CONNECTED:
            await store.session_connected(instance)
        elif status is SessionStatus.DISCONNECTED:
            await store.session_disconnected(instance)

        now = datetime.now(UTC)
        posts = [Payload.text("Good morning! Today's offer: https://shop.example/today")]
        if image := os.environ.get("IMAGE_URL"):
            posts.append(Payload.image(image, caption="New this week"))
        if voice := os.environ.get("VOICE_URL"):
            posts.append(Payload("audio", content="Reply with a 👍", media_url=voice))
        tasks = [
            await store.schedule(instance, group, payload, now + timedelta(seconds=n))
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
                webhook_app(scheduler, webhook_key),
                host=os.environ.get("WEBHOOK_HOST", "0.0.0.0"),  # noqa: S104 - the gateway must reach it
                port=int(os.environ.get("WEBHOOK_PORT", "8091")),
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
