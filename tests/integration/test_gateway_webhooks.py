"""Session-status webhooks over real HTTP: a fake gateway posts its webhook to a receiver
that uses the one-call helpers, and a real SQLite store's session follows it; the
``create_webhook_router`` receivers under uvicorn on 127.0.0.1 refuse unauthenticated,
replayed, stale, oversized and hostile requests, and change nothing then."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Self

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from engagequeue import Payload, SQLiteTaskStore
from engagequeue.http import create_webhook_router
from engagequeue.transports import (
    SessionEventTarget,
    WebhookConfigError,
    WebhookError,
    WebhookGuard,
    WebhookSignatureError,
    handle_evolution_webhook,
    handle_waha_webhook,
)
from fakes.evolution import FakeEvolution
from fakes.http import HttpServer, Request, Response
from fakes.waha import FakeWaha

KEY = "webhook-secret"
GROUP = "120363012345678901@g.us"


def receiver(
    target: SessionEventTarget, *, hmac_key: str | None = None, api_key: str | None = None
) -> HttpServer:
    """A bot's webhook endpoint, as a host would mount it in its web framework."""
    guard = WebhookGuard()

    async def handle(request: Request) -> Response:
        try:
            if request.path == "/hooks/waha":
                await handle_waha_webhook(
                    request.body, request.headers, target, hmac_key=hmac_key, guard=guard
                )
            elif request.path == "/hooks/evolution":
                await handle_evolution_webhook(
                    request.body, request.headers, target, api_key=api_key, guard=guard
                )
            else:
                return Response(404)
        except WebhookSignatureError as exc:
            return Response.json(401, {"detail": str(exc)})
        except WebhookError as exc:
            return Response.json(400, {"detail": str(exc)})
        return Response(204)

    return HttpServer(handle)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteTaskStore]:
    async with SQLiteTaskStore(tmp_path / "hooks.sqlite3") as s:
        await s.add_session("main")
        await s.schedule(
            "main", GROUP, Payload.text("due"), datetime.now(UTC) - timedelta(seconds=1)
        )
        yield s


async def claimable(store: SQLiteTaskStore) -> bool:
    claimed = await store.claim_due(limit=1)
    for task in claimed:
        await store.release(task.id, "test probe")
    return bool(claimed)


async def test_a_signed_waha_webhook_disconnects_and_reconnects_the_session(
    store: SQLiteTaskStore,
) -> None:
    async with receiver(store, hmac_key=KEY) as hooks, FakeWaha(hmac_key=KEY) as waha:
        waha.add_session("main")
        waha.webhook_url = f"{hooks.url}/hooks/waha"
        assert await claimable(store)
        await waha.set_status("main", "STOPPED")
        assert not await claimable(store)
        await waha.set_status("main", "STARTING")
        assert not await claimable(store)
        await waha.set_status("main", "WORKING")
        assert await claimable(store)
    assert waha.webhook_answers == [204, 204, 204]
    assert waha.violations == []


async def test_a_waha_webhook_signed_with_another_key_is_refused_and_changes_nothing(
    store: SQLiteTaskStore,
) -> None:
    async with receiver(store, hmac_key=KEY) as hooks, FakeWaha(hmac_key="other") as waha:
        waha.add_session("main")
        waha.webhook_url = f"{hooks.url}/hooks/waha"
        await waha.set_status("main", "FAILED")
    assert waha.webhook_answers == [401]
    assert await claimable(store)


async def test_an_unsigned_waha_webhook_is_refused(
    store: SQLiteTaskStore,
) -> None:
    async with receiver(store, hmac_key=KEY) as hooks, FakeWaha(hmac_key=None) as waha:
        waha.add_session("main")
        waha.webhook_url = f"{hooks.url}/hooks/waha"
        await waha.set_status("main", "STOPPED")
    assert waha.webhook_answers == [401]
    assert await claimable(store)


async def test_webhooks_for_sessions_the_bot_does_not_use_are_accepted_and_ignored(
    store: SQLiteTaskStore,
) -> None:
    async with receiver(store, hmac_key=KEY) as hooks, FakeWaha(hmac_key=KEY) as waha:
        waha.add_session("someone-else")
        waha.webhook_url = f"{hooks.url}/hooks/waha"
        await waha.set_status("someone-else", "STOPPED")
    assert waha.webhook_answers == [204]
    assert await claimable(store)


async def test_an_evolution_connection_update_disconnects_and_reconnects_the_instance(
    store: SQLiteTaskStore,
) -> None:
    async with receiver(store, api_key="instance-token") as hooks, FakeEvolution() as evo:
        evo.add_instance("main")
        evo.webhook_url = f"{hooks.url}/hooks/evolution"
        await evo.set_state("main", "close", status_reason=428)
        assert not await claimable(store)
        await evo.set_state("main", "connecting")
        assert not await claimable(store)
        await evo.set_state("main", "open")
        assert await claimable(store)
    assert evo.webhook_answers == [204, 204, 204]


async def test_an_evolution_webhook_with_another_key_is_refused(store: SQLiteTaskStore) -> None:
    async with receiver(store, api_key="expected-token") as hooks, FakeEvolution() as evo:
        evo.add_instance("main")
        evo.webhook_url = f"{hooks.url}/hooks/evolution"
        await evo.set_state("main", "close")
    assert evo.webhook_answers == [401]
    assert await claimable(store)


# -- create_webhook_router under uvicorn: the secure defaults ------------------------------

TOKEN = "instance-token"  # noqa: S105 - FakeEvolution's instance token


class Served:
    """A FastAPI app under uvicorn on a free loopback port, in this test's event loop."""

    def __init__(self, app: FastAPI) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.sock = sock
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        while not self.server.started:
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        assert self.task is not None
        await self.task
        self.sock.close()


@pytest.fixture
async def hooks(store: SQLiteTaskStore) -> AsyncIterator[Served]:
    app = FastAPI()
    app.include_router(create_webhook_router(store, waha_hmac_key=KEY, evolution_api_key=TOKEN))
    async with Served(app) as served:
        yield served


def waha_body(status: str, *, at_ms: int | None = None, event_id: str = "evt_1") -> bytes:
    at_ms = int(time.time() * 1000) if at_ms is None else at_ms
    return json.dumps(
        {
            "id": event_id,
            "timestamp": at_ms,
            "session": "main",
            "event": "session.status",
            "payload": {"name": "main", "status": status},
        }
    ).encode()


def signed(body: bytes, key: str = KEY) -> dict[str, str]:
    digest = hmac.new(key.encode(), body, hashlib.sha512).hexdigest()
    return {"content-type": "application/json", "X-Webhook-Hmac": digest}


async def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(url, content=body, headers=headers or {})


async def test_one_unauthenticated_post_cannot_stop_a_session(
    store: SQLiteTaskStore, hooks: Served
) -> None:
    answer = await post(f"{hooks.url}/hooks/waha", waha_body("STOPPED"))
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized"
    evolution = json.dumps(
        {
            "event": "connection.update",
            "instance": "main",
            "data": {"instance": "main", "state": "close"},
            "date_time": datetime.now(UTC).isoformat(),
        }
    ).encode()
    assert (await post(f"{hooks.url}/hooks/evolution", evolution)).status_code == 401
    assert (
        await post(f"{hooks.url}/hooks/evolution/connection-update", evolution)
    ).status_code == (401)
    assert await claimable(store)


async def test_a_captured_signed_waha_event_replayed_is_refused_and_undoes_nothing(
    store: SQLiteTaskStore, hooks: Served
) -> None:
    async with FakeWaha(hmac_key=KEY) as waha:
        waha.add_session("main")
        waha.webhook_url = f"{hooks.url}/hooks/waha"
        await waha.set_status("main", "STOPPED")
        await waha.set_status("main", "WORKING")
    assert waha.webhook_answers == [204, 204]
    assert await claimable(store)
    captured_body, captured_headers = waha.webhook_sent[0]  # the STOPPED event
    answer = await post(waha.webhook_url, captured_body, captured_headers)
    assert answer.status_code == 409
    assert "replay" in answer.json()["message"]
    assert await claimable(store)


async def test_a_signed_event_older_than_the_window_is_refused(
    store: SQLiteTaskStore, hooks: Served
) -> None:
    old = int((time.time() - 6 * 60) * 1000)
    body = waha_body("STOPPED", at_ms=old, event_id="evt_old")
    answer = await post(f"{hooks.url}/hooks/waha", body, signed(body))
    assert answer.status_code == 409
    assert "older than the replay window" in answer.json()["message"]
    assert await claimable(store)


async def test_an_older_state_arriving_late_does_not_undo_the_newer_one(
    store: SQLiteTaskStore, hooks: Served
) -> None:
    now_ms = int(time.time() * 1000)
    down = waha_body("STOPPED", at_ms=now_ms, event_id="evt_down")
    up = waha_body("WORKING", at_ms=now_ms + 1000, event_id="evt_up")
    assert (await post(f"{hooks.url}/hooks/waha", up, signed(up))).status_code == 204
    # Delivered late (a gateway retry): accepted, since it is genuine, but not applied.
    assert (await post(f"{hooks.url}/hooks/waha", down, signed(down))).status_code == 204
    assert await claimable(store)
    later = waha_body("STOPPED", at_ms=now_ms + 2000, event_id="evt_later")
    assert (await post(f"{hooks.url}/hooks/waha", later, signed(later))).status_code == 204
    assert not await claimable(store)


async def test_an_evolution_event_replayed_is_refused(
    store: SQLiteTaskStore, hooks: Served
) -> None:
    async with FakeEvolution() as evolution:
        evolution.add_instance("main")
        evolution.webhook_url = f"{hooks.url}/hooks/evolution"
        await evolution.set_state("main", "close")
        await evolution.set_state("main", "open")
    assert evolution.webhook_answers == [204, 204]
    answer = await post(
        evolution.webhook_url, evolution.webhook_sent[0], {"content-type": "application/json"}
    )
    assert answer.status_code == 409
    assert await claimable(store)


async def test_the_key_is_checked_before_the_body_is_parsed(
    store: SQLiteTaskStore, hooks: Served
) -> None:
    hostile = b"[" * 100_000 + b"]" * 100_000
    # Without the key: refused as unauthenticated, never handed to the JSON parser.
    assert (await post(f"{hooks.url}/hooks/evolution", hostile)).status_code == 401
    assert (await post(f"{hooks.url}/hooks/waha", hostile)).status_code == 401
    # With it: the parser meets the nesting and answers a plain 400.
    answer = await post(f"{hooks.url}/hooks/evolution", hostile, {"apikey": TOKEN})
    assert answer.status_code == 400
    answer = await post(f"{hooks.url}/hooks/waha", hostile, signed(hostile))
    assert answer.status_code == 400
    assert await claimable(store)


async def test_an_oversized_body_is_refused_unread(store: SQLiteTaskStore, hooks: Served) -> None:
    big = b'{"pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    answer = await post(f"{hooks.url}/hooks/waha", big, signed(big))
    assert answer.status_code == 413
    assert await claimable(store)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Webhook-Hmac": "é" * 128},
        {"X-Webhook-Hmac": "\N{SNOWMAN}"},
        {"apikey": "\N{SNOWMAN}"},
    ],
)
async def test_non_ascii_keys_and_signatures_are_refused_not_crashed_on(
    store: SQLiteTaskStore, hooks: Served, headers: dict[str, str]
) -> None:
    body = waha_body("STOPPED")
    raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()]
    async with httpx.AsyncClient() as client:
        for path in ("/hooks/waha", "/hooks/evolution"):
            answer = await client.post(f"{hooks.url}{path}", content=body, headers=raw_headers)
            assert answer.status_code == 401
    assert await claimable(store)


def test_a_router_without_keys_or_with_an_empty_key_is_a_configuration_error(
    store: SQLiteTaskStore,
) -> None:
    with pytest.raises(WebhookConfigError, match="insecure_no_auth"):
        create_webhook_router(store)
    with pytest.raises(WebhookConfigError, match="empty"):
        create_webhook_router(store, waha_hmac_key="")
    with pytest.raises(WebhookConfigError, match="empty"):
        create_webhook_router(store, evolution_api_key="  ")


async def test_insecure_no_auth_is_the_named_opt_out_for_trusted_networks(
    store: SQLiteTaskStore, caplog: pytest.LogCaptureFixture
) -> None:
    app = FastAPI()
    with caplog.at_level(logging.WARNING, "engagequeue.http"):
        app.include_router(create_webhook_router(store, insecure_no_auth=True))
    assert "insecure_no_auth=True" in caplog.text
    async with Served(app) as served:
        answer = await post(f"{served.url}/hooks/waha", waha_body("STOPPED"))
    assert answer.status_code == 204
    assert not await claimable(store)
