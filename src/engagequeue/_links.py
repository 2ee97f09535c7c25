"""Find, check and repair the links in a post. Pure code: no I/O, no model.

The composer trusts none of what a model writes. Every URL-like token is found here
(scheme URLs, ``www.`` hosts, bare domains WhatsApp would turn into links, IP-address hosts,
``javascript:``/``data:``/``tel:``... URIs, email addresses, Markdown links, URLs glued to
formatting or punctuation, look-alike hosts), compared with the profile's links after
normalisation, and either accepted (and then written exactly as the profile gives it) or
reported as a violation. ``repair_post`` turns any text into one that passes ``check_post``.

Links are looked for in a folded copy of the text, where every character that NFKC maps to
ASCII is that ASCII (fullwidth letters, digits, dots, colons and at signs; mathematical
letters) and invisible characters (zero-width spaces and joiners, soft hyphens, variation
selectors...) are gone: what a reader or a URL parser takes for ``evil.com`` is found as
``evil.com``. Spans are mapped back, so a repair removes the disguise with the link.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, Literal
from urllib.parse import urlsplit

import attrs

from ._hosts import HOST_DOTS, ip_of_host, normalise_host
from ._tlds import TLDS

__all__ = [
    "FoundLink",
    "Violation",
    "best_link",
    "canonicalise",
    "check_post",
    "find_links",
    "links_in",
    "normalise_url",
    "repair_post",
]

SENTENCE_PUNCTUATION: Final = ".,;:!?"
"""Punctuation that may follow a link, provided whitespace or the end of the text follows it."""

_ASCII_URL_CHARS: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%"
)
# Characters a URL may end with in the text that usually belong to the sentence around it.
_TRAILING: Final = frozenset(".,;:!?*_~)]}'\"")
# Formatting, brackets and quotes that get glued to a link from either side.
_OPENERS: Final = frozenset("*_~([{<\"'`“‘«„‚‹")  # noqa: RUF001 - typographic quotes on purpose
_CLOSERS: Final = frozenset("*_~)]}>\"'`”’»›")  # noqa: RUF001 - typographic quotes on purpose
# Bidirectional overrides, embeddings and isolates: they can make a link display as
# something other than where it goes. (LRM/RLM marks stay: RTL text needs them.)
_BIDI_CONTROLS: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# NUL and other C0/C1 controls (but tab and newlines), and lone surrogates: no store, JSON
# reader or chat client handles them, so a post must not carry them.
_UNSAFE_CHARS: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")

# Schemes that browsers, phones or chat clients act on without "//" after them: scripts,
# inline documents, local files, calls, messages, app intents. Any scheme followed by "/"
# or "\\" is a URL whatever its name; these are URLs also as ``name:anything``.
_BARE_SCHEMES: Final = frozenset((
    "javascript", "vbscript", "livescript", "data", "file", "blob", "filesystem",
    "view-source", "jar", "mhtml", "http", "https", "ftp", "ftps", "sftp", "ws", "wss",
    "ssh", "telnet", "gopher", "smb", "ldap", "irc", "ircs", "mailto", "tel", "sms", "smsto",
    "mms", "callto", "sip", "sips", "facetime", "facetime-audio", "skype", "whatsapp", "tg",
    "intent", "market", "itms", "itms-apps", "itms-services", "magnet", "bitcoin", "webcal",
    "chrome", "chrome-extension", "ms-settings",
))  # fmt: skip
# A scheme candidate; ``_settle`` keeps it when "/" or "\\" follows or it is a bare scheme.
_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{0,31}:(?=\S)")
_LABEL: Final = r"[^\W_](?:[^\W_]|-)*"
# A dot between labels: ".", or one that a parser reads as "." before an ASCII label
# (``evil\u3002com``). Not before other scripts: U+3002 and U+FF0E end sentences in CJK.
_DOT: Final = rf"(?:\.|[{HOST_DOTS}](?=[A-Za-z0-9]))"
_DOTS: Final = re.compile(rf"[.{HOST_DOTS}]")
# A host: two labels or more, not starting in the middle of a word.
_HOST: Final = re.compile(rf"(?<![^\W_]){_LABEL}(?:{_DOT}{_LABEL})+")
_EMAIL: Final = re.compile(rf"(?<![^\W_])[\w.+\-]{{0,63}}[^\W_.+\-]@{_LABEL}(?:{_DOT}{_LABEL})+")
# A bracketed IPv6 host ("[2001:db8::1]:80/x"); ``ip_of_host`` decides whether it is one.
_IPV6: Final = re.compile(rf"\[[0-9A-Fa-f:.{HOST_DOTS}]{{2,45}}(?:%[\w.~\-]{{1,32}})?\]")
_PATTERNS: Final = (_SCHEME, _EMAIL, _HOST, _IPV6)
_WWW: Final = re.compile(r"www\d{0,3}")
_WWW_LABEL: Final = re.compile(rf"(?<=[.\-{HOST_DOTS}])www\d{{0,3}}{_DOT}", re.IGNORECASE)
_PORT: Final = re.compile(r":\d")
_IPV4_PARTS: Final = 4
# Invisible characters (Unicode's default-ignorable code points): URL parsers drop them
# from hosts (IDNA maps them to nothing) and readers do not see them.
_IGNORABLE: Final = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0000-\U000e0fff]"
)
_NON_ASCII: Final = re.compile("[^\x00-\x7f]+")
_MAX_CUTS: Final = 16
_MARKDOWN_LINK: Final = re.compile(
    r"!?\[([^\[\]\n]{0,500})\]\(((?:[^()\n]|\([^()\n]*\)){0,2048})\)"
)
_HEADING: Final = re.compile(r"^[ \t]{0,3}#{1,6}(?:[ \t]+|$)(.*)$", re.MULTILINE)
# Written so that no two quantifiers compete for the same spaces: linear on any line.
_TABLE_RULE: Final = re.compile(
    r"^[ \t]*(?:\|[ \t]*)?:?-{3,}:?[ \t]*(?:\|[ \t]*:?-{3,}:?[ \t]*)+(?:\|[ \t]*)?$"
)
_TABLE_ROW: Final = re.compile(r"^[ \t]*\|[^\n]*\|[ \t]*$")
_DOUBLE_STAR: Final = re.compile(r"\*\*(?=\S)([^*\n]*?\S)\*\*")
_DOUBLE_UNDERSCORE: Final = re.compile(r"(?<![^\W_])__(?=\S)([^_\n]*?\S)__(?![^\W_])")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}

LinkKind = Literal["url", "domain", "email"]


@attrs.frozen
class Violation:
    """One rule a post breaks: a short ``code`` and a message fit to show the model."""

    code: str
    message: str

    def __str__(self) -> str:
        return self.message


@attrs.frozen
class FoundLink:
    """A URL-like token in a text: its span, its kind and the profile link it stands for.

    ``target`` is the profile link (exactly as the profile gives it) that the token
    matches after normalisation, or ``None`` for a foreign link.
    """

    start: int
    end: int
    raw: str
    kind: LinkKind
    target: str | None

    @property
    def exact(self) -> bool:
        """Whether the token is the profile link written exactly as given."""
        return self.target is not None and self.raw == self.target


def normalise_url(url: str) -> str | None:
    """Return a comparison key for an http(s) URL, or ``None`` if it is not one.

    Scheme and host are compared case-insensitively (and internationalised hosts in their
    ASCII form), a default port is the same as none, and a trailing slash on the path
    does not matter. Query and fragment are compared as written. URLs with credentials
    never match.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or "@" in parts.netloc:
        return None
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        host = host.lower()
    host = host.rstrip(".")
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    key = f"{scheme}://{netloc}{parts.path.rstrip('/')}"
    if parts.query:
        key += f"?{parts.query}"
    if parts.fragment:
        key += f"#{parts.fragment}"
    return key


def _link_keys(links: Iterable[str]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for link in links:
        key = normalise_url(link)
        if key is not None:
            keys.setdefault(key, link)
    return keys


def _is_url_char(ch: str) -> bool:
    if ch in _ASCII_URL_CHARS:
        return True
    if ord(ch) < 128:  # noqa: PLR2004 - the ASCII range
        return False
    return unicodedata.category(ch)[0] in "LNM"


def _run_end(text: str, pos: int) -> int:
    end = pos
    while end < len(text) and _is_url_char(text[end]):
        end += 1
    return end


class _Matcher:
    """Finds the links of one text against one set of profile links."""

    def __init__(self, links: Sequence[str]) -> None:
        self.keys = _link_keys(links)
        self.exact = sorted(set(links), key=len, reverse=True)

    def target(self, candidate: str, kind: LinkKind) -> str | None:
        if kind == "url":
            key = normalise_url(candidate)
            return None if key is None else self.keys.get(key)
        if kind == "domain":
            for scheme in ("https://", "http://"):
                key = normalise_url(scheme + candidate)
                if key is not None and key in self.keys:
                    return self.keys[key]
        return None

    def url_span(
        self, text: str, start: int, end: int, kind: LinkKind, floor: int = 0
    ) -> FoundLink:
        """Settle where a link starting at ``start`` ends, never before ``floor``.

        Also what it stands for: the profile link it matches, or none.
        """
        exact_ends = []
        for link in self.exact:  # a profile link written exactly always counts whole
            if text.startswith(link, start):
                if start + len(link) > end:
                    end = _run_end(text, start + len(link))
                exact_ends.append(start + len(link))
        cut = end
        cuts = [cut]
        while cut > max(start + 1, floor) and text[cut - 1] in _TRAILING:
            cut -= 1
            if (
                len(cuts) < _MAX_CUTS
                or cut <= max(start + 1, floor)
                or text[cut - 1] not in _TRAILING
            ):
                cuts.append(cut)  # every cut near each end, not all of a long run
        # "https://shop.example/x.Next": the profile link with a full stop glued to a word.
        glued = [e for e in exact_ends if e < end and text[e] in SENTENCE_PUNCTUATION]
        for candidate_end in sorted({*cuts, *glued}, reverse=True):
            target = self.target(text[start:candidate_end], kind)
            if target is not None:
                return FoundLink(start, candidate_end, text[start:candidate_end], kind, target)
        return FoundLink(start, cuts[-1], text[start : cuts[-1]], kind, None)


def _domain_length(host: str) -> int:
    """Length of the longest prefix of ``host`` that ends in a real TLD (0 if none)."""
    labels = _DOTS.split(host)
    if _WWW.fullmatch(labels[0].lower()):
        return len(host)  # WhatsApp links www. hosts whatever their TLD
    for count in range(len(labels), 1, -1):
        label = labels[count - 1]
        if (label.lower() if label.isascii() else normalise_host(label)) in TLDS:
            return sum(map(len, labels[:count])) + count - 1
    return 0


def _is_ip_host(host: str, port_follows: bool) -> bool:
    """Whether a dotted ``host`` names an IP address in a spelling taken for one.

    Four parts in any spelling (``93.184.216.34``, ``0x5d.0xb8.0xd8.0x22``, octal), or
    fewer with a hex part or a port (``0x7f.1``, ``127.1:8080``). Two or three plain
    numbers without a port are left alone: they are prices, dates and versions
    (``19.99``, ``12.05.2024``) far more often than addresses.
    """
    parts = _DOTS.split(host)
    if len(parts) > _IPV4_PARTS or not parts[-1][:1].isdigit():
        return False
    try:
        address = ip_of_host(host)
    except ValueError:  # ends in a number but no parser reads it as an address
        return False
    if address is None:
        return False
    hex_part = any(part[:2].lower() == "0x" for part in parts)
    return len(parts) == _IPV4_PARTS or hex_part or port_follows


@functools.lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    if ch in HOST_DOTS:
        return ch  # kept: ``_DOT`` decides where it separates host labels
    if _IGNORABLE.match(ch):
        return ""
    folded = unicodedata.normalize("NFKC", ch)
    return folded if folded.isascii() else ch


class _Folded:
    """A text with what NFKC maps to ASCII in ASCII and invisible characters dropped.

    ``start`` and ``end`` map a span of the folded text back to the original, widened to
    whole original characters (``⒈`` folds to ``1.``). Folding is linear; mapping a
    position is logarithmic in the number of characters whose length changed.
    """

    def __init__(self, text: str) -> None:
        self.original = text
        self.text = text
        # For each character folded to a length other than one: where its folding starts
        # and ends in the folded text, its original index, original minus folded after it.
        self.marks: list[tuple[int, int, int, int]] = []
        self.mark_starts: list[int] = []
        if text.isascii():
            return
        pieces: list[str] = []
        last = 0
        size = 0  # length of the folded text so far
        for run in _NON_ASCII.finditer(text):
            pieces.append(text[last : run.start()])
            size += run.start() - last
            last = run.end()
            chunk = run.group()
            if unicodedata.is_normalized("NFKC", chunk) and not _IGNORABLE.search(chunk):
                pieces.append(chunk)
                size += len(chunk)
                continue
            for index, ch in enumerate(chunk, run.start()):
                folded = _fold_char(ch)
                pieces.append(folded)
                if len(folded) != 1:
                    self.marks.append(
                        (size, size + len(folded), index, index + 1 - size - len(folded))
                    )
                size += len(folded)
        pieces.append(text[last:])
        self.text = "".join(pieces)
        self.mark_starts = [mark[0] for mark in self.marks]

    def start(self, pos: int) -> int:
        """The original index of the character that folded position ``pos`` comes from."""
        index = bisect.bisect_right(self.mark_starts, pos) - 1
        if index < 0:
            return pos
        _, end, original, shift = self.marks[index]
        return original if pos < end else pos + shift

    def end(self, pos: int) -> int:
        """The original index just after the character that ends at folded ``pos``."""
        index = bisect.bisect_left(self.mark_starts, pos) - 1
        if index < 0:
            return pos
        _, end, original, shift = self.marks[index]
        return original + 1 if pos <= end else pos + shift

    def restore(self, link: FoundLink) -> FoundLink:
        """``link`` found in the folded text, as a span of the original one."""
        if self.text is self.original:
            return link
        start, end = self.start(link.start), self.end(link.end)
        return FoundLink(start, end, self.original[start:end], link.kind, link.target)


def find_links(text: str, links: Sequence[str] = ()) -> list[FoundLink]:
    """Every URL-like token in ``text``, in order, matched against the profile ``links``.

    Found: URLs with any scheme (``https://``, ``ftp:/``...), ``javascript:``, ``data:``,
    ``tel:`` and other URIs a device acts on, hosts ending in a real top-level domain
    (``shop.example.com``, ``www.example``, look-alike Unicode hosts included), IP-address
    hosts (``93.184.216.34``, ``0x7f.1:80``, ``[::1]``), paths and ports after them, and
    email addresses; in any spelling NFKC maps to ASCII, with any dot a URL parser reads as
    ``.`` and with invisible characters inside. A token glued to formatting or punctuation
    is cut where the longest profile link it can be matches, else before trailing
    punctuation and closing marks.
    """
    matcher = _Matcher(links)
    found: list[FoundLink] = []
    folded = _Folded(text)
    text = folded.text
    searches = _Searches(text)
    pos = 0
    while pos < len(text):
        matches = searches.next_matches(pos)
        if not matches:
            break
        start = min(m.start() for m in matches)
        link = None
        for match in matches:  # at the same start: a scheme URL, else an email, else a host
            if match.start() == start:
                link = _settle(text, match, matcher)
                if link is not None:
                    break
                searches.failed(match)
        if link is None:
            pos = start + 1
            continue
        found.append(folded.restore(link))
        pos = max(link.end, start + 1)
    return found


class _Searches:
    """The next candidate of each pattern, searched once and skipped past when it failed.

    Keeps ``find_links`` linear on hostile input such as ``a.a.a.a...`` or ``a@b.a@b...``.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.skip: dict[re.Pattern[str], int] = dict.fromkeys(_PATTERNS, 0)
        self.cache: dict[re.Pattern[str], tuple[int, re.Match[str] | None]] = {}

    def next_matches(self, pos: int) -> list[re.Match[str]]:
        matches = []
        for pattern in _PATTERNS:
            origin = max(pos, self.skip[pattern])
            cached = self.cache.get(pattern)
            if (
                cached is not None
                and cached[0] <= origin
                and (cached[1] is None or cached[1].start() >= origin)
            ):
                match = cached[1]
            else:
                match = pattern.search(self.text, origin)
                self.cache[pattern] = (origin, match)
            if match is not None:
                matches.append(match)
        return matches

    def failed(self, match: re.Match[str]) -> None:
        """No link starts inside a failed email or host, but a ``www.`` label might."""
        end = match.end()
        if match.re is _HOST:
            www = _WWW_LABEL.search(self.text, match.start() + 1, end)
            end = www.start() if www else end
        self.skip[match.re] = end


def _settle(text: str, match: re.Match[str], matcher: _Matcher) -> FoundLink | None:
    """The link a candidate match stands for, or ``None`` if it is no link after all."""
    start = match.start()
    if match.re is _SCHEME:
        if text[match.end()] not in "/\\" and match.group()[:-1].lower() not in _BARE_SCHEMES:
            return None  # "Note:this", "Time:10"
        return matcher.url_span(text, start, _run_end(text, match.end()), "url")
    if match.re is _EMAIL:
        at = match.group().index("@")
        domain = _domain_length(match.group()[at + 1 :])
        if not domain:
            return None
        end = start + at + 1 + domain
        return FoundLink(start, end, text[start:end], "email", None)
    if match.re is _IPV6:
        try:
            address = ip_of_host(match.group())
        except ValueError:
            address = None
        domain = len(match.group()) if address is not None else 0
    else:
        domain = _domain_length(match.group())
        if not domain and _is_ip_host(match.group(), bool(_PORT.match(text, match.end()))):
            domain = len(match.group())
    if not domain:
        return None
    end = start + domain
    if end == match.end() and end < len(text) and text[end] in ":/?#":
        end = _run_end(text, end)
    floor = match.end() if match.re is _IPV6 else 0  # never cut inside the brackets
    return matcher.url_span(text, start, end, "domain", floor)


def links_in(text: str, links: Sequence[str]) -> tuple[str, ...]:
    """The profile links that ``text`` contains written exactly, in profile order, once each."""
    present = {f.raw for f in find_links(text, links) if f.exact}
    return tuple(dict.fromkeys(link for link in links if link in present))


def canonicalise(text: str, links: Sequence[str]) -> str:
    """Write every token that stands for a profile link exactly as the profile gives it.

    ``HTTPS://Shop.example.com:443/x/`` becomes ``https://shop.example.com/x`` when that is
    the profile's spelling; nothing else changes.
    """
    for link in reversed(find_links(text, links)):
        if link.target is not None and not link.exact:
            text = text[: link.start] + link.target + text[link.end :]
    return text


def _glued_after(text: str, end: int) -> str | None:
    """What is glued after a link ending at ``end``, or ``None`` if it stands free."""
    rest = end
    while rest < len(text) and text[rest] in SENTENCE_PUNCTUATION:
        rest += 1
    if rest == len(text) or text[rest].isspace():
        return None
    return text[end : rest + 1]


def _masked(text: str, found: Iterable[FoundLink]) -> str:
    chars = list(text)
    for link in found:
        chars[link.start : link.end] = " " * (link.end - link.start)
    return "".join(chars)


def _short(value: str, limit: int = 80) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def check_post(text: str, links: Sequence[str], limit: int) -> tuple[Violation, ...]:
    """Every rule ``text`` breaks, as a post for a group with these profile ``links``.

    Rules: not blank; at most ``limit`` characters; when ``links`` is not empty, at least
    one of them, written exactly; no other URL, web address or email; every link bare
    (preceded by whitespace or the start, followed by whitespace, the end, or sentence
    punctuation that whitespace or the end follows); no Markdown links, headings, tables
    or double emphasis; no bidirectional control characters.
    """
    if not text.strip():
        return (Violation("empty", "the post is empty"),)
    violations: list[Violation] = []
    if len(text) > limit:
        violations.append(
            Violation(
                "too_long",
                f"the post is {len(text)} characters long; the limit is {limit}: "
                "write a shorter post",
            )
        )
    found = find_links(text, links)
    violations.extend(
        Violation(
            "markdown_link",
            f"Markdown link {_short(match.group())!r}: WhatsApp does not render "
            "[text](url); write the bare link on its own line instead",
        )
        for match in _MARKDOWN_LINK.finditer(text)
    )
    for link in found:
        violations.extend(_link_violations_of(text, link, links))
    if links and not any(link.exact for link in found):
        violations.append(
            Violation(
                "missing_link",
                "the post contains none of the allowed links; include at least one, "
                f"exactly as given: {', '.join(links)}",
            )
        )
    violations.extend(_format_violations(_masked(text, found)))
    if any(ch in _BIDI_CONTROLS for ch in text):
        violations.append(
            Violation(
                "bidi_control", "the post contains invisible bidirectional control characters"
            )
        )
    if _UNSAFE_CHARS.search(text):
        violations.append(
            Violation(
                "control_character",
                "the post contains NUL, control characters or invalid Unicode; write plain text",
            )
        )
    return tuple(violations)


def _link_violations_of(text: str, link: FoundLink, links: Sequence[str]) -> list[Violation]:
    if link.target is None:
        what = "email address" if link.kind == "email" else "link"
        if links:
            message = (
                f"the {what} {_short(link.raw)!r} is not one of the allowed links; "
                f"remove it (allowed: {', '.join(links)})"
            )
        else:
            message = (
                f"the {what} {_short(link.raw)!r} is not allowed: this group's posts "
                "contain no URL, web address or email at all"
            )
        return [Violation("foreign_link", message)]
    violations = []
    if not link.exact:
        violations.append(
            Violation(
                "inexact_link", f"{_short(link.raw)!r} must be written exactly as {link.target}"
            )
        )
    if link.start > 0 and not text[link.start - 1].isspace():
        violations.append(
            Violation(
                "glued_link",
                f"{text[link.start - 1]!r} is glued before the link {link.target}; "
                "put a space or a line break before a link",
            )
        )
    glued = _glued_after(text, link.end)
    if glued is not None:
        violations.append(
            Violation(
                "glued_link",
                f"{glued!r} is glued after the link {link.target}; put a space or a "
                "line break after a link, and nothing such as *, _, ~, brackets or "
                "quotes around it",
            )
        )
    return violations


def _format_violations(masked: str) -> list[Violation]:
    violations: list[Violation] = []
    if _HEADING.search(masked):
        violations.append(
            Violation(
                "heading",
                "WhatsApp does not render Markdown # headings; use a *bold* line instead",
            )
        )
    lines = masked.split("\n")
    rows = [bool(_TABLE_ROW.match(line)) for line in lines]
    if any(_TABLE_RULE.match(line) for line in lines) or any(
        a and b for a, b in itertools.pairwise(rows)
    ):
        violations.append(
            Violation("table", "WhatsApp does not render tables; use short lines or a - list")
        )
    if _DOUBLE_STAR.search(masked) or _DOUBLE_UNDERSCORE.search(masked):
        violations.append(
            Violation(
                "double_emphasis",
                "WhatsApp does not render **double** markers; use *bold* and _italic_",
            )
        )
    return violations


# --------------------------------------------------------------------------- repair


def _words(text: str) -> set[str]:
    return set(re.findall(r"[^\W_]{3,}", text.lower()))


def best_link(
    links: Sequence[str], context: str, *, titles: Mapping[str, str] | None = None
) -> str:
    """The profile link that shares the most words with ``context`` (the first on a tie)."""
    words = _words(context)
    titles = titles or {}

    def score(link: str) -> int:
        return len(words & _words(f"{titles.get(link, '')} {link}"))

    return max(links, key=lambda link: (score(link), -links.index(link)))


def _markdown_target(inside: str) -> str:
    """The URL of ``[label](inside)``: ``url``, ``<url>`` or ``url "title"``."""
    inside = inside.strip()
    if inside.startswith("<") and ">" in inside:
        return inside[1 : inside.index(">")]
    return inside.split(maxsplit=1)[0] if inside else ""


def _unwrap_markdown(text: str, links: Sequence[str]) -> str:
    keys = _link_keys(links)

    def replace(match: re.Match[str]) -> str:
        label, url = match.group(1).strip(), _markdown_target(match.group(2))
        key = normalise_url(url)
        target = keys.get(key) if key is not None else None
        if target is None:
            return label
        label_key = normalise_url(label) if "://" in label else None
        before = match.string[match.start() - 1 : match.start()]
        after = match.string[match.end() : match.end() + 1]
        lead = "" if not before or before.isspace() else " "
        trail = "" if not after or after.isspace() else " "
        if not label or label_key == key:
            return f"{lead}{target}{trail}"
        return f"{label} {target}{trail}"

    return _MARKDOWN_LINK.sub(replace, text)


def _fix_formatting(text: str) -> str:
    text = _HEADING.sub(lambda m: f"*{m.group(1).strip()}*" if m.group(1).strip() else "", text)
    for _ in range(5):
        before = text
        text = _DOUBLE_STAR.sub(r"*\1*", text)
        text = _DOUBLE_UNDERSCORE.sub(r"_\1_", text)
        if text == before:
            break
    lines = []
    for line in text.split("\n"):
        if _TABLE_RULE.match(line):
            continue
        if _TABLE_ROW.match(line):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            lines.append(" – ".join(cell for cell in cells if cell))  # noqa: RUF001 - en dash
        else:
            lines.append(line)
    return "\n".join(lines)


def _drop_foreign(text: str, links: Sequence[str]) -> str:
    for link in reversed(find_links(text, links)):
        if link.target is None:
            left, right = text[: link.start], text[link.end :]
            if left[-1:] in (" ", "\t") and (right[:1] in (" ", "\t") or _ENDS_CLAUSE.match(right)):
                left = left.rstrip(" \t")  # "Buy at https://x." -> "Buy at."
            text = left + right
    return text


_ENDS_CLAUSE: Final = re.compile(r"[.,;:!?]+(?:\s|$)")
_PLAIN: Final = re.compile(r"[*_~#|\[\]]")
_EMPTY_WRAPPERS: Final = re.compile(r"\(\s*\)|\[\s*\]|<\s*>|\{\s*\}|\"\s*\"|“\s*”|«\s*»")
_EMPTY_MARKERS: Final = re.compile(r"(?<![*_~\w])([*_~])\1(?![*_~\w])")


def _tidy(text: str) -> str:
    text = _EMPTY_WRAPPERS.sub("", text)
    text = _EMPTY_MARKERS.sub("", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def _unglue(text: str, links: Sequence[str]) -> str:
    """Free every profile link from what is glued to it, keeping the formatting readable."""
    for link in reversed(find_links(text, links)):
        if link.target is not None:
            text = _unglue_one(text, link, link.target)
    return text


def _unglue_one(text: str, link: FoundLink, url: str) -> str:
    start = link.start
    while start > 0 and text[start - 1] in _OPENERS:
        start -= 1
    end = link.end
    while end < len(text) and (text[end] in _CLOSERS or text[end] in SENTENCE_PUNCTUATION):
        end += 1
    opened = text[start : link.start]
    after = text[link.end : end]
    closed = "".join(ch for ch in after if ch not in SENTENCE_PUNCTUATION)
    punctuation = "".join(ch for ch in after if ch in SENTENCE_PUNCTUATION)
    left, right = text[:start], text[end:]
    if opened and closed:
        opened = closed = ""  # the link alone was wrapped: unwrap it
    if closed:  # closes a span that began before the link: close it before the link
        stripped = left.rstrip()
        if stripped and not stripped.endswith("\n"):
            gap = left[len(stripped) :]
            left = stripped + closed + ("\n" if "\n" in gap else " ")
    if opened:  # opens a span that goes on after the link: open it after the link
        rest = right.lstrip(" \t")
        if rest and not rest.startswith("\n"):
            right = " " + opened + rest
    if left and not left[-1].isspace():
        left += " "
    tail = url + punctuation
    if right and not right[0].isspace():
        tail += " "
    return left + tail + right


def _fit(text: str, links: Sequence[str], limit: int, keep: str | None) -> str:
    """Shorten ``text`` to ``limit`` characters without cutting a link, keeping ``keep``."""
    if len(text) <= limit:
        return text
    suffix = f"\n\n{keep}" if keep else ""
    budget = max(limit - len(suffix) - 1, 0)
    cut = budget
    for link in find_links(text, links):
        if link.start < cut < link.end + 1:
            cut = link.start
    body = text[:cut]
    if cut < len(text) and not text[cut].isspace():
        space = max(body.rfind(" "), body.rfind("\n"))
        if space > budget // 2:
            body = body[:space]
    body = body.rstrip()
    if keep and keep in links_in(body, links):
        suffix = ""
    if body:
        ends_with_link = any(link.end == len(body) for link in find_links(body, links))
        body += " …" if ends_with_link else "…"
    return (body + suffix).strip()


def repair_post(
    text: str,
    links: Sequence[str],
    limit: int,
    *,
    context: str = "",
    titles: Mapping[str, str] | None = None,
) -> str:
    """Turn ``text`` into a post that passes ``check_post``.

    Unwraps Markdown links (keeping their label, and the link if it is a profile link),
    turns headings, tables and double markers into WhatsApp formatting, removes foreign
    URLs, domains and emails, writes profile links exactly as given and frees them from
    glued formatting or punctuation, appends the profile link that best fits ``context``
    on its own line when none is left, and shortens the text to ``limit``. Returns ``""``
    only when nothing usable is left and ``links`` is empty.
    """
    links = tuple(links)
    usable = [link for link in links if len(link) <= limit]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ch for ch in text if ch not in _BIDI_CONTROLS)
    text = _UNSAFE_CHARS.sub("", text)
    text = _unwrap_markdown(text, links)
    text = _fix_formatting(text)
    for _ in range(3):
        text = canonicalise(text, links)
        text = _drop_foreign(text, links)
        text = _tidy(text)
        text = _unglue(text, links)
        if not any(v.code != "missing_link" for v in _link_violations(text, links)):
            break
    else:
        text = _tidy(_strip_links(text, links))
    keep: str | None = None
    if usable:
        present = links_in(text, usable)
        keep = present[0] if present else best_link(usable, f"{context}\n{text}", titles=titles)
        if not present:
            text = f"{text}\n\n{keep}".strip()
    text = _fit(text, links, limit, keep)
    if check_post(text, links, limit):  # last resorts, each simpler and surer
        body = _tidy(_fix_formatting(_strip_links(text, links)))
        text = _fit(f"{body}\n\n{keep}".strip() if keep else body, links, limit, keep)
    if check_post(text, links, limit):
        body = _tidy(_strip_links(_PLAIN.sub("", text), links))
        text = _fit(f"{body}\n\n{keep}".strip() if keep else body, links, limit, keep)
    if check_post(text, links, limit):
        text = keep or ""
    return text


def _link_violations(text: str, links: Sequence[str]) -> tuple[Violation, ...]:
    return tuple(v for v in check_post(text, links, 1 << 30) if v.code.endswith("link"))


def _strip_links(text: str, links: Sequence[str]) -> str:
    """Remove every URL-like token and whatever is glued to it."""
    for link in reversed(find_links(text, links)):
        start, end = link.start, link.end
        while start > 0 and not text[start - 1].isspace():
            start -= 1
        while end < len(text) and not text[end].isspace():
            end += 1
        text = text[:start] + text[end:]
    return _MARKDOWN_LINK.sub(lambda m: m.group(1), text)
