"""The gateways' session-status webhooks as FastAPI routes.

``POST /webhooks/waha`` and ``POST /webhooks/evolution`` by default.

Each route hands the raw body and headers to the pure parsers of
``engagequeue.transports`` and applies the session change to a ``TaskStore`` (or a
``Scheduler``): a session that reconnects wakes the workers, one that drops stops getting
posts. ``engagequeue serve`` mounts them; see docs/cli.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from engagequeue.transports import (
    WebhookError,
    WebhookSignatureError,
    handle_evolution_webhook,
    handle_waha_webhook,
)

from ._errors import error_response

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from engagequeue.transports import SessionEventTarget, SessionStatusEvent

__all__ = ["MAX_WEBHOOK_BODY", "create_webhook_router"]

MAX_WEBHOOK_BODY: Final = 1024 * 1024
"""Largest webhook body read (bytes); a session-status event is a few hundred."""


def _answer(event: SessionStatusEvent | None) -> JSONResponse:
    if event is None:
        return JSONResponse({"applied": False, "reason": "not a session status event"})
    return JSONResponse(
        {
            "applied": True,
            "session": event.session_id,
            "status": event.status.value,
            "gatewayStatus": event.gateway_status,
        }
    )


async def _body(request: Request) -> bytes | JSONResponse:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_WEBHOOK_BODY:
            return error_response(413, f"the webhook body is over {MAX_WEBHOOK_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _refusal(exc: WebhookError) -> JSONResponse:
    if isinstance(exc, WebhookSignatureError):
        return error_response(401, str(exc), field=exc.field)
    return error_response(400, str(exc), field=exc.field)


def create_webhook_router(
    target: SessionEventTarget,
    *,
    waha_hmac_key: str | None = None,
    evolution_api_key: str | None = None,
    waha: bool = True,
    evolution: bool = True,
    insecure: bool = False,
    prefix: str = "/webhooks",
) -> APIRouter:
    """Routes receiving WAHA's and Evolution API's session-status webhooks.

    Args:
        target: what the changes are applied to: a ``TaskStore`` or a ``Scheduler``.
        waha_hmac_key: the WAHA webhook's ``hmac.key``; requests must be signed with it.
        evolution_api_key: the key Evolution API requests must carry (body or header).
        waha: mount ``POST {prefix}/waha``.
        evolution: mount ``POST {prefix}/evolution``.
        insecure: accept requests without a signature or key for a gateway that has none
            configured. Without it, a mounted gateway route needs its key: anyone who can
            reach an unsigned route can mark a session disconnected.
        prefix: where the routes live.

    Raises:
        ValueError: a mounted gateway has no key and ``insecure`` is false.

    Answers 200 ``{"applied": ...}``, 401 for a bad signature or key, 400 for a body that
    is not a session event, 413 for a body over ``MAX_WEBHOOK_BODY`` bytes.
    """
    for name, mounted, key in (
        ("waha", waha, waha_hmac_key),
        ("evolution", evolution, evolution_api_key),
    ):
        if mounted and not key and not insecure:
            raise ValueError(f"the {name} webhook needs a key, or insecure=True to accept any")
    router = APIRouter(prefix=prefix, tags=["webhooks"])
    if waha:
        router.add_api_route(
            "/waha",
            _route(handle_waha_webhook, target, {"hmac_key": waha_hmac_key}),
            methods=["POST"],
            summary="WAHA session.status webhook",
            operation_id="wahaWebhook",
        )
    if evolution:
        router.add_api_route(
            "/evolution",
            _route(handle_evolution_webhook, target, {"api_key": evolution_api_key}),
            methods=["POST"],
            summary="Evolution API connection.update webhook",
            operation_id="evolutionWebhook",
        )
    return router


def _route(
    handle: Callable[..., Awaitable[SessionStatusEvent | None]],
    target: SessionEventTarget,
    keys: Mapping[str, str | None],
) -> Callable[[Request], Awaitable[JSONResponse]]:
    """A route calling ``handle(body, headers, target, **keys)``.

    ``keys`` is the one place that knows how each handler takes its key. Without a key the
    route was mounted with ``insecure=True``, and the handler is called without one (it
    then accepts unsigned requests).
    """

    async def route(request: Request) -> JSONResponse:
        body = await _body(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            event = await handle(body, request.headers, target, **keys)
        except WebhookError as exc:
            return _refusal(exc)
        return _answer(event)

    return route
