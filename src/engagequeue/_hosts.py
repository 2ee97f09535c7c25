"""Host names and IP literals as browsers and gateways read them: pure functions, no I/O.

A URL's host can name an IP address in many spellings that a naive check misses:
``2130706433``, ``0x7f.1``, ``0177.0.0.1`` and ``127.1`` are all 127.0.0.1 to the C
resolver (``inet_aton``) and to the WHATWG URL parser that Node.js gateways use;
``[::ffff:127.0.0.1]`` is the same host over IPv6; fullwidth digits and dots
(fullwidth one-two-seven...) become ASCII under IDNA mapping. ``normalise_host`` and
``ip_of_host`` read a host the way those parsers do, so the media-URL guard and the link
check see the address that would really be contacted.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from typing import Final
from urllib.parse import unquote

__all__ = ["HOST_DOTS", "IPAddress", "ip_of_host", "normalise_host", "refusal_of"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

HOST_DOTS: Final = "\u3002\uff0e\uff61\ufe52\u2024"
"""Characters other than ``.`` that a URL parser reads as the dot between host labels.

IDNA (UTS 46) maps the ideographic, fullwidth and halfwidth full stops; NFKC maps the small
full stop and the one-dot leader.
"""
_DOTS: Final = str.maketrans(dict.fromkeys(HOST_DOTS, "."))
_HEX_DIGITS: Final = frozenset("0123456789abcdef")
_MAX_PARTS: Final = 4
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL: Final = ipaddress.ip_network("64:ff9b:1::/48")
_SHARED: Final = ipaddress.ip_network("100.64.0.0/10")


def normalise_host(host: str) -> str:
    """The host as a URL parser ends up using it: percent-decoded, NFKC, dots mapped, lower.

    Brackets around an IPv6 literal and one trailing dot (the DNS root) are removed.
    """
    text = unquote(host, errors="strict") if "%" in host else host
    text = unicodedata.normalize("NFKC", text).translate(_DOTS).strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if text.endswith(".") and not text.endswith(".."):
        text = text[:-1]
    return text


def _number(part: str) -> int | None:
    """One part of a WHATWG IPv4 host: decimal, ``0x`` hex or ``0``-prefixed octal."""
    if part[:2] in {"0x", "0X"}:
        digits = part[2:].lower()
        if not digits:
            return 0
        return int(digits, 16) if set(digits) <= _HEX_DIGITS else None
    if not part.isascii() or not part.isdigit():
        return None
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8) if set(part) <= set("01234567") else None
    return int(part)


def _ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The WHATWG URL standard's IPv4 parser (the one ``inet_aton`` also implements)."""
    parts = host.split(".")
    if len(parts) > _MAX_PARTS or not all(parts):
        return None
    numbers = [_number(part) for part in parts]
    if any(n is None for n in numbers):
        return None
    values = [n for n in numbers if n is not None]
    *head, last = values
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(values)):  # noqa: PLR2004
        return None
    address = last
    for index, value in enumerate(head):
        address += value << (8 * (3 - index))
    return ipaddress.IPv4Address(address)


def _ends_in_a_number(host: str) -> bool:
    last = host.rsplit(".", 1)[-1]
    if last.isascii() and last.isdigit():
        return True
    return last[:2] == "0x" and set(last[2:]) <= _HEX_DIGITS


def ip_of_host(host: str) -> IPAddress | None:
    """The IP address a URL host names in any spelling, or ``None`` for a domain name.

    Raises:
        ValueError: the host ends in a number (so parsers read it as an IPv4 address) but
            is not a valid one, e.g. ``1.2.3.4.5`` or ``256.1``: no parser agrees on it.
    """
    text = normalise_host(host)
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text.split("%", 1)[0])
        except ValueError:
            raise ValueError(f"{host!r} is not a valid IPv6 address") from None
    if not text or not _ends_in_a_number(text):
        return None
    address = _ipv4(text)
    if address is None:
        raise ValueError(f"{host!r} ends in a number but is not a valid IPv4 address")
    return address


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, NAT64, 6to4, IPv4-compatible)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or address in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if int(address) >> 32 == 0:  # ::a.b.c.d, the deprecated IPv4-compatible form
        return ipaddress.IPv4Address(int(address))
    return None


def refusal_of(address: IPAddress) -> str | None:
    """Why ``address`` is not a public destination (``"loopback"``, ``"private"``...), or ``None``.

    Public means globally routable unicast: every loopback, private, link-local, shared
    (100.64/10), multicast, reserved or unspecified address is refused, and so is an IPv6
    address carrying one of those as an embedded IPv4 address.
    """
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_v4(address)
        if inner is not None and not address.is_unspecified and not address.is_loopback:
            return refusal_of(inner)
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("shared", isinstance(address, ipaddress.IPv4Address) and address in _SHARED),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("non-global", not address.is_global),
    )
    for name, refused in checks:
        if refused:
            return name
    return None
