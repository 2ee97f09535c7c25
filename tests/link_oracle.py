"""Shared by the composer's tests: an independent link-rule oracle and answer strategies."""

from __future__ import annotations

import re

from hypothesis import strategies as st

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
    masked = "".join(chars)
    if links:
        assert found_allowed, f"no bare allowed link in {text!r}"
    assert not re.search(r"[A-Za-z][A-Za-z0-9+.\-]*://", masked), (
        f"a URL that is not a bare allowed link remains: {text!r}"
    )
    assert not re.search(r"(?i)(?<![^\W_])www\d{0,3}\.[^\W_]", masked), text
    for match in re.finditer(r"[^\W_]\.([^\W_](?:[^\W_]|-)*)", masked):
        assert match.group(1).lower() not in TLDS, f"bare domain {match.group()!r} in {text!r}"
    assert not re.search(r"\[[^\]\n]*\]\([^)\n]*\)", masked), f"Markdown link in {text!r}"
    assert not any(ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069" for ch in text)


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
