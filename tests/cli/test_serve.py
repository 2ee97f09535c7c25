"""``engagequeue serve``: the reference deployment (serve + worker on one database) and webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime

import httpx
from clitools import Process, Target, serve

# The worker's poll is the default's 30 s: only a cross-process wake-up makes the post leave
# sooner than that, and WAIT bounds how long the test waits for it.
WORKER_POLL = "30"  # the post must leave through the cross-process wake-up, not the poll
WAIT = 15.0


def test_a_post_created_through_http_leaves_from_the_worker_process(target: Target) -> None:
    target.ok("sessions", "add", "bot")
    server, base = serve(target, "--no-webhooks")
    worker = Process(target, "worker", "--transport", "console", "--poll-interval", WORKER_POLL)
    try:
        worker.wait_for(lambda p: "started: transport console" in p.stderr(), what="start")
        body = {
            "mediaType": "text",
            "content": "from the web process",
            "scheduledAt": datetime.now(UTC).isoformat(),
        }
        created = httpx.post(f"{base}/api/sessions/bot/groups/g@g.us/engagement", json=body)
        assert created.status_code == 201, created.text
        task = created.json()
        worker.wait_for(
            lambda p: "[text] from the web process" in p.stdout(),
            timeout=WAIT,
            what="the post sent by the worker",
        )
        url = f"{base}/api/moderation/engagement/{task['id']}"
        worker.wait_for(
            lambda _: httpx.get(url).json()["status"] == "completed",
            timeout=WAIT,
            what="the post completed",
        )
        assert worker.stdout().count("from the web process") == 1
        assert worker.terminate() == 0, worker.stderr()
        assert server.terminate() == 0, server.stderr()
    finally:
        worker.close()
        server.close()


def _connected(target: Target) -> bool:
    return json.loads(target.ok("sessions", "list", "--json"))[0]["connected"]


def test_serve_applies_signed_gateway_webhooks_and_refuses_the_rest(target: Target) -> None:
    target.ok("sessions", "add", "bot")
    key, apikey = "waha-secret", "evo-secret"
    server, base = serve(target, "--waha-hmac-key", key, "--evolution-api-key", apikey)
    try:
        stopped = json.dumps(
            {
                "event": "session.status",
                "session": "bot",
                "timestamp": int(time.time() * 1000),
                "payload": {"status": "STOPPED"},
            }
        ).encode()
        signature = hmac.new(key.encode(), stopped, hashlib.sha512).hexdigest()

        before = target.snapshot()
        unsigned = httpx.post(f"{base}/webhooks/waha", content=stopped)
        assert unsigned.status_code == 401, unsigned.text
        forged = httpx.post(
            f"{base}/webhooks/waha", content=stopped, headers={"X-Webhook-Hmac": "0" * 128}
        )
        assert forged.status_code == 401
        assert target.snapshot() == before

        signed = httpx.post(
            f"{base}/webhooks/waha", content=stopped, headers={"X-Webhook-Hmac": signature}
        )
        assert signed.status_code == 204, signed.text
        assert _connected(target) is False

        opened = {
            "event": "connection.update",
            "instance": "bot",
            "date_time": datetime.now(UTC).isoformat(),
            "data": {"state": "open"},
        }
        wrong = httpx.post(f"{base}/webhooks/evolution", json={**opened, "apikey": "nope"})
        assert wrong.status_code == 401
        assert _connected(target) is False
        right = httpx.post(f"{base}/webhooks/evolution", json=opened, headers={"apikey": apikey})
        assert right.status_code == 204, right.text
        assert _connected(target) is True

        before = target.snapshot()
        other = httpx.post(
            f"{base}/webhooks/evolution",
            json={
                "event": "messages.upsert",
                "date_time": datetime.now(UTC).isoformat(),
                "apikey": apikey,
            },
        )
        assert other.status_code == 204, other.text
        assert target.snapshot() == before
        garbage = httpx.post(
            f"{base}/webhooks/waha",
            content=b"not json",
            headers={
                "X-Webhook-Hmac": hmac.new(key.encode(), b"not json", hashlib.sha512).hexdigest()
            },
        )
        assert garbage.status_code == 400
        assert server.terminate() == 0, server.stderr()
    finally:
        server.close()


def test_serve_mounts_only_the_gateways_it_has_a_key_for(target: Target) -> None:
    server, base = serve(target, "--waha-hmac-key", "k")
    try:
        assert httpx.post(f"{base}/webhooks/evolution", json={}).status_code == 404
        assert httpx.post(f"{base}/webhooks/waha", content=b"{}").status_code == 401
        assert server.terminate() == 0
    finally:
        server.close()


def test_insecure_webhooks_accept_unsigned_requests_and_say_so(target: Target) -> None:
    target.ok("sessions", "add", "bot")
    server, base = serve(target, "--insecure-webhooks")
    try:
        body = {
            "event": "session.status",
            "session": "bot",
            "timestamp": int(time.time() * 1000),
            "payload": {"status": "FAILED"},
        }
        assert httpx.post(f"{base}/webhooks/waha", json=body).status_code == 204
        assert _connected(target) is False
        assert server.terminate() == 0
        assert "accept unsigned requests" in server.stderr()
    finally:
        server.close()
