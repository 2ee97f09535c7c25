"""A fake Evolution API (v2) server: the endpoints EvolutionTransport uses, real shapes.

Request bodies are validated against the committed OpenAPI extract (v2.1.1); violations
are recorded in ``violations`` and answered 400.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import httpx

from . import openapi
from .gateway import Delivered, FakeGateway, match
from .http import Request, Response, _Drop

GATEWAY = "evolution"
_KINDS = {"sendText": "text", "sendMedia": "media", "sendWhatsAppAudio": "voice"}


@dataclass
class FakeEvolution(FakeGateway):
    """Evolution API; ``instances`` maps an instance name to its state (open/connecting/close)."""

    instance_token: str = "instance-token"  # noqa: S105 - a test value
    webhook_url: str | None = None
    instances: dict[str, str] = field(default_factory=dict)
    webhook_answers: list[int] = field(default_factory=list)
    webhook_sent: list[bytes] = field(default_factory=list)

    def add_instance(self, name: str, state: str = "open") -> None:
        self.instances[name] = state

    async def set_state(self, name: str, state: str, status_reason: int = 200) -> None:
        """Change an instance's state and post ``connection.update``, as Evolution does."""
        self.instances[name] = state
        if self.webhook_url is None:
            return
        event = {
            "event": "connection.update",
            "instance": name,
            "data": {"instance": name, "state": state, "statusReason": status_reason},
            "destination": self.webhook_url,
            "date_time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "sender": "15550000000@s.whatsapp.net",
            "server_url": self.url,
            "apikey": self.instance_token,
        }
        body = json.dumps(event).encode()
        self.webhook_sent.append(body)
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                self.webhook_url,
                content=body,
                headers={"content-type": "application/json"},
            )
        self.webhook_answers.append(answer.status_code)

    async def route(self, request: Request) -> Response | _Drop:
        if self.api_key is not None and request.headers.get("apikey") not in {
            self.api_key,
            self.instance_token,
        }:
            return Response.json(
                401,
                {"status": 401, "error": "Unauthorized", "response": {"message": "Unauthorized"}},
            )
        if request.method == "GET" and (
            m := match(r"/instance/connectionState/([^/]+)", request.path)
        ):
            return self._state(unquote(m.group(1)))
        if request.method == "POST" and (m := match(r"/message/(\w+)/([^/]+)", request.path)):
            action, instance = m.group(1), unquote(m.group(2))
            if action in _KINDS:
                return await self._send(request, action, instance)
        return Response.json(
            404,
            {
                "status": 404,
                "error": "Not Found",
                "response": {"message": [f"Cannot {request.method} {request.path}"]},
            },
        )

    def _state(self, instance: str) -> Response:
        if instance not in self.instances:
            return _no_instance(instance)
        answer = {"instance": {"instanceName": instance, "state": self.instances[instance]}}
        self.check(
            openapi.response_errors(
                GATEWAY, "/instance/connectionState/{instance}", "GET", 200, answer
            ),
            "connectionState answer",
        )
        return Response.json(200, answer)

    async def _send(self, request: Request, action: str, instance: str) -> Response | _Drop:
        template = f"/message/{action}/{{instance}}"
        try:
            body = request.json()
        except ValueError:
            return _bad_request(["Unexpected token in JSON"])
        problems = openapi.request_errors(GATEWAY, template, "POST", body)
        if problems:
            self.check(problems, f"POST {template}")
            return _bad_request(problems)
        await self.gate()
        if instance not in self.instances:
            return _no_instance(instance)
        if self.instances[instance] != "open":
            # Baileys throws "Connection Closed"; Evolution wraps it in a 400.
            return _bad_request(["Error: Connection Closed"])
        return await self.scripted_or(request, lambda: self._deliver(action, instance, body))

    def _deliver(self, action: str, instance: str, body: dict[str, Any]) -> Response:
        message_id = f"BAE5{self.next_id()[4:]}"
        chat = body["number"]
        kind = body.get("mediatype", _KINDS[action]) if action == "sendMedia" else _KINDS[action]
        self.record(Delivered(instance, chat, kind, body, message_id))
        if action == "sendText":
            message: dict[str, Any] = {"extendedTextMessage": {"text": body["text"]}}
        elif action == "sendMedia":
            message = {
                f"{body['mediatype']}Message": {
                    "url": "https://mmg.whatsapp.net/o1/v/t62.7118-24/f1/m231/...",
                    "mimetype": body["mimetype"],
                    "caption": body["caption"],
                    "fileLength": "1000",
                }
            }
        else:
            message = {
                "audioMessage": {"mimetype": "audio/ogg; codecs=opus", "ptt": True, "seconds": 3}
            }
        answer = {
            "key": {"remoteJid": chat, "fromMe": True, "id": message_id},
            "message": message,
            "messageTimestamp": str(int(time.time())),
            "status": "PENDING",
        }
        status = 200 if action == "sendWhatsAppAudio" else 201
        self.check(
            openapi.response_errors(
                GATEWAY, f"/message/{action}/{{instance}}", "POST", status, answer
            ),
            f"{action} answer",
        )
        return Response.json(status, answer)


def _bad_request(messages: list[Any]) -> Response:
    return Response.json(
        400, {"status": 400, "error": "Bad Request", "response": {"message": messages}}
    )


def _no_instance(name: str) -> Response:
    return Response.json(
        404,
        {
            "status": 404,
            "error": "Not Found",
            "response": {"message": [f'The "{name}" instance does not exist']},
        },
    )


def connection_closed_500() -> dict[str, Any]:
    """Evolution's 500 when Baileys lost the connection during a send."""
    return {
        "status": 500,
        "error": "Internal Server Error",
        "response": {"message": "Connection Closed"},
    }
