"""Link finding, checking and repair: the pure core of the composer's link guarantee."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engagequeue._links import (
    best_link,
    canonicalise,
    check_post,
    find_links,
    links_in,
    normalise_url,
    repair_post,
)
from link_oracle import LINKS, SALE, SHOES, answers, assert_follows_link_rules, link_sets

# --------------------------------------------------------------------------- finding


def test_normalise_url_ignores_scheme_and_host_case_default_port_and_trailing_slash() -> None:
    key = normalise_url(SALE)
    assert normalise_url("HTTPS://Shop.Example.COM:443/spring-sale/") == key
    assert normalise_url("https://shop.example.com/spring-sale") == key
    assert normalise_url("http://shop.example.com/spring-sale") != key
    assert normalise_url("https://shop.example.com:8443/spring-sale") != key
    assert normalise_url("https://shop.example.com/Spring-Sale") != key
    assert normalise_url("https://user:pw@shop.example.com/spring-sale") is None
    assert normalise_url("ftp://shop.example.com/spring-sale") is None


def test_normalise_url_tells_a_cyrillic_look_alike_host_from_the_real_one() -> None:
    look_alike = "https://sh\u043ep.example.com/spring-sale"  # Cyrillic o
    assert normalise_url(look_alike) is not None
    assert normalise_url(look_alike) != normalise_url(SALE)


@pytest.mark.parametrize(
    ("text", "raw", "kind"),
    [
        ("see https://evil.example/x now", "https://evil.example/x", "url"),
        ("see ftp://files.example/x now", "ftp://files.example/x", "url"),
        ("see www.evil.example now", "www.evil.example", "domain"),
        ("see evil.shop/deal now", "evil.shop/deal", "domain"),
        ("mail me@evil.com now", "me@evil.com", "email"),
        ("see sh\u043ep.example.com now", "sh\u043ep.example.com", "domain"),
        ("end.It was", "end.It", "domain"),
        ("Spring-www.evil.example", "www.evil.example", "domain"),
        ("(https://evil.example/x).", "https://evil.example/x", "url"),
        ("*https://evil.example/x*", "https://evil.example/x", "url"),
        ("[deal](https://evil.example/x)", "https://evil.example/x", "url"),
    ],
)
def test_find_links_finds_every_url_like_token(text: str, raw: str, kind: str) -> None:
    found = find_links(text, LINKS)
    assert [(f.raw, f.kind, f.target) for f in found] == [(raw, kind, None)]


@pytest.mark.parametrize("text", ["file.txt and node.js", "e.g. 3.14 a.m.", "v2.0.1 ok", "x.y"])
def test_find_links_leaves_dotted_words_without_a_real_tld_alone(text: str) -> None:
    assert find_links(text, LINKS) == []


def test_find_links_matches_profile_links_and_their_variants() -> None:
    text = f"a {SALE}. b HTTPS://SHOP.example.com/spring-sale/ c shop.example.com/spring-sale"
    found = find_links(text, LINKS)
    assert [f.target for f in found] == [SALE, SALE, SALE]
    assert [f.exact for f in found] == [True, False, False]
    assert found[0].raw == SALE  # the full stop is not part of it


def test_find_links_does_not_take_a_longer_url_for_a_profile_link() -> None:
    found = find_links(f"{SALE}x and {SALE}/more", LINKS)
    assert [f.target for f in found] == [None, None]


def test_canonicalise_writes_variants_exactly_as_the_profile_gives_them() -> None:
    text = "Go: HTTPS://Shop.Example.com:443/spring-sale/ now"
    assert canonicalise(text, LINKS) == f"Go: {SALE} now"
    assert links_in(canonicalise(text, LINKS), LINKS) == (SALE,)


# --------------------------------------------------------------------------- checking


def codes(text: str, links: tuple[str, ...] = LINKS, limit: int = 4096) -> list[str]:
    return [v.code for v in check_post(text, links, limit)]


def test_a_compliant_post_has_no_violations() -> None:
    text = f"*Spring sale!* 🌸\nUp to _40%_ off.\n👉 {SALE}\nShoes: {SHOES}."
    assert check_post(text, LINKS, 4096) == ()


def test_a_link_may_be_followed_by_punctuation_then_whitespace_or_the_end() -> None:
    assert codes(f"Go to {SALE}. Then run!") == []
    assert codes(f"Go to {SALE}!") == []
    assert codes(f"Go to {SALE}.Then run") == ["glued_link"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Sale *{SALE}*", ["glued_link", "glued_link"]),
        (f"Sale _{SALE}_", ["glued_link", "glued_link"]),
        (f"Sale ~{SALE}~", ["glued_link", "glued_link"]),
        (f'Sale "{SALE}"', ["glued_link", "glued_link"]),
        (f"Sale ({SALE})", ["glued_link", "glued_link"]),
        (f"Sale <{SALE}>", ["glued_link", "glued_link"]),
        (f"Sale:{SALE}", ["glued_link"]),
        (f"Sale {SALE}🎉", ["glued_link"]),
        (f"[Sale]({SALE})", ["markdown_link", "glued_link", "glued_link"]),
    ],
)
def test_anything_glued_to_a_link_is_a_violation(text: str, expected: list[str]) -> None:
    assert codes(text) == expected


def test_foreign_links_emails_and_missing_links_are_violations() -> None:
    assert codes("Great sale at https://evil.example/x") == ["foreign_link", "missing_link"]
    assert codes(f"{SALE} or mail deals@shop.example.com") == ["foreign_link"]
    assert codes("no link at all") == ["missing_link"]
    assert codes(f"{SALE} via https://sh\u043ep.example.com/spring-sale") == ["foreign_link"]


def test_a_group_without_links_allows_no_url_at_all() -> None:
    assert codes("A calm post.", ()) == []
    assert codes(f"A post {SALE}", ()) == ["foreign_link"]
    assert codes("A post on www.example.org", ()) == ["foreign_link"]


def test_whatsapp_formatting_and_length_are_checked() -> None:
    assert codes(f"# Title\n{SALE}") == ["heading"]
    assert codes(f"**big** {SALE}") == ["double_emphasis"]
    assert codes(f"| a | b |\n|---|---|\n| 1 | 2 |\n{SALE}") == ["table"]
    assert codes(f"{'x' * 1000}\n{SALE}", limit=1024) == ["too_long"]
    assert codes("   ") == ["empty"]
    assert codes(f"\u202e{SALE}") == ["glued_link", "bidi_control"]


def test_violation_messages_name_the_offending_link_and_the_allowed_ones() -> None:
    (foreign, missing) = check_post("Buy at https://evil.example/x", LINKS, 4096)
    assert "https://evil.example/x" in foreign.message
    assert SALE in foreign.message
    assert SALE in missing.message
    assert SHOES in missing.message


# --------------------------------------------------------------------------- repair


@pytest.mark.parametrize(
    ("answer", "repaired"),
    [
        (f"Spring sale! *{SALE}*", f"Spring sale! {SALE}"),
        (f"*Shop now: {SALE}*", f"*Shop now:* {SALE}"),
        (f"See [our sale]({SALE}) today", f"See our sale {SALE} today"),
        (f"({SALE})", SALE),
        (f"Go to {SALE}.Next time!", f"Go to {SALE}. Next time!"),
        ("Go to HTTPS://Shop.Example.com/spring-sale/ now.", f"Go to {SALE} now."),
        ("See [our sale](https://evil.example/x) today", f"See our sale today\n\n{SALE}"),
        ("Buy: https://evil.example/x", f"Buy:\n\n{SALE}"),
        ("# Sale\n**Big** deals", f"*Sale*\n*Big* deals\n\n{SALE}"),
    ],
)
def test_repair_post(answer: str, repaired: str) -> None:
    assert repair_post(answer, LINKS, 4096) == repaired


def test_repair_appends_the_link_that_best_fits_the_post() -> None:
    text = repair_post("New trail shoes are in!", LINKS, 4096)
    assert text == f"New trail shoes are in!\n\n{SHOES}"
    titled = repair_post("New arrivals", LINKS, 4096, titles={SALE: "New arrivals"})
    assert titled.endswith(f"\n\n{SALE}")


def test_best_link_prefers_the_first_link_on_a_tie() -> None:
    assert best_link(LINKS, "nothing in common") == SALE


def test_repair_shortens_an_over_long_post_without_cutting_a_link() -> None:
    answer = "word " * 300 + SALE + " end"
    text = repair_post(answer, LINKS, 1024)
    assert len(text) <= 1024
    assert links_in(text, LINKS) == (SALE,)
    assert check_post(text, LINKS, 1024) == ()


def test_repair_removes_every_url_when_the_group_has_no_links() -> None:
    text = repair_post(f"Sale at {SALE} and www.evil.example!", (), 4096)
    assert text == "Sale at and!"
    assert check_post(text, (), 4096) == ()


def test_repair_gives_an_empty_text_when_nothing_usable_is_left_without_links() -> None:
    assert repair_post("https://evil.example/x", (), 4096) == ""


# --------------------------------------------------------------------------- properties


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer=answers, links=link_sets, limit=st.sampled_from([4096, 1024, 120]))
def test_repair_always_yields_a_post_that_follows_the_link_rules(
    answer: str, links: tuple[str, ...], limit: int
) -> None:
    text = repair_post(answer, links, limit)
    if not links and not text:
        return  # nothing usable left: the composer raises CompositionError
    assert check_post(text, links, limit) == ()
    assert_follows_link_rules(text, links, limit)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer=answers, links=link_sets)
def test_whatever_the_checker_accepts_follows_the_link_rules(
    answer: str, links: tuple[str, ...]
) -> None:
    text = canonicalise(answer, links)
    if check_post(text, links, 4096) == ():
        assert_follows_link_rules(text, links, 4096)


HOSTILE = [
    "a." * 16000,
    "ab.cd" * 6000,
    "a@b." * 8000,
    "https://" * 4000,
    "https://x.com/" + "." * 32000,
    "www." * 8000,
    "a+" * 16000 + "@",
    "[a](b" + " " * 32000,
    "[a](" * 8000,
    f"{SALE} " * 800,
    "|" + " " * 32000 + "x",
    "\n".join(["| a | b |", "|" + " " * 32000 + "---"] * 2),
    "**a" * 10000,
]


@pytest.mark.timeout(20)
def test_hostile_answers_are_checked_and_repaired_in_linear_time() -> None:
    """Each of these took seconds or more with a quadratic scan."""
    for text in HOSTILE:
        find_links(text, LINKS)
        check_post(text, LINKS, 4096)
        repaired = repair_post(text, LINKS, 4096)
        assert check_post(repaired, LINKS, 4096) == ()
