"""Session-status webhooks of WAHA and Evolution API: pure parsers and a one-call helper.

No I/O and no HTTP library: the parsers take the raw request body and headers, so any web
framework can mount them (``engagequeue.http`` does, where installed)::

    event = parse_waha_webhook(body, request.headers, hmac_key="...")
    await apply_session_event(event, scheduler)

The typed ``SessionStatusEvent`` says which session is now connected or disconnected;
``apply_session_event`` calls ``session_connected`` / ``session_disconnected`` on a
``Scheduler`` (or on a ``TaskStore``: both have these coroutines).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, Protocol

import attrs

from engagequeue._abc import SessionStatus
from engagequeue._errors import SessionNotFound

from ._errors import WebhookError, WebhookSignatureError

__all__ = [
    "SessionEventTarget",
    "SessionStatusEvent",
    "apply_session_event",
    "evolution_session_status",
    "handle_evolution_webhook",
    "handle_waha_webhook",
    "parse_evolution_webhook",
    "parse_waha_webhook",
    "verify_waha_signature",
    "waha_session_status",
]

logger = logging.getLogger("engagequeue.transports")

WAHA_HMAC_HEADER: Final = "X-Webhook-Hmac"
WAHA_HMAC_ALGORITHM_HEADER: Final = "X-Webhook-Hmac-Algorithm"
_WAHA_DISCONNECTED: Final = frozenset(
    {
        "STOPPED",
        "STARTING",
        "SCAN_QR_CODE",
        "PASSKEY_REQUIRED",
        "PASSKEY_CONFIRMATION_REQUIRED",
        "FAILED",
    }
)
_EVOLUTION_DISCONNECTED: Final = frozenset({"close", "closed", "connecting", "refused"})


def _frozen_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


@attrs.frozen
class SessionStatusEvent:
    """A gateway said a session's state changed.

    Attributes:
        gateway: ``"waha"`` or ``"evolution"``.
        session_id: the WAHA session name or the Evolution instance name.
        status: what it means for sending: connected, disconnected or unknown.
        gateway_status: the gateway's own word (``"WORKING"``, ``"SCAN_QR_CODE"``, ``"open"``...).
        at: when the gateway saw the change, if it said (aware UTC).
        event_id: the gateway's event id, if any (WAHA's ``id``), to drop duplicates.
        raw: the parsed webhook body.
    """

    gateway: str
    session_id: str
    status: SessionStatus
    gateway_status: str
    at: datetime | None = None
    event_id: str | None = None
    raw: Mapping[str, Any] = attrs.field(
        factory=dict, converter=_frozen_mapping, eq=False, repr=False
    )


class SessionEventTarget(Protocol):
    """What ``apply_session_event`` drives: a ``Scheduler``, or a ``TaskStore``."""

    def session_connected(self, session_id: str, /) -> Awaitable[object]:
        """Mark the session connected."""
        ...

    def session_disconnected(self, session_id: str, /) -> Awaitable[object]:
        """Mark the session disconnected."""
        ...


def waha_session_status(status: object) -> SessionStatus:
    """Map a WAHA session status to a ``SessionStatus``: only ``WORKING`` can send."""
    if not isinstance(status, str):
        return SessionStatus.UNKNOWN
    upper = status.strip().upper()
    if upper == "WORKING":
        return SessionStatus.CONNECTED
    if upper in _WAHA_DISCONNECTED:
        return SessionStatus.DISCONNECTED
    return SessionStatus.UNKNOWN


def evolution_session_status(state: object) -> SessionStatus:
    """Map an Evolution API connection state to a ``SessionStatus``: only ``open`` can send."""
    if not isinstance(state, str) or not state.strip():
        return SessionStatus.UNKNOWN
    lower = state.strip().lower()
    if lower == "open":
        return SessionStatus.CONNECTED
    if lower in _EVOLUTION_DISCONNECTED:
        return SessionStatus.DISCONNECTED
    return SessionStatus.UNKNOWN


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, item in headers.items():
        if key.lower() == wanted:
            return item
    return None


def _load(body: bytes | str) -> Mapping[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookError(f"the webhook body is not JSON: {exc}") from exc
    if not isinstance(data, Mapping):
        raise WebhookError(f"the webhook body must be a JSON object, not {type(data).__name__}")
    return data


def _required_str(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise WebhookError(f"the {where} webhook has no {key!r} string", field=f"body.{key}")
    return value


def verify_waha_signature(
    body: bytes | str, headers: Mapping[str, str] | None, hmac_key: str
) -> None:
    """Check WAHA's ``X-Webhook-Hmac`` header: the HMAC-SHA512 of the raw body under the key.

    Raises:
        WebhookSignatureError: the header is missing, uses another algorithm, or does not
            match (compared in constant time).
    """
    raw = body.encode() if isinstance(body, str) else body
    algorithm = _header(headers, WAHA_HMAC_ALGORITHM_HEADER)
    if algorithm is not None and algorithm.strip().lower() not in {"sha512", "sha-512"}:
        raise WebhookSignatureError(
            f"the webhook is signed with {algorithm!r}; only sha512 is supported"
        )
    signature = _header(headers, WAHA_HMAC_HEADER)
    if not signature:
        raise WebhookSignatureError(
            f"the webhook has no {WAHA_HMAC_HEADER} header, but an hmac key is configured; "
            "set the same key in the WAHA session's webhook config (hmac.key)"
        )
    expected = hmac.new(hmac_key.encode(), raw, hashlib.sha512).hexdigest()
    if not hmac.compare_digest(expected, signature.strip().lower()):
        raise WebhookSignatureError(
            f"the webhook's {WAHA_HMAC_HEADER} signature does not match its body: "
            "wrong hmac key, or the body was altered"
        )


def _waha_time(value: object) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    seconds = value / 1000 if value > 1e11 else value  # noqa: PLR2004 - ms vs s heuristic
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_waha_webhook(
    body: bytes | str,
    headers: Mapping[str, str] | None = None,
    *,
    hmac_key: str | None = None,
) -> SessionStatusEvent | None:
    """Parse a WAHA webhook request; return its session change, or ``None`` for other events.

    Args:
        body: the raw request body, exactly as received (the signature covers these bytes).
        headers: the request headers (any mapping; names are matched case-insensitively).
        hmac_key: the session webhook's ``hmac.key``; when given, a request without a
            valid ``X-Webhook-Hmac`` signature is rejected before anything is parsed.

    Raises:
        WebhookSignatureError: bad or missing signature while ``hmac_key`` is set.
        WebhookError: the body is not a WAHA event, or a ``session.status`` event lacks
            its session or status.
    """
    if hmac_key:
        verify_waha_signature(body, headers, hmac_key)
    data = _load(body)
    event = data.get("event")
    if not isinstance(event, str):
        raise WebhookError("the WAHA webhook has no 'event' string", field="body.event")
    if event != "session.status":
        return None
    session = _required_str(data, "session", "WAHA session.status")
    payload = data.get("payload")
    if not isinstance(payload, Mapping):
        raise WebhookError(
            "the WAHA session.status webhook has no 'payload' object", field="body.payload"
        )
    gateway_status = _required_str(payload, "status", "WAHA session.status payload")
    event_id = data.get("id")
    return SessionStatusEvent(
        gateway="waha",
        session_id=session,
        status=waha_session_status(gateway_status),
        gateway_status=gateway_status,
        at=_waha_time(data.get("timestamp")),
        event_id=event_id if isinstance(event_id, str) else None,
        raw=data,
    )


def _evolution_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return _waha_time(value)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None  # a wall time without an offset names no instant
    return parsed.astimezone(UTC)


def parse_evolution_webhook(
    body: bytes | str,
    headers: Mapping[str, str] | None = None,
    *,
    api_key: str | None = None,
) -> SessionStatusEvent | None:
    """Parse an Evolution API webhook request; return its connection change, or ``None``.

    Evolution API does not sign its webhooks; it puts the instance's API key in the body
    (``apikey``). With ``api_key`` given, a request must carry that key, in the body or in
    an ``apikey`` header (Evolution's webhook ``headers`` setting), else it is rejected.

    Raises:
        WebhookSignatureError: ``api_key`` is set and the request does not carry it.
        WebhookError: the body is not an Evolution event, or a ``connection.update`` event
            lacks its instance or state.
    """
    data = _load(body)
    if api_key:
        offered = [_header(headers, "apikey"), data.get("apikey")]
        if not any(
            isinstance(key, str) and hmac.compare_digest(key.encode(), api_key.encode())
            for key in offered
        ):
            raise WebhookSignatureError(
                "the Evolution API webhook does not carry the configured api key "
                "(body 'apikey' or an 'apikey' header)"
            )
    event = data.get("event")
    if not isinstance(event, str):
        raise WebhookError("the Evolution API webhook has no 'event' string", field="body.event")
    if event.strip().lower().replace("_", ".").replace("-", ".") != "connection.update":
        return None
    inner = data.get("data")
    if not isinstance(inner, Mapping):
        raise WebhookError(
            "the Evolution API connection.update webhook has no 'data' object", field="body.data"
        )
    instance = data.get("instance")
    if not isinstance(instance, str) or not instance.strip():
        instance = _required_str(inner, "instance", "Evolution API connection.update")
    state = _required_str(inner, "state", "Evolution API connection.update data")
    return SessionStatusEvent(
        gateway="evolution",
        session_id=instance,
        status=evolution_session_status(state),
        gateway_status=state,
        at=_evolution_time(data.get("date_time")),
        event_id=None,
        raw=data,
    )


async def apply_session_event(
    event: SessionStatusEvent | None,
    target: SessionEventTarget,
    *,
    ignore_unknown_sessions: bool = True,
) -> bool:
    """Tell ``target`` (a ``Scheduler`` or a ``TaskStore``) about a session change.

    Connected calls ``session_connected``, disconnected ``session_disconnected``; an
    unknown state or ``None`` (another kind of event) does nothing. A session the target
    does not know (a gateway often hosts sessions the bot does not post through) is
    skipped unless ``ignore_unknown_sessions`` is false.

    Returns:
        Whether the target was called successfully.
    """
    if event is None or event.status is SessionStatus.UNKNOWN:
        return False
    try:
        if event.status is SessionStatus.CONNECTED:
            await target.session_connected(event.session_id)
        else:
            await target.session_disconnected(event.session_id)
    except SessionNotFound:
        if not ignore_unknown_sessions:
            raise
        logger.info(
            "%s webhook for session %r, which is not registered: ignored",
            event.gateway,
            event.session_id,
        )
        return False
    logger.info(
        "%s session %r is %s (%s)",
        event.gateway,
        event.session_id,
        event.status.value,
        event.gateway_status,
    )
    return True


async def handle_waha_webhook(
    body: bytes | str,
    headers: Mapping[str, str] | None,
    target: SessionEventTarget,
    *,
    hmac_key: str | None = None,
) -> SessionStatusEvent | None:
    """Parse a WAHA webhook and apply its session change to ``target``, in one call.

    Returns the event (``None`` for events other than ``session.status``). Raises what
    ``parse_waha_webhook`` raises; nothing is applied then.
    """
    event = parse_waha_webhook(body, headers, hmac_key=hmac_key)
    await apply_session_event(event, target)
    return event


async def handle_evolution_webhook(
    body: bytes | str,
    headers: Mapping[str, str] | None,
    target: SessionEventTarget,
    *,
    api_key: str | None = None,
) -> SessionStatusEvent | None:
    """Parse an Evolution API webhook and apply its connection change to ``target``.

    Returns the event (``None`` for events other than ``connection.update``). Raises what
    ``parse_evolution_webhook`` raises; nothing is applied then.
    """
    event = parse_evolution_webhook(body, headers, api_key=api_key)
    await apply_session_event(event, target)
    return event
