"""Session-status webhooks of WAHA and Evolution API: pure parsers and a one-call helper.

No I/O and no HTTP library: the parsers take the raw request body and headers, so any web
framework can mount them (``engagequeue.http.create_webhook_router`` does, for FastAPI)::

    await handle_waha_webhook(body, request.headers, scheduler, hmac_key="...")

Secure by default: a receiver needs a key (``insecure_no_auth=True`` is the named opt-out,
for trusted networks only), checks it before parsing, in constant time, refuses bodies
over 1 MiB, events outside a 5-minute replay window and repeats of an event within it,
and never lets an older session-state event undo a newer one.

The typed ``SessionStatusEvent`` says which session is now connected or disconnected;
``apply_session_event`` calls ``session_connected`` / ``session_disconnected`` on a
``Scheduler`` (or on a ``TaskStore``: both have these coroutines).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final, Protocol

import attrs

from engagequeue._abc import SessionStatus
from engagequeue._errors import SessionNotFound

from ._errors import (
    WebhookBodyTooLargeError,
    WebhookConfigError,
    WebhookError,
    WebhookReplayError,
    WebhookSignatureError,
)

__all__ = [
    "DEFAULT_MAX_AGE",
    "DEFAULT_MAX_BODY_BYTES",
    "SessionEventTarget",
    "SessionStatusEvent",
    "WebhookGuard",
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
_MAX_SESSION_NAME: Final = 200

DEFAULT_MAX_AGE: Final = timedelta(minutes=5)
"""The replay window: webhook events dated further from now than this are refused."""
DEFAULT_MAX_BODY_BYTES: Final = 1024 * 1024
"""Webhook bodies larger than this (1 MiB) are refused unread."""


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


def _header(headers: Mapping[str, Any] | None, name: str) -> bytes | None:
    """A header's value as bytes (whatever its characters), matched case-insensitively."""
    if not headers:
        return None
    value = headers.get(name)
    if value is None:
        wanted = name.lower()
        value = next((item for key, item in headers.items() if str(key).lower() == wanted), None)
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        # surrogatepass: a header decoded from bytes the sender chose may hold anything.
        return value.encode("utf-8", "surrogatepass")
    return None


def _raw(body: bytes | str, max_body_bytes: int) -> bytes:
    """The body as bytes, refused whole when over the cap: nothing larger is looked at."""
    if isinstance(body, str):
        if len(body) > max_body_bytes:
            raise WebhookBodyTooLargeError(_too_large(len(body), max_body_bytes))
        body = body.encode("utf-8", "surrogatepass")
    elif not isinstance(body, bytes | bytearray | memoryview):
        raise WebhookError(f"the webhook body must be bytes, not {type(body).__name__}")
    raw = bytes(body)
    if len(raw) > max_body_bytes:
        raise WebhookBodyTooLargeError(_too_large(len(raw), max_body_bytes))
    return raw


def _too_large(size: int, limit: int) -> str:
    return (
        f"the webhook body is {size} bytes; this receiver accepts at most {limit} (max_body_bytes)"
    )


def _load(raw: bytes) -> Mapping[str, Any]:
    try:
        data = json.loads(raw)
    except RecursionError:
        raise WebhookError("the webhook body is nested too deeply to be an event") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookError(f"the webhook body is not JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise WebhookError(f"the webhook body must be a JSON object, not {type(data).__name__}")
    return data


def _required_str(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise WebhookError(f"the {where} webhook has no {key!r} string", field=f"body.{key}")
    return value


def _session_name(data: Mapping[str, Any], key: str, where: str) -> str:
    """A session or instance name fit to be stored: printable, valid text, not too long."""
    value = _required_str(data, key, where)
    if (
        len(value) > _MAX_SESSION_NAME
        or not all(ch.isprintable() for ch in value)
        or any(0xD800 <= ord(ch) <= 0xDFFF for ch in value)  # noqa: PLR2004 - surrogates
    ):
        raise WebhookError(
            f"the {where} webhook's {key!r} is not a session name (printable text of at "
            f"most {_MAX_SESSION_NAME} characters)",
            field=f"body.{key}",
        )
    return value


def configured_key(key: str | None, insecure_no_auth: bool, name: str, gateway: str) -> str | None:
    """The key to check, or ``None`` when built explicitly without one; else refuse."""
    if key is not None and not isinstance(key, str):
        raise WebhookConfigError(f"{name} must be a string, not {type(key).__name__}")
    if key is not None and not key.strip():
        raise WebhookConfigError(
            f"{name} is empty: an empty key would accept any request; set the {gateway} "
            "webhook's key, or pass insecure_no_auth=True on a trusted network only"
        )
    if key is not None and insecure_no_auth:
        raise WebhookConfigError(f"give either {name} or insecure_no_auth=True, not both")
    if key is None and not insecure_no_auth:
        raise WebhookConfigError(
            f"no {name}: a {gateway} webhook receiver requires a key, so that only the "
            "gateway can change a session's state; pass insecure_no_auth=True to accept "
            "unauthenticated requests (trusted networks only)"
        )
    return key


def _check_age(
    at: datetime | None, where: str, max_age: timedelta | None, now: datetime | None
) -> None:
    """Refuse an event outside ``[now - max_age, now + max_age]`` (the replay window)."""
    if max_age is None:
        return
    if at is None:
        raise WebhookReplayError(
            f"the {where} webhook has no time, so its age cannot be checked against the "
            "replay window (max_age=None turns the window off)"
        )
    current = now or datetime.now(UTC)
    if at < current - max_age:
        raise WebhookReplayError(
            f"the {where} webhook is older than the replay window of {max_age} (max_age): "
            "refused as a possible replay"
        )
    if at > current + max_age:
        raise WebhookReplayError(
            f"the {where} webhook is dated more than {max_age} ahead of this clock (max_age): "
            "refused; check the clocks of the gateway and this host"
        )


def verify_waha_signature(
    body: bytes | str, headers: Mapping[str, str] | None, hmac_key: str
) -> None:
    """Check WAHA's ``X-Webhook-Hmac`` header: the HMAC-SHA512 of the raw body under the key.

    Raises:
        WebhookSignatureError: the header is missing, uses another algorithm, or does not
            match (compared in constant time, as bytes, whatever characters it holds).
        WebhookConfigError: ``hmac_key`` is empty.
    """
    if not isinstance(hmac_key, str) or not hmac_key.strip():
        raise WebhookConfigError("hmac_key is empty: an empty key would accept any request")
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    algorithm = _header(headers, WAHA_HMAC_ALGORITHM_HEADER)
    if algorithm is not None and algorithm.strip().lower() not in {b"sha512", b"sha-512"}:
        shown = algorithm.decode("ascii", "replace")[:20]
        raise WebhookSignatureError(
            f"the webhook is signed with {shown!r}; only sha512 is supported"
        )
    signature = _header(headers, WAHA_HMAC_HEADER)
    if not signature:
        raise WebhookSignatureError(
            f"the webhook has no {WAHA_HMAC_HEADER} header, but an hmac key is configured; "
            "set the same key in the WAHA session's webhook config (hmac.key)"
        )
    key = hmac_key.encode("utf-8", "surrogatepass")
    expected = hmac.new(key, raw, hashlib.sha512).hexdigest().encode()
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
    insecure_no_auth: bool = False,
    max_age: timedelta | None = DEFAULT_MAX_AGE,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    now: datetime | None = None,
) -> SessionStatusEvent | None:
    """Parse a WAHA webhook request; return its session change, or ``None`` for other events.

    The checks run in this order, each before anything later is looked at: the key is
    configured, the body fits ``max_body_bytes``, the ``X-Webhook-Hmac`` signature
    matches (constant time), then the JSON is parsed and a ``session.status`` event must
    be dated within ``max_age`` of ``now``. Repeats of one event id are refused by the
    handlers (``handle_waha_webhook``), which keep the state that takes.

    Args:
        body: the raw request body, exactly as received (the signature covers these bytes).
        headers: the request headers (any mapping; names are matched case-insensitively).
        hmac_key: the session webhook's ``hmac.key``. Required unless ``insecure_no_auth``.
        insecure_no_auth: accept unsigned requests. Anyone who can reach the receiver can
            then mark sessions disconnected: trusted networks only.
        max_age: the replay window; ``None`` turns it off.
        max_body_bytes: larger bodies are refused unread (1 MiB by default).
        now: the current time (aware), for tests; the system clock by default.

    Raises:
        WebhookConfigError: no key (and not ``insecure_no_auth``), or an empty key.
        WebhookBodyTooLargeError: the body is over ``max_body_bytes``.
        WebhookSignatureError: bad or missing signature.
        WebhookReplayError: the event is outside the replay window, or has no timestamp.
        WebhookError: the body is not a WAHA event, or a ``session.status`` event lacks
            its session or status. Nothing else, whatever the request holds.
    """
    key = configured_key(hmac_key, insecure_no_auth, "hmac_key", "WAHA")
    raw = _raw(body, max_body_bytes)
    if key is not None:
        verify_waha_signature(raw, headers, key)
    data = _load(raw)
    event = data.get("event")
    if not isinstance(event, str):
        raise WebhookError("the WAHA webhook has no 'event' string", field="body.event")
    if event != "session.status":
        return None
    session = _session_name(data, "session", "WAHA session.status")
    payload = data.get("payload")
    if not isinstance(payload, Mapping):
        raise WebhookError(
            "the WAHA session.status webhook has no 'payload' object", field="body.payload"
        )
    gateway_status = _required_str(payload, "status", "WAHA session.status payload")
    at = _waha_time(data.get("timestamp"))
    _check_age(at, "WAHA session.status", max_age, now)
    event_id = data.get("id")
    return SessionStatusEvent(
        gateway="waha",
        session_id=session,
        status=waha_session_status(gateway_status),
        gateway_status=gateway_status[:_MAX_SESSION_NAME],
        at=at,
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
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return None  # 0001-01-01 with a positive offset: before any instant UTC can hold


_BODY_APIKEY: Final = re.compile(rb'"apikey"\s*:\s*"((?:[^"\\]|\\.){0,512})"')
_MAX_KEY_CANDIDATES: Final = 4


def _carries_key(raw: bytes, headers: Mapping[str, str] | None, api_key: str) -> bool:
    """Whether the request carries ``api_key``: in an ``apikey`` header or in the raw body.

    Looked for in the raw bytes, before the body is parsed, so an unauthenticated
    request never reaches the JSON parser; compared in constant time.
    """
    key = api_key.encode("utf-8", "surrogatepass")
    escaped = json.dumps(api_key)[1:-1].encode("utf-8", "surrogatepass")
    offered = _header(headers, "apikey")
    if offered is not None and hmac.compare_digest(offered.strip(), key):
        return True
    found = False
    for count, match in enumerate(_BODY_APIKEY.finditer(raw)):
        if count >= _MAX_KEY_CANDIDATES:
            break
        candidate = match.group(1)
        # Both comparisons always run: no early exit that timing could tell apart.
        found |= hmac.compare_digest(candidate, key) | hmac.compare_digest(candidate, escaped)
    return found


def parse_evolution_webhook(
    body: bytes | str,
    headers: Mapping[str, str] | None = None,
    *,
    api_key: str | None = None,
    insecure_no_auth: bool = False,
    max_age: timedelta | None = DEFAULT_MAX_AGE,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    now: datetime | None = None,
) -> SessionStatusEvent | None:
    """Parse an Evolution API webhook request; return its connection change, or ``None``.

    Evolution API does not sign its webhooks; it puts the instance's API key in the body
    (``apikey``), and can send it in an ``apikey`` header too (the webhook ``headers``
    setting). The key is looked for in the header and in the raw body before the body is
    parsed, and compared in constant time; a ``connection.update`` event must then be
    dated (``date_time``) within ``max_age`` of ``now``.

    Args:
        body: the raw request body.
        headers: the request headers (names matched case-insensitively).
        api_key: the instance token (or global key) Evolution sends. Required unless
            ``insecure_no_auth``.
        insecure_no_auth: accept requests without the key: trusted networks only.
        max_age: the replay window; ``None`` turns it off.
        max_body_bytes: larger bodies are refused unread (1 MiB by default).
        now: the current time (aware), for tests; the system clock by default.

    Raises:
        WebhookConfigError: no key (and not ``insecure_no_auth``), or an empty key.
        WebhookBodyTooLargeError: the body is over ``max_body_bytes``.
        WebhookSignatureError: the request does not carry the key.
        WebhookReplayError: the event is outside the replay window, or has no time.
        WebhookError: the body is not an Evolution event, or a ``connection.update`` event
            lacks its instance or state. Nothing else, whatever the request holds.
    """
    key = configured_key(api_key, insecure_no_auth, "api_key", "Evolution API")
    raw = _raw(body, max_body_bytes)
    if key is not None and not _carries_key(raw, headers, key):
        raise WebhookSignatureError(
            "the Evolution API webhook does not carry the configured api key "
            "(body 'apikey' or an 'apikey' header)"
        )
    data = _load(raw)
    if key is not None and _header(headers, "apikey") is None:
        # Found in the raw bytes: make sure it is the event's own top-level key.
        offered = data.get("apikey")
        if not isinstance(offered, str) or not hmac.compare_digest(
            offered.encode("utf-8", "surrogatepass"), key.encode("utf-8", "surrogatepass")
        ):
            raise WebhookSignatureError(
                "the Evolution API webhook's top-level 'apikey' is not the configured key"
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
    if isinstance(instance, str) and instance.strip():
        instance = _session_name(data, "instance", "Evolution API connection.update")
    else:
        instance = _session_name(inner, "instance", "Evolution API connection.update")
    state = _required_str(inner, "state", "Evolution API connection.update data")
    at = _evolution_time(data.get("date_time"))
    _check_age(at, "Evolution API connection.update", max_age, now)
    return SessionStatusEvent(
        gateway="evolution",
        session_id=instance,
        status=evolution_session_status(state),
        gateway_status=state[:_MAX_SESSION_NAME],
        at=at,
        event_id=None,
        raw=data,
    )


class WebhookGuard:
    """What a receiver remembers between requests: seen events and the last state applied.

    - An event seen before within the replay window (by its id, or by its body's digest
      when the gateway gives no id, as Evolution API) is refused: ``WebhookReplayError``.
    - A session-state event dated before the last one applied for that session is
      accepted but not applied, so a late or replayed "disconnected" does not undo a
      newer "connected".

    Memory is bounded: at most ``max_events`` ids (the oldest forgotten first; ids older
    than the window are refused by their age anyway) and ``max_sessions`` sessions.
    One guard serves one process; behind several processes, each refuses repeats it saw.
    """

    def __init__(
        self,
        *,
        max_age: timedelta = DEFAULT_MAX_AGE,
        max_events: int = 10_000,
        max_sessions: int = 10_000,
    ) -> None:
        if max_events < 1 or max_sessions < 1:
            raise ValueError("max_events and max_sessions must be at least 1")
        self.max_age = max_age
        self.max_events = max_events
        self.max_sessions = max_sessions
        self._seen: OrderedDict[tuple[str, str], datetime] = OrderedDict()
        self._applied: OrderedDict[tuple[str, str], datetime] = OrderedDict()

    def admit(self, event: SessionStatusEvent, key: str, *, now: datetime | None = None) -> None:
        """Record ``event`` under ``key`` (its id or digest); refuse it if seen already.

        Raises:
            WebhookReplayError: the same key was admitted within the replay window.
        """
        current = now or datetime.now(UTC)
        while self._seen:
            oldest, seen_at = next(iter(self._seen.items()))
            if seen_at >= current - self.max_age and len(self._seen) < self.max_events:
                break
            del self._seen[oldest]
        entry = (event.gateway, key)
        if entry in self._seen:
            raise WebhookReplayError(
                f"the {event.gateway} webhook event was already received within the replay "
                "window: refused as a replay",
                field="body.id",
            )
        self._seen[entry] = current

    def is_stale(self, event: SessionStatusEvent) -> bool:
        """Whether a newer state of the event's session was applied already."""
        last = self._applied.get((event.gateway, event.session_id))
        return last is not None and event.at is not None and event.at < last

    def applied(self, event: SessionStatusEvent) -> None:
        """Remember that the event's state is now the session's (by the event's time)."""
        if event.at is None:
            return
        entry = (event.gateway, event.session_id)
        self._applied[entry] = max(event.at, self._applied.get(entry, event.at))
        self._applied.move_to_end(entry)
        while len(self._applied) > self.max_sessions:
            self._applied.popitem(last=False)


_DEFAULT_GUARD: Final = WebhookGuard()


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


async def _handle(
    event: SessionStatusEvent | None,
    raw: bytes | str,
    target: SessionEventTarget,
    guard: WebhookGuard | None,
    now: datetime | None,
) -> SessionStatusEvent | None:
    if event is None:
        return None
    guard = _DEFAULT_GUARD if guard is None else guard
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    guard.admit(event, event.event_id or hashlib.sha256(data).hexdigest(), now=now)
    if guard.is_stale(event):
        logger.info(
            "%s webhook for session %r says %s as of %s, older than the state applied "
            "last: not applied",
            event.gateway,
            event.session_id,
            event.gateway_status,
            event.at,
        )
        return event
    await apply_session_event(event, target)
    guard.applied(event)
    return event


async def handle_waha_webhook(
    body: bytes | str,
    headers: Mapping[str, str] | None,
    target: SessionEventTarget,
    *,
    hmac_key: str | None = None,
    insecure_no_auth: bool = False,
    max_age: timedelta | None = DEFAULT_MAX_AGE,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    guard: WebhookGuard | None = None,
    now: datetime | None = None,
) -> SessionStatusEvent | None:
    """Parse a WAHA webhook, refuse repeats, and apply its session change to ``target``.

    Returns the event (``None`` for events other than ``session.status``). ``guard``
    holds the replay cache and each session's last applied time (a process-wide one by
    default). Raises what ``parse_waha_webhook`` raises, or ``WebhookReplayError`` for
    an event id already received; nothing is applied then.
    """
    event = parse_waha_webhook(
        body,
        headers,
        hmac_key=hmac_key,
        insecure_no_auth=insecure_no_auth,
        max_age=max_age,
        max_body_bytes=max_body_bytes,
        now=now,
    )
    return await _handle(event, body, target, guard, now)


async def handle_evolution_webhook(
    body: bytes | str,
    headers: Mapping[str, str] | None,
    target: SessionEventTarget,
    *,
    api_key: str | None = None,
    insecure_no_auth: bool = False,
    max_age: timedelta | None = DEFAULT_MAX_AGE,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    guard: WebhookGuard | None = None,
    now: datetime | None = None,
) -> SessionStatusEvent | None:
    """Parse an Evolution API webhook, refuse repeats, and apply its connection change.

    Returns the event (``None`` for events other than ``connection.update``). Evolution
    gives its events no id, so a repeat is told by the digest of its body. Raises what
    ``parse_evolution_webhook`` raises, or ``WebhookReplayError``; nothing is applied then.
    """
    event = parse_evolution_webhook(
        body,
        headers,
        api_key=api_key,
        insecure_no_auth=insecure_no_auth,
        max_age=max_age,
        max_body_bytes=max_body_bytes,
        now=now,
    )
    return await _handle(event, body, target, guard, now)
