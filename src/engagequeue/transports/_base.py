"""What both gateway transports share: one pooled httpx client, answer mapping, media probes."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar, Final, Self
from urllib.parse import urljoin, urlsplit

import httpx

from engagequeue._abc import SendReceipt, SessionStatus
from engagequeue._context import current_task
from engagequeue._errors import (
    PermanentTransportError,
    SessionDisconnectedError,
    TransientTransportError,
    TransportError,
)
from engagequeue._hosts import IPAddress, ip_of_host, normalise_host, refusal_of

from ._errors import InvalidPostError, PartialSendError, UnsafeMediaURLError
from ._media import Media, apply_probe, check_chat_id, check_media

if TYPE_CHECKING:
    import ssl

    from engagequeue._models import MediaType, Payload

__all__ = [
    "DEFAULT_TIMEOUT",
    "GatewayTransport",
    "Resolver",
    "answer_text",
    "message_id_of",
    "send_voice_then_text",
    "stable_message_id",
]

logger = logging.getLogger("engagequeue.transports")

DEFAULT_TIMEOUT: Final = httpx.Timeout(120.0, connect=10.0, pool=60.0)
"""Sends to groups of a thousand members can take tens of seconds: read up to 2 minutes."""
DEFAULT_MEDIA_PROBE_TIMEOUT: Final = httpx.Timeout(10.0)
_TRANSIENT_STATUSES: Final = frozenset({408, 425, 429})
_CONNECTION_CLOSED: Final = re.compile(r"connection\s+closed", re.IGNORECASE)
_MAX_ERROR_TEXT: Final = 300
_MAX_MEDIA_REDIRECTS: Final = 5
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``async (host, port) -> [ip, ...]``: every address a host name resolves to."""

_PRIVATE_RULE: Final = (
    "its host is, or resolves to, an address that is not globally routable "
    "(loopback, private, link-local, shared, multicast, reserved or unspecified); "
    "allow_private_media=False refuses such media URLs before any connection"
)


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the operating system's resolver (``getaddrinfo``)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _refused(url: str, rule: str) -> UnsafeMediaURLError:
    return UnsafeMediaURLError(
        f"payload.media_url {url!r} is refused: {rule}", field="payload.media_url"
    )


@cache
def _default_ssl_context() -> ssl.SSLContext:
    # Building a context loads the CA bundle (~0.2 s): do it once, share it (it is thread-safe).
    return httpx.create_ssl_context()


def stable_message_id(task_id: str, part: str = "") -> str:
    """A WhatsApp-style message id derived from a task id: the same on every retry.

    The shape (``3EB0`` and 18 upper-case hex digits) is the one WhatsApp Web clients use,
    so every engine accepts it. ``part`` tells apart several messages of one post.
    """
    digest = hashlib.sha256(f"engagequeue:{task_id}:{part}".encode()).hexdigest()
    return "3EB0" + digest[:18].upper()


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def answer_json(response: httpx.Response) -> Any:  # noqa: ANN401 - JSON is untyped
    """The answer's JSON body, or ``None`` when it is not JSON."""
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return None


def answer_text(response: httpx.Response) -> str:
    """A short, readable summary of an error answer's body (every string in its JSON)."""
    body = answer_json(response)
    if body is None:
        text = response.text.strip()
    else:
        text = "; ".join(dict.fromkeys(s.strip() for s in _strings(body) if s.strip()))
    if len(text) > _MAX_ERROR_TEXT:
        text = text[: _MAX_ERROR_TEXT - 3] + "..."
    return text or response.reason_phrase


def mentions_connection_closed(response: httpx.Response) -> bool:
    """Whether an error answer says the WhatsApp connection closed (the session dropped)."""
    return bool(_CONNECTION_CLOSED.search(response.text))


class GatewayTransport:
    """Base of the gateway transports: an async context manager owning one httpx pool."""

    gateway: ClassVar[str] = "gateway"
    _auth_header: ClassVar[str] = "X-Api-Key"
    _convertible: ClassVar[frozenset[MediaType]] = frozenset()

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_connections: int = 20,
        probe_media: bool = True,
        media_probe_timeout: float | httpx.Timeout = DEFAULT_MEDIA_PROBE_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        verify: ssl.SSLContext | bool = True,
        http_transport: httpx.AsyncBaseTransport | None = None,
        allow_private_media: bool = False,
        resolver: Resolver | None = None,
    ) -> None:
        url = httpx.URL(base_url)
        if url.scheme not in {"http", "https"} or not url.host:
            raise ValueError(f"base_url must be an absolute http(s) URL, got {base_url!r}")
        self.base_url = str(url).rstrip("/")
        self.probe_media = probe_media
        self.allow_private_media = allow_private_media
        self._resolver: Resolver = resolver or system_resolver
        all_headers = {"Accept": "application/json", **(headers or {})}
        if api_key:
            all_headers[self._auth_header] = api_key
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=all_headers,
            timeout=timeout,
            limits=limits,
            transport=http_transport,
            follow_redirects=False,
            verify=_default_ssl_context() if verify is True else verify,
        )
        # Media URLs point at third-party hosts: a separate client that never carries the key.
        # Redirects are followed by hand, so that every hop's host is checked and pinned.
        self._probe_client = httpx.AsyncClient(
            timeout=media_probe_timeout,
            follow_redirects=False,
            transport=http_transport,
            verify=_default_ssl_context(),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool. Idempotent."""
        await self._client.aclose()
        await self._probe_client.aclose()

    # -- hooks for the gateways ------------------------------------------------------------

    def _raise_for_answer(self, response: httpx.Response, session_id: str, action: str) -> None:
        """Raise the transport error an error answer means (called for non-2xx answers)."""
        raise NotImplementedError

    async def send(self, session_id: str, group_id: str, payload: Payload) -> SendReceipt:
        """Send ``payload`` to ``group_id`` through the session ``session_id``."""
        raise NotImplementedError

    async def session_status(self, session_id: str) -> SessionStatus:
        """The session's state as the gateway reports it."""
        raise NotImplementedError

    # -- shared machinery ------------------------------------------------------------------

    def _check_ids(self, session_id: str, group_id: str) -> None:
        if not isinstance(session_id, str) or not session_id.strip():
            raise InvalidPostError(
                f"session_id must name a {self.gateway} session, got {session_id!r}",
                field="session_id",
            )
        check_chat_id(group_id)

    async def _addresses(self, url: str) -> list[IPAddress]:
        """Check a media URL's host; return the addresses it may be fetched from.

        An IP literal in any spelling is read as parsers read it; a name is resolved and
        every address it resolves to is checked, so a name with one private address among
        public ones is refused too.
        """
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS:
            raise _refused(url, "only http and https media URLs can be fetched")
        try:
            port = parts.port or _DEFAULT_PORTS[parts.scheme]
            literal = ip_of_host(parts.hostname or "")
            name = normalise_host(parts.hostname or "").encode("idna").decode("ascii")
        except (ValueError, UnicodeError):
            raise _refused(url, "its host is not a valid host name or IP address") from None
        if literal is not None:
            addresses: list[IPAddress] = [literal]
        elif not name:
            raise _refused(url, "it has no host")
        else:
            try:
                found = await self._resolver(name, port)
            except OSError as exc:
                raise TransientTransportError(
                    f"the host of the media URL {url!r} cannot be resolved now "
                    f"({type(exc).__name__}); try again later"
                ) from exc
            try:
                addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
            except ValueError:
                raise _refused(
                    url, "its host resolves to something that is not an address"
                ) from None
            if not addresses:
                raise TransientTransportError(
                    f"the host of the media URL {url!r} resolves to no address now; try again later"
                )
        if not self.allow_private_media and any(refusal_of(a) for a in addresses):
            raise _refused(url, _PRIVATE_RULE)
        return addresses

    async def _head(self, url: str, addresses: Sequence[IPAddress]) -> httpx.Response:
        """``HEAD`` a media URL, checking and pinning every redirect hop.

        The request connects to an address that ``_addresses`` checked (the URL's host
        goes in the ``Host`` header and TLS SNI), so a name that resolves differently a
        moment later (DNS rebinding) cannot steer the probe elsewhere.
        """
        current = url
        for hop in range(_MAX_MEDIA_REDIRECTS + 1):
            address = (addresses if hop == 0 else await self._addresses(current))[0]
            parts = urlsplit(current)
            hostname = normalise_host(parts.hostname or "").encode("idna").decode("ascii")
            port = parts.port
            target = httpx.URL(
                scheme=parts.scheme,
                host=str(address),
                port=port,
                path=parts.path or "/",
                query=parts.query.encode(),
            )
            host_header = f"[{hostname}]" if ":" in hostname else hostname
            if port is not None:
                host_header += f":{port}"
            extensions = {} if ip_of_host(hostname) is not None else {"sni_hostname": hostname}
            response = await self._probe_client.head(
                target, headers={"Host": host_header}, extensions=extensions
            )
            location = response.headers.get("location")
            if not response.is_redirect or not location:
                return response
            current = urljoin(current, location)
        raise InvalidPostError(
            f"the media URL {url!r} redirects more than {_MAX_MEDIA_REDIRECTS} times",
            field="payload.media_url",
        )

    async def _media(self, payload: Payload) -> Media:
        can_convert = payload.media_type in self._convertible
        media = check_media(payload, can_convert=can_convert, require_mimetype=not self.probe_media)
        # Checked even without a probe: the gateway fetches this URL from its own network.
        addresses = await self._addresses(media.url)
        if not self.probe_media:
            return media
        try:
            response = await self._head(media.url, addresses)
        except httpx.TimeoutException as exc:
            raise TransientTransportError(
                f"the media URL {media.url!r} did not answer in time ({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            raise TransientTransportError(
                f"the media URL {media.url!r} cannot be reached ({type(exc).__name__})"
            ) from exc
        if response.status_code in {404, 410}:
            raise InvalidPostError(
                f"the media URL {media.url!r} answers {response.status_code}: "
                "the file is not there",
                field="payload.media_url",
            )
        if response.status_code in {401, 403}:
            raise InvalidPostError(
                f"the media URL {media.url!r} answers {response.status_code}: "
                "the gateway cannot download a private file; use a public link",
                field="payload.media_url",
            )
        if response.status_code >= 500 or response.status_code in _TRANSIENT_STATUSES:  # noqa: PLR2004
            raise TransientTransportError(
                f"the media URL {media.url!r} answers {response.status_code}; try again later"
            )
        if not response.is_success:
            # HEAD not supported (405, 501...): the gateway's GET may still work.
            return check_media(payload, can_convert=can_convert, require_mimetype=True)
        length = response.headers.get("content-length")
        return apply_probe(
            media,
            content_type=response.headers.get("content-type"),
            content_length=int(length) if length and length.isdigit() else None,
            can_convert=can_convert,
        )

    async def _call(
        self,
        method: str,
        path: str,
        *,
        session_id: str,
        action: str,
        json_body: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        """Make one gateway call; network failures become ``TransientTransportError``."""
        try:
            return await self._client.request(method, path, json=json_body)
        except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TransientTransportError(
                f"cannot reach {self.gateway} at {self.base_url} for {action} in time "
                f"({type(exc).__name__}); nothing was sent"
            ) from exc
        except httpx.TimeoutException as exc:
            raise TransientTransportError(
                f"{self.gateway} did not answer {action} for session {session_id!r} in time "
                f"({type(exc).__name__}); the message may still be delivered"
            ) from exc
        except httpx.HTTPError as exc:
            raise TransientTransportError(
                f"cannot reach {self.gateway} at {self.base_url} for {action} "
                f"({type(exc).__name__}: {exc or 'connection dropped'})"
            ) from exc

    async def _request(
        self,
        method: str,
        path: str,
        *,
        session_id: str,
        action: str,
        json_body: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        """Make one gateway call; map failures to transport errors, return a 2xx answer."""
        response = await self._call(
            method, path, session_id=session_id, action=action, json_body=json_body
        )
        if response.is_success:
            return response
        self._raise_for_answer(response, session_id, action)
        raise AssertionError("unreachable")  # pragma: no cover

    def _generic_error(
        self, response: httpx.Response, session_id: str, action: str
    ) -> TransportError:
        """The mapping both gateways share, once their specific answers are handled."""
        status = response.status_code
        detail = f"{self.gateway} answered {status} to {action} for session {session_id!r}"
        text = answer_text(response)
        if mentions_connection_closed(response):
            return SessionDisconnectedError(
                f"{detail}: the WhatsApp connection closed ({text}); "
                "the post waits for the session to reconnect"
            )
        if status in _TRANSIENT_STATUSES or status >= 500:  # noqa: PLR2004
            return TransientTransportError(f"{detail}: {text}")
        return PermanentTransportError(f"{detail}: {text}")

    def _receipt(self, response: httpx.Response, fallback_id: str | None) -> SendReceipt:
        body = answer_json(response)
        raw: Mapping[str, Any] = body if isinstance(body, Mapping) else {"body": response.text}
        message_id = message_id_of(raw) or fallback_id
        if message_id is None:
            logger.warning(
                "%s accepted a message but its answer names no message id: %s",
                self.gateway,
                json.dumps(raw)[:_MAX_ERROR_TEXT],
            )
            message_id = ""
        return SendReceipt(message_id=message_id, raw=raw)

    @staticmethod
    def _task_message_id(part: str = "") -> str | None:
        task = current_task()
        return None if task is None else stable_message_id(task.id, part)


def message_id_of(body: Mapping[str, Any]) -> str | None:
    """The message id in a send answer, whichever engine shaped it.

    WAHA's WEBJS engine gives ``{"id": "true_...@g.us_3EB0..."}`` or an ``id`` object with
    ``_serialized``; NOWEB, GOWS and Evolution API give Baileys' ``{"key": {"id": ...}}``.
    """
    value = body.get("id")
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping):
        serialized = value.get("_serialized") or value.get("id")
        if isinstance(serialized, str) and serialized:
            return serialized
    key = body.get("key")
    if isinstance(key, Mapping):
        key_id = key.get("id")
        if isinstance(key_id, str) and key_id:
            return key_id
    return None


async def send_voice_then_text(
    voice: Callable[[], Awaitable[SendReceipt]],
    text: Callable[[str], Awaitable[SendReceipt]],
    content: str | None,
    group_id: str,
    retry_delays: Sequence[float],
) -> SendReceipt:
    """Send a voice note, then its ``content`` as a text message (voice notes have no caption).

    Once the voice note is accepted, a failure of the text must not make the scheduler
    send the voice note again: the text is retried here on transient errors, and a
    lasting failure raises ``PartialSendError`` (permanent) naming the voice note's id.
    """
    receipt = await voice()
    if not content or not content.strip():
        return receipt
    delays = [*retry_delays, None]
    for delay in delays:
        try:
            text_receipt = await text(content)
        except TransientTransportError as exc:
            if delay is None:
                raise _partial(receipt, group_id, exc) from exc
            await asyncio.sleep(delay)
        except TransportError as exc:
            raise _partial(receipt, group_id, exc) from exc
        else:
            return SendReceipt(
                message_id=receipt.message_id,
                raw={
                    "voice": receipt.raw,
                    "text": text_receipt.raw,
                    "text_message_id": text_receipt.message_id,
                },
            )
    raise AssertionError("unreachable")  # pragma: no cover


def _partial(receipt: SendReceipt, group_id: str, exc: Exception) -> PartialSendError:
    return PartialSendError(
        f"the voice note was sent to {group_id} (message {receipt.message_id}), but the text "
        f"that follows it was not: {exc}; not retried, to avoid sending the voice note twice",
        receipt=receipt,
    )
