"""A fake WAHA server: the endpoints WahaTransport uses, answering with WAHA's real shapes.

Every request body is validated against the committed OpenAPI extract; a violation is
recorded in ``violations`` (tests assert it stays empty) and answered 400 as WAHA's
class-validator would. Success answers are validated against the documented schemas too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx

from . import openapi
from .gateway import Delivered, FakeGateway, match
from .http import Request, Response, _Drop

GATEWAY = "waha"
_SEND_KINDS = {"sendText": "text", "sendImage": "image", "sendVideo": "video", "sendVoice": "voice"}


@dataclass
class FakeWaha(FakeGateway):
    """WAHA with sessions of a given engine; ``sessions`` maps a name to its status."""

    engine: str = "WEBJS"
    hmac_key: str | None = None
    webhook_url: str | None = None
    sessions: dict[str, str] = field(default_factory=dict)
    webhook_answers: list[int] = field(default_factory=list)
    webhook_sent: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    def add_session(self, name: str, status: str = "WORKING") -> None:
        self.sessions[name] = status

    async def set_status(self, name: str, status: str) -> None:
        """Change a session's status and post the ``session.status`` webhook, as WAHA does."""
        self.sessions[name] = status
        if self.webhook_url is None:
            return
        now_ms = int(time.time() * 1000)
        event = {
            "id": f"evt_{now_ms:016x}{len(self.webhook_sent):010x}",
            "timestamp": now_ms,
            "session": name,
            "metadata": {},
            "engine": self.engine,
            "event": "session.status",
            "payload": {
                "name": name,
                "status": status,
                "statuses": [{"status": status, "timestamp": now_ms}],
            },
            "me": {"id": "15550000000@c.us", "pushName": "Community bot"},
            "environment": {
                "version": "2026.7.1",
                "engine": self.engine,
                "tier": "CORE",
                "browser": "/usr/bin/chromium",
                "platform": "linux/x64",
                "worker": {"id": None},
            },
        }
        self.check(
            openapi.schema_errors(GATEWAY, "WAHAWebhookSessionStatus", event), "webhook body"
        )
        body = json.dumps(event).encode()
        headers = {
            "content-type": "application/json",
            "X-Webhook-Request-Id": f"req_{now_ms}",
            "X-Webhook-Timestamp": str(now_ms),
        }
        if self.hmac_key:
            headers["X-Webhook-Hmac"] = hmac.new(
                self.hmac_key.encode(), body, hashlib.sha512
            ).hexdigest()
            headers["X-Webhook-Hmac-Algorithm"] = "sha512"
        self.webhook_sent.append((body, headers))
        async with httpx.AsyncClient() as client:
            answer = await client.post(self.webhook_url, content=body, headers=headers)
        self.webhook_answers.append(answer.status_code)

    # -- routing ----------------------------------------------------------------------------

    async def route(self, request: Request) -> Response | _Drop:
        if self.api_key is not None and request.headers.get("x-api-key") != self.api_key:
            return Response.json(401, {"message": "Unauthorized", "statusCode": 401})
        if request.method == "GET" and (m := match(r"/api/sessions/([^/]+)", request.path)):
            return self._session_info(unquote(m.group(1)))
        if request.method == "POST" and (m := match(r"/api/(send\w+)", request.path)):
            action = m.group(1)
            if action in _SEND_KINDS:
                return await self._send(request, action)
        return Response.json(
            404,
            {
                "message": f"Cannot {request.method} {request.path}",
                "error": "Not Found",
                "statusCode": 404,
            },
        )

    def _session_info(self, name: str) -> Response:
        if name not in self.sessions:
            return _no_session(name)
        info = {
            "name": name,
            "status": self.sessions[name],
            "config": {"webhooks": []},
            "me": {"id": "15550000000@c.us", "pushName": "Community bot"},
            "presence": {},
            "timestamps": {"activity": time.time() * 1000},
            "engine": {"engine": self.engine},
        }
        self.check(
            openapi.response_errors(GATEWAY, "/api/sessions/{session}", "GET", 200, info),
            "GET session answer",
        )
        return Response.json(200, info)

    async def _send(self, request: Request, action: str) -> Response | _Drop:
        path = f"/api/{action}"
        try:
            body = request.json()
        except ValueError:
            return Response.json(
                400,
                {"statusCode": 400, "message": "Unexpected token in JSON", "error": "Bad Request"},
            )
        problems = openapi.request_errors(GATEWAY, path, "POST", body)
        if problems:
            self.check(problems, f"POST {path}")
            return Response.json(
                400, {"statusCode": 400, "message": problems, "error": "Bad Request"}
            )
        if self.engine not in {"NOWEB", "GOWS"} and "id" in body:
            self.violations.append(f"POST {path}: 'id' sent to the {self.engine} engine")
        await self.gate()
        session = body["session"]
        if session not in self.sessions:
            return _no_session(session)
        status = self.sessions[session]
        if status != "WORKING":
            return Response.json(
                422,
                {
                    "error": "Session status is not as expected. "
                    "Try again later or restart the session",
                    "session": session,
                    "status": status,
                    "expected": ["WORKING"],
                },
            )
        return await self.scripted_or(request, lambda: self._deliver(path, action, body))

    def _deliver(self, path: str, action: str, body: dict[str, Any]) -> Response:
        message_id = body.get("id") or self.next_id()
        chat = body["chatId"]
        self.record(Delivered(body["session"], chat, _SEND_KINDS[action], body, message_id))
        now = int(time.time())
        if self.engine in {"NOWEB", "GOWS"}:
            # NOWEB and GOWS answer with the engine's own message (Baileys' WebMessageInfo).
            answer: dict[str, Any] = {
                "key": {"remoteJid": chat, "fromMe": True, "id": message_id},
                "message": {"extendedTextMessage": {"text": body.get("text", "")}},
                "messageTimestamp": str(now),
                "status": "PENDING",
            }
        else:
            answer = {
                "id": f"true_{chat}_{message_id}",
                "timestamp": now,
                "from": "15550000000@c.us",
                "fromMe": True,
                "source": "api",
                "to": chat,
                "participant": "15550000000@c.us",
                "body": body.get("text") or body.get("caption") or "",
                "hasMedia": action != "sendText",
                "mediaUrl": body.get("file", {}).get("url", ""),
                "ack": 0,
                "ackName": "PENDING",
            }
            self.check(
                openapi.response_errors(GATEWAY, path, "POST", 201, answer), f"POST {path} answer"
            )
        return Response.json(201, answer)


def _no_session(name: str) -> Response:
    return Response.json(
        404,
        {
            "statusCode": 404,
            "message": f"We didn't find a session with name '{name}'.\n"
            f"Please start it first by using POST /api/sessions/{name}/start request",
            "error": "Not Found",
        },
    )


def connection_closed_500() -> dict[str, Any]:
    """WAHA's answer when the engine lost the WhatsApp connection mid-send."""
    return {
        "statusCode": 500,
        "timestamp": "2026-07-14T09:30:00.000Z",
        "exception": {
            "message": "Connection Closed",
            "name": "Error",
            "stack": "Error: Connection Closed\n    at sendRawMessage (/app/node_modules/...)",
        },
        "request": {"path": "/api/sendText", "method": "POST", "query": {}},
        "version": {"version": "2026.7.1", "engine": "NOWEB", "tier": "CORE"},
    }
