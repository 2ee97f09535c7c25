"""Session-status webhooks over real HTTP: a fake gateway posts its webhook to a receiver
that uses the one-call helpers, and a real SQLite store's session follows it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engagequeue import Payload, SQLiteTaskStore
from engagequeue.transports import (
    SessionEventTarget,
    WebhookError,
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

    async def handle(request: Request) -> Response:
        try:
            if request.path == "/hooks/waha":
                await handle_waha_webhook(request.body, request.headers, target, hmac_key=hmac_key)
            elif request.path == "/hooks/evolution":
                await handle_evolution_webhook(
                    request.body, request.headers, target, api_key=api_key
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


async def test_an_unsigned_waha_webhook_is_refused_when_a_key_is_set(
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
