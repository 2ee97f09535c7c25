"""Disguised foreign links: IP hosts, NFKC look-alikes, odd dots and non-http(s) schemes.

Each of these kept a foreign address in a post that ``check_post`` passed (issue 14, 4).
"""

from __future__ import annotations

import pytest

from engagequeue._links import check_post, find_links, links_in, repair_post
from link_oracle import LINKS, SALE

DISGUISED = [
    "93.184.216.34/login",
    "93.184.216.34",
    "0x5d.0xb8.0xd8.0x22/login",
    "0135.0270.0330.042",
    "0x5d.12113954",
    "93.184.216.34:8080",
    "127.1:8080/admin",
    "[2001:db8::1]/login",
    "[::ffff:127.0.0.1]:80",
    "\uff45\uff56\uff49\uff4c.\uff43\uff4f\uff4d",  # fullwidth letters, ASCII dot
    "evil\uff0ecom",  # fullwidth full stop
    "evil\u3002com",  # ideographic full stop
    "evil\uff61com",  # halfwidth ideographic full stop
    "evil\ufe52com",  # small full stop
    "\U0001d41e\U0001d42f\U0001d422\U0001d425.\U0001d41c\U0001d428\U0001d426",  # bold maths
    "ev\u200bil.com",  # zero-width space inside
    "evil\u200d.com",  # zero-width joiner before the dot
    "evil.c\u00adom",  # soft hyphen
    "\uff19\uff13.\uff11\uff18\uff14.\uff12\uff11\uff16.\uff13\uff14",  # fullwidth digits
    "me\uff20evil.com",  # fullwidth at sign
    "javascript:alert(1)",
    "JavaScript:alert(document.cookie)",
    "\uff4a\uff41\uff56\uff41\uff53\uff43\uff52\uff49\uff50\uff54\uff1aalert(1)",
    "vbscript:msgbox(1)",
    "data:text/html,<script>alert(1)</script>",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "file:///etc/passwd",
    "file:/etc/passwd",
    "ftp:files.example",
    "https:evil.example",
    "https:/evil.example",
    "mailto:deals@evil.example",
    "tel:+33899000000",
    "sms:+33899000000",
    "intent://scan/#Intent;scheme=zxing;end",
    "whatsapp://send?text=hi",
]


@pytest.mark.parametrize("disguised", DISGUISED)
def test_a_disguised_foreign_link_is_a_violation(disguised: str) -> None:
    for text in (f"Deal at {disguised} now {SALE}", f"{SALE}\n{disguised}"):
        assert "foreign_link" in [v.code for v in check_post(text, LINKS, 4096)], text
        assert [f.target for f in find_links(text, LINKS)].count(None) == 1, text


@pytest.mark.parametrize("disguised", DISGUISED)
def test_a_group_without_links_refuses_a_disguised_link_too(disguised: str) -> None:
    assert [v.code for v in check_post(f"Go {disguised} now", (), 4096)] == ["foreign_link"]


@pytest.mark.parametrize("disguised", DISGUISED)
def test_repair_drops_a_disguised_link_like_any_foreign_one(disguised: str) -> None:
    text = repair_post(f"Deal at {disguised} now!", LINKS, 4096)
    assert check_post(text, LINKS, 4096) == ()
    assert links_in(text, LINKS) == (SALE,)
    assert text.startswith("Deal at"), text
    assert text.endswith(f"\n\n{SALE}")
    bare = repair_post(f"Deal at {disguised} now!", (), 4096)
    assert check_post(bare, (), 4096) == ()
    assert find_links(bare) == []


def test_the_found_span_covers_the_disguise_in_the_original_text() -> None:
    text = "Go ev\u200bil\uff0e\uff43\uff4f\uff4d/x now"
    (link,) = find_links(text, LINKS)
    assert link.raw == "ev\u200bil\uff0e\uff43\uff4f\uff4d/x"
    assert text[link.start : link.end] == link.raw
    assert (link.kind, link.target) == ("domain", None)


def test_a_profile_link_in_fullwidth_letters_is_the_profile_link_written_inexactly() -> None:
    fullwidth = SALE.replace("shop", "\uff53\uff48\uff4f\uff50")
    (link,) = find_links(f"Sale {fullwidth} now", LINKS)
    assert (link.target, link.exact) == (SALE, False)
    assert repair_post(f"Sale {fullwidth} now", LINKS, 4096) == f"Sale {SALE} now"


@pytest.mark.parametrize(
    "text",
    [
        "Only 19.99/month, 2.500/Monat, pi is 3.14159 and v1.2.3",
        "On 12.05.2024 at 10.30, see page 3.4",
        "Data: 40% growth. Note: bring water. Tel: 06 12 34 56 78",
        "\u4eca\u65e5\u306f\u30bb\u30fc\u30eb\u3002\u307f\u3093\u306a\u3067\u8d70\u308d\u3046",
        "\u6b22\u8fce\u6765\u5230\u5546\u5e97\u3002\u5065\u5eb7\uff0c\u5feb\u4e50",
        "Time 12:30, ratio 3:1, [note] and [1, 2]",
        "Fin\u2026 \u00c0 bient\u00f4t\u2026",
    ],
)
def test_prices_dates_versions_and_cjk_full_stops_are_not_links(text: str) -> None:
    assert find_links(text, LINKS) == []
