"""The gateways' session-status webhooks as a FastAPI router, with the secure defaults.

``create_webhook_router(target, waha_hmac_key=..., evolution_api_key=...)`` mounts
``POST /hooks/waha`` and ``POST /hooks/evolution`` (and ``/hooks/evolution/{event}``, for
Evolution's "webhook by events" URLs) in front of the pure handlers of
``engagequeue.transports``: keys required, checked before parsing, bodies capped, replays
refused, stale session states not applied.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Final

from fastapi import APIRouter, Request, Response
from starlette.requests import ClientDisconnect

from engagequeue.transports._errors import (
    WebhookBodyTooLargeError,
    WebhookConfigError,
    WebhookError,
    WebhookReplayError,
    WebhookSignatureError,
)
from engagequeue.transports._webhooks import (
    DEFAULT_MAX_AGE,
    DEFAULT_MAX_BODY_BYTES,
    SessionEventTarget,
    WebhookGuard,
    configured_key,
    handle_evolution_webhook,
    handle_waha_webhook,
)

from ._errors import error_response

if TYPE_CHECKING:
    from datetime import timedelta

__all__ = ["create_webhook_router"]

logger: Final = logging.getLogger("engagequeue.http")


async def _read(request: Request, limit: int) -> bytes:
    """The body, read no further than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise WebhookBodyTooLargeError(f"the webhook body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise WebhookBodyTooLargeError(f"the webhook body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(exc: WebhookError) -> Response:
    if isinstance(exc, WebhookSignatureError):
        status = 401
    elif isinstance(exc, WebhookBodyTooLargeError):
        status = 413
    elif isinstance(exc, WebhookReplayError):
        status = 409
    else:
        status = 400
    logger.info("webhook refused (%s): %s", status, exc)
    return error_response(status, str(exc), field=exc.field)


def _receiver(
    handle: Callable[..., Awaitable[object]], max_body_bytes: int
) -> Callable[[Request], Awaitable[Response]]:
    """One route's endpoint: read the capped body, hand it to ``handle``, map its errors."""

    async def receive(request: Request) -> Response:
        try:
            body = await _read(request, max_body_bytes)
            await handle(body, request.headers)
        except WebhookError as exc:
            return _answer(exc)
        except ClientDisconnect:
            logger.debug("a webhook client disconnected before sending its whole body")
            return Response(status_code=400)
        return Response(status_code=204)

    return receive


def create_webhook_router(
    target: SessionEventTarget,
    *,
    waha_hmac_key: str | None = None,
    evolution_api_key: str | None = None,
    insecure_no_auth: bool = False,
    max_age: timedelta | None = DEFAULT_MAX_AGE,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    prefix: str = "/hooks",
) -> APIRouter:
    """Receivers of WAHA's and Evolution API's session webhooks, ready for ``include_router``.

    Each gateway's route is mounted when its key is given: ``POST {prefix}/waha`` checks
    WAHA's ``X-Webhook-Hmac`` signature under ``waha_hmac_key``; ``POST
    {prefix}/evolution`` (and ``{prefix}/evolution/{event}``) checks that the request
    carries ``evolution_api_key``. A state change is applied to ``target`` (a
    ``Scheduler``, or a ``TaskStore``: a store wakes the schedulers of every process).

    Answers: 204 applied (or ignored: another event, an unknown session, a stale state);
    400 malformed; 401 bad or missing key; 409 replay (outside the window, or a repeat);
    413 over ``max_body_bytes``.

    Args:
        target: what session changes are applied to.
        waha_hmac_key: the WAHA session webhook's ``hmac.key``.
        evolution_api_key: the instance token (or global key) Evolution sends.
        insecure_no_auth: mount the receivers without a key for the gateways not given
            one. Anyone who reaches them can then mark sessions disconnected and hold their
            posts: trusted networks only.
        max_age: the replay window (5 minutes); ``None`` turns it off.
        max_body_bytes: larger bodies are refused unread (1 MiB).
        prefix: where the routes live.

    Raises:
        WebhookConfigError: no key and not ``insecure_no_auth``, an empty key, or a bad
            ``max_body_bytes``: at construction, before any request.
    """
    if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int):
        raise WebhookConfigError(f"max_body_bytes must be an integer, got {max_body_bytes!r}")
    if max_body_bytes < 1:
        raise WebhookConfigError(f"max_body_bytes must be positive, got {max_body_bytes}")
    waha = waha_hmac_key is not None or insecure_no_auth
    evolution = evolution_api_key is not None or insecure_no_auth
    if not waha and not evolution:
        raise WebhookConfigError(
            "create_webhook_router needs waha_hmac_key or evolution_api_key (or "
            "insecure_no_auth=True, for trusted networks only)"
        )
    waha_open = waha_hmac_key is None
    evolution_open = evolution_api_key is None
    if waha:
        configured_key(waha_hmac_key, waha_open, "waha_hmac_key", "WAHA")
    if evolution:
        configured_key(evolution_api_key, evolution_open, "evolution_api_key", "Evolution API")
    if insecure_no_auth:
        logger.warning(
            "webhook receivers mounted with insecure_no_auth=True: anyone who can reach "
            "them can change session states"
        )
    guard = WebhookGuard(max_age=max_age or DEFAULT_MAX_AGE)
    router = APIRouter(prefix=prefix, tags=["webhooks"])

    receive_waha = _receiver(
        partial(
            handle_waha_webhook,
            target=target,
            hmac_key=waha_hmac_key,
            insecure_no_auth=waha_open,
            max_age=max_age,
            max_body_bytes=max_body_bytes,
            guard=guard,
        ),
        max_body_bytes,
    )
    receive_evolution = _receiver(
        partial(
            handle_evolution_webhook,
            target=target,
            api_key=evolution_api_key,
            insecure_no_auth=evolution_open,
            max_age=max_age,
            max_body_bytes=max_body_bytes,
            guard=guard,
        ),
        max_body_bytes,
    )
    if waha:
        router.add_api_route(
            "/waha", receive_waha, methods=["POST"], status_code=204, summary="WAHA webhook"
        )
    if evolution:
        for path in ("/evolution", "/evolution/{event}"):
            router.add_api_route(
                path,
                receive_evolution,
                methods=["POST"],
                status_code=204,
                summary="Evolution API webhook",
            )
    return router
