"""``EvolutionTransport``: posts through Evolution API, one server, many instances."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from engagequeue._abc import SendReceipt, SessionStatus
from engagequeue._errors import (
    PermanentTransportError,
    SessionDisconnectedError,
    TransientTransportError,
)
from engagequeue._models import MediaType, Payload

from ._base import (
    DEFAULT_MEDIA_PROBE_TIMEOUT,
    DEFAULT_TIMEOUT,
    GatewayTransport,
    Resolver,
    answer_json,
    answer_text,
    send_voice_then_text,
)
from ._media import check_text
from ._webhooks import evolution_session_status

if TYPE_CHECKING:
    import ssl

    import httpx

__all__ = ["EvolutionTransport"]

logger = logging.getLogger("engagequeue.transports")

_HTTP_BAD_REQUEST = 400
_HTTP_UNAUTHORIZED = 401
_HTTP_FORBIDDEN = 403
_HTTP_NOT_FOUND = 404


class EvolutionTransport(GatewayTransport):
    """A ``MessageTransport`` that sends through an Evolution API (v2) server.

    ``send(session_id, group_id, payload)`` posts through the instance named
    ``session_id`` to the chat ``group_id`` (``...@g.us``): text with
    ``/message/sendText/{instance}``, images and videos with ``/message/sendMedia/{instance}``
    and audio as a voice note with ``/message/sendWhatsAppAudio/{instance}`` (Evolution
    converts it to OGG/Opus). An audio post's ``content`` follows the voice note as a
    separate text message, since voice notes carry no caption.

    Answers map onto the transport errors: a wrong key (401) and an unknown instance (404)
    are ``PermanentTransportError``; "Connection Closed" answers (400 or 500) and answers
    reporting a state other than ``open`` are ``SessionDisconnectedError``; 429, 5xx,
    timeouts and connection errors are ``TransientTransportError``.

    Args:
        base_url: the Evolution API server, e.g. ``"http://localhost:8080"``.
        api_key: sent as the ``apikey`` header: the global ``AUTHENTICATION_API_KEY`` or
            the instance's token.
        timeout: seconds or an ``httpx.Timeout``; reads wait up to 2 minutes by default,
            since sends to large groups are slow.
        link_preview: ask Evolution to render a preview of the first link in a text.
        presence_delay_ms: Evolution's ``delay``: show "typing..." that long before a text
            (the HTTP call is held as long). ``None`` sends at once.
        max_connections: size of the connection pool.
        probe_media: check each media URL with a ``HEAD`` request before sending (the file
            exists, fits WhatsApp's size limit, is the right kind); the gateway's API key is
            never sent there.
        media_probe_timeout: timeout of that check.
        text_retry_delays: waits between the retries of the text that follows a voice note.
        headers: extra headers for every gateway request.
        verify: TLS verification of the gateway: ``False``, or an ``ssl.SSLContext`` for a
            gateway behind a private certificate authority.
        http_transport: an ``httpx`` transport to use instead of the network (for tests).
        allow_private_media: let media URLs whose host is, or resolves to, a loopback,
            private, link-local or other non-public address through. Off by default: such
            a URL is refused (``UnsafeMediaURLError``, a ``PermanentTransportError``)
            before any connection, since the probe and the gateway would fetch it from
            inside your network. Turn it on only where the media server shares a private
            network with the gateway and everyone who can schedule posts is trusted.
        resolver: ``async (host, port) -> [ip, ...]`` used to resolve media hosts before
            they are checked and connected to (default: the system resolver).
    """

    gateway: ClassVar[str] = "Evolution API"
    _auth_header: ClassVar[str] = "apikey"
    _convertible: ClassVar[frozenset[MediaType]] = frozenset({MediaType.AUDIO})

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        link_preview: bool = True,
        presence_delay_ms: int | None = None,
        max_connections: int = 20,
        probe_media: bool = True,
        media_probe_timeout: float | httpx.Timeout = DEFAULT_MEDIA_PROBE_TIMEOUT,
        text_retry_delays: Sequence[float] = (1.0, 4.0),
        headers: Mapping[str, str] | None = None,
        verify: ssl.SSLContext | bool = True,
        http_transport: httpx.AsyncBaseTransport | None = None,
        allow_private_media: bool = False,
        resolver: Resolver | None = None,
    ) -> None:
        super().__init__(
            base_url,
            api_key=api_key,
            timeout=timeout,
            max_connections=max_connections,
            probe_media=probe_media,
            media_probe_timeout=media_probe_timeout,
            headers=headers,
            verify=verify,
            http_transport=http_transport,
            allow_private_media=allow_private_media,
            resolver=resolver,
        )
        if presence_delay_ms is not None and presence_delay_ms < 0:
            raise ValueError(f"presence_delay_ms must be >= 0, got {presence_delay_ms}")
        self.link_preview = link_preview
        self.presence_delay_ms = presence_delay_ms
        self.text_retry_delays = tuple(text_retry_delays)

    async def send(self, session_id: str, group_id: str, payload: Payload) -> SendReceipt:
        """Send ``payload`` to the chat ``group_id`` through the instance ``session_id``."""
        self._check_ids(session_id, group_id)
        instance = quote(session_id, safe="")
        if payload.media_type is MediaType.TEXT:
            return await self._send_text(
                instance, session_id, group_id, check_text(payload.content)
            )
        media = await self._media(payload)
        if payload.media_type in {MediaType.IMAGE, MediaType.VIDEO}:
            body: dict[str, Any] = {
                "number": group_id,
                "mediatype": payload.media_type.value,
                "mimetype": media.mimetype or "application/octet-stream",
                # The v2 OpenAPI document marks caption and fileName required.
                "caption": payload.content or "",
                "media": media.url,
                "fileName": media.filename,
            }
            return await self._post(f"/message/sendMedia/{instance}", body, session_id, "sendMedia")
        # encoding=true (Evolution's default, made explicit): convert to OGG/Opus, send as PTT.
        voice_body = {"number": group_id, "audio": media.url, "encoding": True}

        async def voice() -> SendReceipt:
            return await self._post(
                f"/message/sendWhatsAppAudio/{instance}",
                voice_body,
                session_id,
                "sendWhatsAppAudio",
            )

        async def text(content: str) -> SendReceipt:
            return await self._send_text(instance, session_id, group_id, content)

        return await send_voice_then_text(
            voice, text, payload.content, group_id, self.text_retry_delays
        )

    async def _send_text(
        self, instance: str, session_id: str, group_id: str, text: str
    ) -> SendReceipt:
        body: dict[str, Any] = {"number": group_id, "text": text, "linkPreview": self.link_preview}
        if self.presence_delay_ms:
            body["delay"] = self.presence_delay_ms
        return await self._post(f"/message/sendText/{instance}", body, session_id, "sendText")

    async def _post(
        self, path: str, body: Mapping[str, Any], session_id: str, action: str
    ) -> SendReceipt:
        response = await self._request(
            "POST", path, session_id=session_id, action=action, json_body=body
        )
        return self._receipt(response, None)

    def _raise_for_answer(self, response: httpx.Response, session_id: str, action: str) -> None:
        status = response.status_code
        if status in {_HTTP_UNAUTHORIZED, _HTTP_FORBIDDEN}:
            raise PermanentTransportError(
                f"Evolution API refused the API key ({status} {response.reason_phrase}) for "
                f"{action}: the apikey header is wrong or missing; set api_key to the global "
                "AUTHENTICATION_API_KEY or the instance's token"
            )
        body = answer_json(response)
        state = _state_in(body)
        if state is not None and state.lower() != "open":
            raise SessionDisconnectedError(
                f"Evolution API instance {session_id!r} is {state!r}, not open ({action} "
                f"answered {status}); the post waits for it to reconnect"
            )
        text = answer_text(response)
        closed = "connection closed" in response.text.lower()
        if status == _HTTP_NOT_FOUND and not closed:
            raise PermanentTransportError(
                f"Evolution API has no instance {session_id!r} (404 to {action}): create it, "
                f"or fix the instance name ({text})"
            )
        if status == _HTTP_BAD_REQUEST and not closed and _chat_missing(body):
            raise PermanentTransportError(
                f"Evolution API says the chat does not exist (400 to {action}): {text}"
            )
        raise self._generic_error(response, session_id, action)

    async def session_status(self, session_id: str) -> SessionStatus:
        """The instance's connection state: connected only while ``open``.

        An unknown instance is ``DISCONNECTED``; a gateway that cannot be reached gives
        ``UNKNOWN``. A wrong API key raises ``PermanentTransportError``.
        """
        path = f"/instance/connectionState/{quote(session_id, safe='')}"
        try:
            response = await self._call(
                "GET", path, session_id=session_id, action="connection state"
            )
        except TransientTransportError as exc:
            logger.warning("Evolution API instance %r state unknown: %s", session_id, exc)
            return SessionStatus.UNKNOWN
        if response.status_code == _HTTP_NOT_FOUND:
            return SessionStatus.DISCONNECTED
        if response.status_code in {_HTTP_UNAUTHORIZED, _HTTP_FORBIDDEN}:
            self._raise_for_answer(response, session_id, "connection state")
        if not response.is_success:
            logger.warning(
                "Evolution API instance %r state unknown: %s answered %s",
                session_id,
                path,
                response.status_code,
            )
            return SessionStatus.UNKNOWN
        return evolution_session_status(_state_in(answer_json(response)))


def _state_in(body: object) -> str | None:
    """The connection ``state`` an answer reports, at its top level or under ``instance``."""
    if not isinstance(body, Mapping):
        return None
    for holder in (body, body.get("instance"), body.get("response")):
        if isinstance(holder, Mapping):
            state = holder.get("state")
            if isinstance(state, str) and state:
                return state
    return None


def _chat_missing(body: object) -> bool:
    """Evolution's 400 for a chat that does not exist: ``message: [{"exists": false}]``."""
    if not isinstance(body, Mapping):
        return False
    inner = body.get("response")
    messages = inner.get("message") if isinstance(inner, Mapping) else None
    if not isinstance(messages, list):
        return False
    return any(isinstance(m, Mapping) and m.get("exists") is False for m in messages)
