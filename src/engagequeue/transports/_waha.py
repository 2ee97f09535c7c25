"""``WahaTransport``: posts through WAHA (WhatsApp HTTP API), one server, many sessions."""

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
    send_voice_then_text,
)
from ._media import VOICE_MIMETYPE, check_text, is_voice_native
from ._webhooks import waha_session_status

if TYPE_CHECKING:
    import ssl

    import httpx

__all__ = ["WahaTransport"]

logger = logging.getLogger("engagequeue.transports")

_HTTP_UNAUTHORIZED = 401
_HTTP_FORBIDDEN = 403
_HTTP_NOT_FOUND = 404
_HTTP_UNPROCESSABLE = 422


class WahaTransport(GatewayTransport):
    """A ``MessageTransport`` that sends through a WAHA server.

    ``send(session_id, group_id, payload)`` posts to the WAHA session named ``session_id``
    and the chat ``group_id`` (``...@g.us``): text with ``/api/sendText``, images with
    ``/api/sendImage``, videos with ``/api/sendVideo`` and audio as a voice note with
    ``/api/sendVoice`` (WAHA converts anything but OGG/Opus). An audio post's ``content``
    follows the voice note as a separate text message, since voice notes carry no caption.

    Answers map onto the transport errors: a wrong key (401) and an unknown session (404)
    are ``PermanentTransportError``; a session that is not ``WORKING`` (422) or an engine
    answer "Connection Closed" are ``SessionDisconnectedError``; 429, 5xx, timeouts and
    connection errors are ``TransientTransportError``.

    Args:
        base_url: the WAHA server, e.g. ``"http://localhost:3000"``.
        api_key: sent as ``X-Api-Key`` (WAHA's ``WAHA_API_KEY``).
        timeout: seconds or an ``httpx.Timeout``; reads wait up to 2 minutes by default,
            since sends to large groups are slow.
        message_ids: pass a message id derived from the task id with text messages (WAHA's
            ``id`` field), so a retried send is recognised as the same message. Only the
            NOWEB and GOWS engines accept it (WAHA 2026.4.3 and later); leave it off for WEBJS.
        link_preview: ask WAHA to render a preview of the first link in a text.
        convert_video: ask WAHA to re-encode every video with ffmpeg, not only non-MP4 ones.
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

    gateway: ClassVar[str] = "WAHA"
    _auth_header: ClassVar[str] = "X-Api-Key"
    _convertible: ClassVar[frozenset[MediaType]] = frozenset({MediaType.VIDEO, MediaType.AUDIO})

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        message_ids: bool = False,
        link_preview: bool = True,
        convert_video: bool = False,
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
        self.message_ids = message_ids
        self.link_preview = link_preview
        self.convert_video = convert_video
        self.text_retry_delays = tuple(text_retry_delays)

    async def send(self, session_id: str, group_id: str, payload: Payload) -> SendReceipt:
        """Send ``payload`` to the chat ``group_id`` through the WAHA session ``session_id``."""
        self._check_ids(session_id, group_id)
        base = {"session": session_id, "chatId": group_id}
        if payload.media_type is MediaType.TEXT:
            return await self._send_text(base, check_text(payload.content), part="")
        media = await self._media(payload)
        mimetype = media.mimetype or "application/octet-stream"
        if payload.media_type is MediaType.IMAGE:
            body: dict[str, Any] = {
                **base,
                "file": {"url": media.url, "mimetype": mimetype, "filename": media.filename},
            }
            if payload.content:
                body["caption"] = payload.content
            return await self._post("/api/sendImage", body, session_id, "sendImage")
        if payload.media_type is MediaType.VIDEO:
            body = {
                **base,
                "file": {"url": media.url, "mimetype": mimetype, "filename": media.filename},
                "convert": media.needs_conversion or self.convert_video,
            }
            if payload.content:
                body["caption"] = payload.content
            return await self._post("/api/sendVideo", body, session_id, "sendVideo")
        native = is_voice_native(mimetype)
        body = {
            **base,
            "file": {"url": media.url, "mimetype": VOICE_MIMETYPE if native else mimetype},
            "convert": not native,
        }

        async def voice() -> SendReceipt:
            return await self._post("/api/sendVoice", body, session_id, "sendVoice")

        async def text(content: str) -> SendReceipt:
            return await self._send_text(base, content, part="text")

        return await send_voice_then_text(
            voice, text, payload.content, group_id, self.text_retry_delays
        )

    async def _send_text(self, base: Mapping[str, str], text: str, *, part: str) -> SendReceipt:
        body: dict[str, Any] = {**base, "text": text, "linkPreview": self.link_preview}
        message_id = self._task_message_id(part) if self.message_ids else None
        if message_id is not None:
            body["id"] = message_id
        return await self._post("/api/sendText", body, base["session"], "sendText", message_id)

    async def _post(
        self,
        path: str,
        body: Mapping[str, Any],
        session_id: str,
        action: str,
        message_id: str | None = None,
    ) -> SendReceipt:
        response = await self._request(
            "POST", path, session_id=session_id, action=action, json_body=body
        )
        return self._receipt(response, message_id)

    def _raise_for_answer(self, response: httpx.Response, session_id: str, action: str) -> None:
        status = response.status_code
        if status in {_HTTP_UNAUTHORIZED, _HTTP_FORBIDDEN}:
            raise PermanentTransportError(
                f"WAHA refused the API key ({status} {response.reason_phrase}) for {action}: "
                "the X-Api-Key is wrong or missing; set api_key to the server's WAHA_API_KEY"
            )
        body = answer_json(response)
        if status == _HTTP_UNPROCESSABLE and isinstance(body, Mapping) and _not_working(body):
            raise SessionDisconnectedError(
                f"WAHA session {session_id!r} is {body.get('status') or 'not ready'}, "
                f"not WORKING ({action} answered 422); the post waits for it to reconnect"
            )
        if status == _HTTP_NOT_FOUND and not _mentions_connection_closed(body):
            raise PermanentTransportError(
                f"WAHA has no session {session_id!r} (404 to {action}): create and start it, "
                f"or fix the session name ({_message(body) or response.reason_phrase})"
            )
        raise self._generic_error(response, session_id, action)

    async def session_status(self, session_id: str) -> SessionStatus:
        """The WAHA session's state: connected only while ``WORKING``.

        An unknown session is ``DISCONNECTED``; a gateway that cannot be reached gives
        ``UNKNOWN``. A wrong API key raises ``PermanentTransportError``.
        """
        path = f"/api/sessions/{quote(session_id, safe='')}"
        try:
            response = await self._call("GET", path, session_id=session_id, action="session status")
        except TransientTransportError as exc:
            logger.warning("WAHA session %r status unknown: %s", session_id, exc)
            return SessionStatus.UNKNOWN
        if response.status_code == _HTTP_NOT_FOUND:
            return SessionStatus.DISCONNECTED
        if response.status_code in {_HTTP_UNAUTHORIZED, _HTTP_FORBIDDEN}:
            self._raise_for_answer(response, session_id, "session status")
        if not response.is_success:
            logger.warning(
                "WAHA session %r status unknown: %s answered %s",
                session_id,
                path,
                response.status_code,
            )
            return SessionStatus.UNKNOWN
        body = answer_json(response)
        return waha_session_status(body.get("status") if isinstance(body, Mapping) else None)


def _message(body: object) -> str:
    if not isinstance(body, Mapping):
        return ""
    for key in ("message", "error"):
        value = body.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            return "; ".join(str(v) for v in value)
    return ""


def _not_working(body: Mapping[str, Any]) -> bool:
    text = f"{body.get('error', '')} {body.get('message', '')}".lower()
    return "session status is not as expected" in text or "expected" in body


def _mentions_connection_closed(body: object) -> bool:
    return "connection closed" in str(body).lower()
