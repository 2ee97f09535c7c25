"""IP literals in every spelling parsers accept, and which addresses are not public."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engagequeue._hosts import ip_of_host, normalise_host, refusal_of


def _spell(value: int, parts: int, style: str) -> str:
    """``value`` as a WHATWG/inet_aton IPv4 host of 1-4 parts in decimal, hex or octal."""
    octets = value.to_bytes(4, "big")
    numbers = [*octets[: parts - 1], int.from_bytes(octets[parts - 1 :], "big")]
    render = {"dec": str, "hex": hex, "oct": lambda n: "0" + format(n, "o")}[style]
    return ".".join(render(n) for n in numbers)


@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 4),
    st.sampled_from(["dec", "hex", "oct"]),
    st.booleans(),
)
def test_every_spelling_of_an_ipv4_address_reads_as_that_address(
    value: int, parts: int, style: str, trailing_dot: bool
) -> None:
    host = _spell(value, parts, style) + ("." if trailing_dot else "")
    assert ip_of_host(host) == ipaddress.IPv4Address(value)
    if not trailing_dot:  # the C resolver agrees (inet_aton), so getaddrinfo would too
        assert socket.inet_aton(host) == value.to_bytes(4, "big")


@pytest.mark.parametrize(
    ("host", "rule"),
    [
        ("127.1", "loopback"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("169.254.169.254", "link-local"),
        ("[64:ff9b::a9fe:a9fe]", "link-local"),
        ("[2002:0a00:0001::]", "private"),
        ("100.64.1.1", "shared"),
        ("224.0.0.251", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("[::]", "unspecified"),
        ("192.0.2.1", "private"),
    ],
)
def test_non_public_addresses_are_named_by_the_rule_that_refuses_them(host: str, rule: str) -> None:
    address = ip_of_host(host)
    assert address is not None
    assert refusal_of(address) == rule


@pytest.mark.parametrize("host", ["93.184.216.34", "[2606:4700:4700::1111]", "8.8.8.8"])
def test_public_addresses_are_not_refused(host: str) -> None:
    address = ip_of_host(host)
    assert address is not None
    assert refusal_of(address) is None


@pytest.mark.parametrize("host", ["example.com", "cdn.example", "1a.example", "xn--e1afmkfd.test"])
def test_domain_names_are_not_ip_literals(host: str) -> None:
    assert ip_of_host(host) is None


@pytest.mark.parametrize("host", ["1.2.3.4.5", "256.1.1.1", "1.2.3.4.0x1", "1.2.3.099"])
def test_a_host_that_ends_in_a_number_but_is_no_address_is_an_error(host: str) -> None:
    with pytest.raises(ValueError, match="not a valid"):
        ip_of_host(host)


def test_fullwidth_and_ideographic_forms_normalise_to_ascii() -> None:
    assert normalise_host("\uff45\uff56\uff49\uff4c\uff0ecom") == "evil.com"
    assert normalise_host("evil\u3002com.") == "evil.com"
    assert ip_of_host("\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11") == (
        ipaddress.IPv4Address("127.0.0.1")
    )
