"""WhatsApp gateway transports (WAHA, Evolution API) and their session-status webhooks.

``WahaTransport`` and ``EvolutionTransport`` need httpx (``pip install
'engagequeue[gateways]'``); they load on first use, so the webhook parsers, which are pure
and need no HTTP library, can be imported by any web framework without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engagequeue._abc import SessionStatus

from ._errors import (
    InvalidPostError,
    PartialSendError,
    UnsafeMediaURLError,
    WebhookBodyTooLargeError,
    WebhookConfigError,
    WebhookError,
    WebhookReplayError,
    WebhookSignatureError,
)
from ._webhooks import (
    DEFAULT_MAX_AGE,
    DEFAULT_MAX_BODY_BYTES,
    SessionEventTarget,
    SessionStatusEvent,
    WebhookGuard,
    apply_session_event,
    evolution_session_status,
    handle_evolution_webhook,
    handle_waha_webhook,
    parse_evolution_webhook,
    parse_waha_webhook,
    verify_waha_signature,
    waha_session_status,
)

if TYPE_CHECKING:
    from ._base import stable_message_id
    from ._evolution import EvolutionTransport
    from ._waha import WahaTransport

__all__ = [
    "DEFAULT_MAX_AGE",
    "DEFAULT_MAX_BODY_BYTES",
    "EvolutionTransport",
    "InvalidPostError",
    "PartialSendError",
    "SessionEventTarget",
    "SessionStatus",
    "SessionStatusEvent",
    "UnsafeMediaURLError",
    "WahaTransport",
    "WebhookBodyTooLargeError",
    "WebhookConfigError",
    "WebhookError",
    "WebhookGuard",
    "WebhookReplayError",
    "WebhookSignatureError",
    "apply_session_event",
    "evolution_session_status",
    "handle_evolution_webhook",
    "handle_waha_webhook",
    "parse_evolution_webhook",
    "parse_waha_webhook",
    "stable_message_id",
    "verify_waha_signature",
    "waha_session_status",
]


def __getattr__(name: str) -> Any:  # noqa: ANN401 - module attribute hook
    """Load the httpx-based transports on first use."""
    if name == "WahaTransport":
        from ._waha import WahaTransport  # noqa: PLC0415 - lazy on purpose

        return WahaTransport
    if name == "EvolutionTransport":
        from ._evolution import EvolutionTransport  # noqa: PLC0415 - lazy on purpose

        return EvolutionTransport
    if name == "stable_message_id":
        from ._base import stable_message_id  # noqa: PLC0415 - lazy on purpose

        return stable_message_id
    raise AttributeError(f"module 'engagequeue.transports' has no attribute {name!r}")
