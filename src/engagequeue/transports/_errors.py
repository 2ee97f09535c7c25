"""Errors specific to the gateway transports and their webhook parsers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engagequeue._errors import PermanentTransportError, ValidationError

if TYPE_CHECKING:
    from engagequeue._abc import SendReceipt

__all__ = [
    "InvalidPostError",
    "PartialSendError",
    "UnsafeMediaURLError",
    "WebhookBodyTooLargeError",
    "WebhookConfigError",
    "WebhookError",
    "WebhookReplayError",
    "WebhookSignatureError",
]


class InvalidPostError(PermanentTransportError, ValidationError):
    """The post cannot be sent as it is (media type, size, chat id): found before the gateway call.

    A ``PermanentTransportError``, so a scheduler fails the task at once instead of retrying,
    and a ``ValidationError`` whose ``field`` names what is wrong (``"payload.media_url"``...).
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        ValidationError.__init__(self, message, field=field)


class PartialSendError(PermanentTransportError):
    """Part of a post went out and the rest could not: retrying would duplicate the sent part.

    Raised when a voice note was accepted but the text sent after it (its ``content``) was
    not. ``receipt`` is the voice note's receipt.
    """

    def __init__(self, message: str, *, receipt: SendReceipt) -> None:
        super().__init__(message)
        self.receipt = receipt


class WebhookError(ValidationError):
    """A webhook request is malformed: not JSON, or missing the fields an event needs."""

    def __init__(self, message: str, *, field: str | None = "body") -> None:
        super().__init__(message, field=field)


class WebhookSignatureError(WebhookError):
    """A webhook request failed authentication (bad or missing HMAC signature or key)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="headers")


class UnsafeMediaURLError(InvalidPostError):
    """A media URL the transport refuses to let anyone fetch (``allow_private_media=False``).

    Its host is, or resolves to, an address that is not globally routable (loopback,
    private, link-local, shared, multicast, reserved, unspecified), in any spelling, or it
    redirects to such a host. Refused before any connection, so the message names the rule
    and nothing that a server answered.
    """


class WebhookBodyTooLargeError(WebhookError):
    """A webhook body is larger than the receiver accepts (``max_body_bytes``); not parsed."""


class WebhookReplayError(WebhookError):
    """A webhook event is outside the replay window, or was already received within it.

    A signed event captured on the way can be sent again by anyone: events older than
    ``max_age`` (or that far in the future) and repeats of a seen event are refused.
    """

    def __init__(self, message: str, *, field: str | None = "body.timestamp") -> None:
        super().__init__(message, field=field)


class WebhookConfigError(WebhookError):
    """A webhook receiver is configured unsafely: no key, or an empty one.

    Receivers require a key unless built with ``insecure_no_auth=True`` (trusted networks
    only). Raised before the request is looked at, whatever it contains.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, field=None)
