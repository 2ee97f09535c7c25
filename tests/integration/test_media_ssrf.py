"""Media URLs cannot make the bot or its gateway fetch from internal hosts (SSRF).

Everything here runs over real HTTP on 127.0.0.1. Since loopback is itself refused by
default, a refusal is proven by a loopback server that saw no connection, a resolver
hook that saw the name, and an audit hook showing that no socket connected anywhere but
to the fake gateway. Addresses such as 169.254.169.254 are refused without any
connection attempt: the audit hook proves it.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engagequeue import (
    Payload,
    PermanentTransportError,
    Scheduler,
    SQLiteTaskStore,
    TaskStatus,
)
from engagequeue.transports import EvolutionTransport, UnsafeMediaURLError, WahaTransport
from fakes.evolution import FakeEvolution
from fakes.http import HttpServer, Request, Response
from fakes.waha import FakeWaha

GROUP = "120363012345678901@g.us"

_connects: list[list[Any]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect" and _connects:
        _connects[-1].append(args[1])


sys.addaudithook(_audit)  # audit hooks cannot be removed: it records only while a test asks


@pytest.fixture
def connects() -> Iterator[list[Any]]:
    """Every address a socket connected to during the test."""
    seen: list[Any] = []
    _connects.append(seen)
    yield seen
    _connects.remove(seen)


class Resolver:
    """A resolver hook: maps names to addresses without DNS, and records every lookup."""

    def __init__(self, names: dict[str, Sequence[str]]) -> None:
        self.names = names
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append(host)
        if host not in self.names:
            raise OSError(f"no such host in the test resolver: {host}")
        return self.names[host]


@pytest.fixture
async def media() -> AsyncIterator[HttpServer]:
    async def serve(request: Request) -> Response:
        return Response(200, b"", {"content-type": "image/png", "content-length": "1000"})

    async with HttpServer(serve) as server:
        yield server


def port_of(server: HttpServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def only_gateway(connects: list[Any], gateway_url: str) -> bool:
    port = int(gateway_url.rsplit(":", 1)[1])
    return all(address[:2] == ("127.0.0.1", port) for address in connects)


LITERALS = [
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f.1",
    "0x7f000001",
    "0177.0.0.1",
    "017700000001",
    "127.0.0.1.",
    "%31%32%37.0.0.1",
    "\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11",  # fullwidth
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:ffff:169.254.169.254]",
    "169.254.169.254",
    "0xa9.0xfe.0xa9.0xfe",
    "2852039166",
    "10.0.0.1",
    "10.1",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",
    "0.0.0.0",
    "0",
    "224.0.0.1",
    "255.255.255.255",
    "240.0.0.1",
    "[fe80::1]",
    "[fc00::1]",
    "[::]",
    "[64:ff9b::a9fe:a9fe]",
    "[2002:a9fe:a9fe::1]",
    "[ff02::1]",
    "1.2.3.4.5",
    "256.1",
]


@pytest.mark.parametrize("host", LITERALS)
async def test_a_non_public_ip_literal_in_any_spelling_is_refused_before_any_connection(
    host: str, connects: list[Any]
) -> None:
    resolver = Resolver({})
    async with FakeWaha() as waha:
        waha.add_session("main")
        async with WahaTransport(waha.url, api_key="test-key", resolver=resolver) as transport:
            with pytest.raises(UnsafeMediaURLError) as info:
                await transport.send("main", GROUP, Payload.image(f"http://{host}/cat.png"))
    assert isinstance(info.value, PermanentTransportError)
    assert "allow_private_media" in str(info.value) or "not a valid host" in str(info.value)
    assert resolver.calls == []  # a literal is never looked up
    assert connects == []  # nothing at all was connected to, not even the gateway
    assert waha.requests == []


@pytest.mark.parametrize(
    ("name", "addresses"),
    [
        ("media.test", ["127.0.0.1"]),
        ("metadata.test", ["169.254.169.254"]),
        ("intranet.test", ["10.1.2.3"]),
        ("mixed.test", ["93.184.216.34", "192.168.0.10"]),
        ("v6.test", ["::ffff:10.0.0.1"]),
        ("zone.test", ["fe80::1%eth0"]),
    ],
)
async def test_a_name_with_any_non_public_address_is_refused_before_any_connection(
    name: str, addresses: list[str], media: HttpServer, connects: list[Any]
) -> None:
    resolver = Resolver({name: addresses})
    async with FakeEvolution() as evolution:
        evolution.add_instance("shop")
        async with EvolutionTransport(evolution.url, api_key="test-key", resolver=resolver) as t:
            with pytest.raises(UnsafeMediaURLError, match="allow_private_media=False"):
                await t.send("shop", GROUP, Payload.image(f"http://{name}:{port_of(media)}/a.png"))
    assert resolver.calls == [name]
    assert media.connections == 0
    assert connects == []
    assert evolution.requests == []


async def test_the_check_holds_without_a_probe_since_the_gateway_fetches_the_url(
    media: HttpServer, connects: list[Any]
) -> None:
    resolver = Resolver({"media.test": ["127.0.0.1"]})
    async with FakeWaha() as waha:
        waha.add_session("main")
        async with WahaTransport(
            waha.url, api_key="test-key", probe_media=False, resolver=resolver
        ) as transport:
            with pytest.raises(UnsafeMediaURLError):
                await transport.send(
                    "main", GROUP, Payload.image(f"http://media.test:{port_of(media)}/a.png")
                )
    assert resolver.calls == ["media.test"]
    assert waha.sends() == []
    assert media.connections == 0
    assert connects == []


async def test_allow_private_media_reaches_the_loopback_media_server_through_the_resolver(
    media: HttpServer, connects: list[Any]
) -> None:
    resolver = Resolver({"media.test": ["127.0.0.1"]})
    url = f"http://media.test:{port_of(media)}/banner"
    async with FakeWaha() as waha:
        waha.add_session("main")
        async with WahaTransport(
            waha.url, api_key="test-key", allow_private_media=True, resolver=resolver
        ) as transport:
            await transport.send("main", GROUP, Payload.image(url))
    assert resolver.calls == ["media.test"]
    assert media.connections == 1
    [send] = waha.sends()
    assert send.json()["file"]["url"] == url  # the gateway gets the URL as given
    assert send.json()["file"]["mimetype"] == "image/png"  # learnt from the probe
    assert only_gateway([c for c in connects if c[1] != port_of(media)], waha.url)


async def test_the_probe_sends_the_host_name_it_checked_and_connects_to_the_checked_address(
    connects: list[Any],
) -> None:
    seen: list[dict[str, str]] = []

    async def serve(request: Request) -> Response:
        seen.append(request.headers)
        return Response(200, b"", {"content-type": "image/png"})

    async with HttpServer(serve) as server, FakeWaha() as waha:
        waha.add_session("main")
        resolver = Resolver({"cdn.test": ["127.0.0.1"]})
        async with WahaTransport(
            waha.url, api_key="test-key", allow_private_media=True, resolver=resolver
        ) as transport:
            await transport.send(
                "main", GROUP, Payload.image(f"http://cdn.test:{port_of(server)}/x")
            )
    assert [h["host"] for h in seen] == [f"cdn.test:{port_of(server)}"]
    assert ("127.0.0.1", port_of(server)) in [c[:2] for c in connects]


async def test_a_redirect_to_a_refused_host_fails_the_probe_without_following_it(
    connects: list[Any],
) -> None:
    hits: list[str] = []
    metadata_hits: list[str] = []

    async def metadata(request: Request) -> Response:
        metadata_hits.append(request.path)
        return Response(200, b"secret", {"content-type": "image/png"})

    async with HttpServer(metadata) as inner:

        async def redirector(request: Request) -> Response:
            hits.append(request.path)
            return Response(302, b"", {"location": f"http://internal.test:{port_of(inner)}/"})

        async with HttpServer(redirector) as outer, FakeWaha() as waha:
            waha.add_session("main")
            # The first hop is allowed by a resolver that calls it public; the hop's name
            # resolves to loopback, which is refused. No address here is ever non-loopback
            # in fact: the resolver only tells the guard what to check.
            names = {"public.test": ["93.184.216.34"], "internal.test": ["127.0.0.1"]}
            resolver = Resolver(names)
            async with WahaTransport(waha.url, api_key="test-key", resolver=resolver) as transport:
                # Pin the checked public name to the loopback redirector for the connection.
                transport._probe_client = _rerouting_client(port_of(outer))
                with pytest.raises(UnsafeMediaURLError, match="allow_private_media=False"):
                    await transport.send(
                        "main", GROUP, Payload.image(f"http://public.test:{port_of(outer)}/a.png")
                    )
    assert hits == ["/a.png"]
    assert metadata_hits == []
    assert resolver.calls == ["public.test", "internal.test"]
    assert inner.connections == 0
    assert waha.sends() == []
    assert all(c[0] == "127.0.0.1" for c in connects)


def _rerouting_client(port: int) -> Any:
    """An httpx client that sends whatever address it is given to 127.0.0.1:port."""
    import httpx

    class Reroute(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.AsyncHTTPTransport()

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            assert request.url.host == "93.184.216.34"  # the checked address, pinned
            request.url = request.url.copy_with(host="127.0.0.1", port=port)
            return await self.inner.handle_async_request(request)

        async def aclose(self) -> None:
            await self.inner.aclose()

    return httpx.AsyncClient(transport=Reroute(), follow_redirects=False)


async def test_a_refused_url_fails_the_task_at_once_naming_the_rule_not_the_target(
    tmp_path: Path, connects: list[Any]
) -> None:
    resolver = Resolver({})
    async with (
        SQLiteTaskStore(tmp_path / "ssrf.sqlite3") as store,
        FakeWaha() as waha,
    ):
        waha.add_session("main")
        await store.add_session("main")
        task = await store.schedule(
            "main",
            GROUP,
            Payload.image("http://169.254.169.254/latest/meta-data/"),
            datetime.now(UTC) - timedelta(seconds=1),
        )
        async with WahaTransport(waha.url, api_key="test-key", resolver=resolver) as transport:
            await Scheduler(store, transport).run_once()
        done = await store.get(task.id)
    assert done.status is TaskStatus.FAILED
    assert done.attempts == 1  # permanent: not retried
    assert done.last_error is not None
    assert "not globally routable" in done.last_error
    assert "allow_private_media" in done.last_error
    for leak in ("refused", "timed out", "200", "content-type", "Connect"):
        assert leak not in done.last_error.split("is refused:")[1]
    assert connects == []
    assert waha.requests == []
