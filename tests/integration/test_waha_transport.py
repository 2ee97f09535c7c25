"""WahaTransport against a fake WAHA: a real HTTP server on 127.0.0.1 that validates every
request against the committed OpenAPI extract and answers with WAHA's shapes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from engagequeue import (
    MessageTransport,
    Payload,
    PermanentTransportError,
    SessionDisconnectedError,
    Task,
    TransientTransportError,
)
from engagequeue._context import _CURRENT_TASK
from engagequeue.transports import (
    InvalidPostError,
    PartialSendError,
    SessionStatus,
    WahaTransport,
    stable_message_id,
)
from fakes import openapi
from fakes.http import HttpServer, Request, Response, loopback_resolver
from fakes.waha import FakeWaha, connection_closed_500

GROUP = "120363012345678901@g.us"


def _template(path: str) -> str:
    return re.sub(r"^/api/sessions/[^/]+$", "/api/sessions/{session}", path)


@pytest.fixture
async def waha() -> AsyncIterator[FakeWaha]:
    async with FakeWaha() as fake:
        fake.add_session("main")
        yield fake
    assert fake.violations == [], "requests or answers broke the WAHA OpenAPI document"
    documented = openapi.documented_operations("waha")
    for request in fake.requests:
        assert (request.method, _template(request.path)) in documented, request.path


@pytest.fixture
async def transport(waha: FakeWaha) -> AsyncIterator[WahaTransport]:
    async with WahaTransport(
        waha.url,
        allow_private_media=True,
        resolver=loopback_resolver,
        api_key="test-key",
        timeout=2.0,
        text_retry_delays=(0.0, 0.0),
    ) as t:
        yield t


def task(task_id: str = "task-1", attempts: int = 0) -> Task:
    now = datetime(2026, 7, 14, 9, 0, tzinfo=UTC)
    return Task(
        id=task_id,
        session_id="main",
        group_id=GROUP,
        payload=Payload.text("hello"),
        scheduled_at=now,
        status="processing",
        attempts=attempts,
        max_attempts=3,
        last_error=None,
        created_at=now,
        updated_at=now,
    )


async def test_it_is_a_message_transport(transport: WahaTransport) -> None:
    assert isinstance(transport, MessageTransport)


async def test_a_text_post_goes_to_send_text_with_the_key_and_returns_the_message_id(
    waha: FakeWaha, transport: WahaTransport
) -> None:
    receipt = await transport.send(
        "main", GROUP, Payload.text("Hello *group* https://shop.example")
    )
    [request] = waha.sends()
    assert request.path == "/api/sendText"
    assert request.headers["x-api-key"] == "test-key"
    assert request.json() == {
        "session": "main",
        "chatId": GROUP,
        "text": "Hello *group* https://shop.example",
        "linkPreview": True,
    }
    [delivered] = waha.delivered
    assert receipt.message_id == f"true_{GROUP}_{delivered.message_id}"
    assert receipt.raw is not None
    assert receipt.raw["ackName"] == "PENDING"


async def test_an_image_post_sends_the_file_reference_and_caption(
    waha: FakeWaha, transport: WahaTransport
) -> None:
    url = waha.add_media("promo.jpg", "image/jpeg", 300_000)
    await transport.send("main", GROUP, Payload.image(url, caption="New in store"))
    [request] = waha.sends()
    assert request.path == "/api/sendImage"
    assert request.json() == {
        "session": "main",
        "chatId": GROUP,
        "file": {"url": url, "mimetype": "image/jpeg", "filename": "promo.jpg"},
        "caption": "New in store",
    }


async def test_an_mp4_video_is_sent_as_is_and_another_format_is_converted_by_waha(
    waha: FakeWaha, transport: WahaTransport
) -> None:
    mp4 = waha.add_media("clip.mp4", "video/mp4", 3_000_000)
    mov = waha.add_media("clip.mov", "video/quicktime", 3_000_000)
    await transport.send("main", GROUP, Payload.video(mp4, caption="Watch"))
    await transport.send("main", GROUP, Payload.video(mov))
    first, second = (r.json() for r in waha.sends("sendVideo"))
    assert first["convert"] is False
    assert first["caption"] == "Watch"
    assert first["file"] == {"url": mp4, "mimetype": "video/mp4", "filename": "clip.mp4"}
    assert second["convert"] is True
    assert "caption" not in second


async def test_a_voice_note_is_ogg_opus_or_converted_by_waha(
    waha: FakeWaha, transport: WahaTransport
) -> None:
    opus = waha.add_media("note.opus", "audio/ogg", 40_000)
    mp3 = waha.add_media("note.mp3", "audio/mpeg", 40_000)
    await transport.send("main", GROUP, Payload.audio(opus))
    await transport.send("main", GROUP, Payload.audio(mp3))
    first, second = (r.json() for r in waha.sends("sendVoice"))
    assert first["file"] == {"url": opus, "mimetype": "audio/ogg; codecs=opus"}
    assert first["convert"] is False
    assert second["file"] == {"url": mp3, "mimetype": "audio/mpeg"}
    assert second["convert"] is True
    assert "caption" not in first


async def test_an_audio_posts_content_follows_the_voice_note_as_a_text_message(
    waha: FakeWaha, transport: WahaTransport
) -> None:
    url = waha.add_media("note.opus", "audio/ogg", 40_000)
    payload = Payload("audio", content="Listen and reply!", media_url=url)
    receipt = await transport.send("main", GROUP, payload)
    assert [d.kind for d in waha.delivered] == ["voice", "text"]
    assert waha.delivered[1].body["text"] == "Listen and reply!"
    assert receipt.message_id.endswith(waha.delivered[0].message_id)
    assert receipt.raw is not None
    assert receipt.raw["text_message_id"].endswith(waha.delivered[1].message_id)


async def test_when_the_text_after_a_voice_note_fails_the_voice_note_is_not_resent(
    waha: FakeWaha, transport: WahaTransport
) -> None:
    url = waha.add_media("note.opus", "audio/ogg", 40_000)
    payload = Payload("audio", content="Listen!", media_url=url)
    waha.delay_next(0)  # the voice note goes through
    waha.answer_next(500, {"statusCode": 500, "exception": {"message": "boom"}}, times=3)
    with pytest.raises(PartialSendError) as info:
        await transport.send("main", GROUP, payload)
    assert isinstance(info.value, PermanentTransportError)
    assert [d.kind for d in waha.delivered] == ["voice"]
    assert len(waha.sends("sendText")) == 3  # first try and two retries
    assert info.value.receipt.message_id.endswith(waha.delivered[0].message_id)


async def test_a_wrong_api_key_is_a_permanent_error_that_says_so(waha: FakeWaha) -> None:
    async with WahaTransport(
        waha.url, allow_private_media=True, resolver=loopback_resolver, api_key="wrong"
    ) as bad:
        with pytest.raises(PermanentTransportError, match="API key") as info:
            await bad.send("main", GROUP, Payload.text("hi"))
    assert "401" in str(info.value)
    assert waha.delivered == []


async def test_an_unknown_session_is_a_permanent_error(transport: WahaTransport) -> None:
    with pytest.raises(PermanentTransportError, match="no session 'ghost'") as info:
        await transport.send("ghost", GROUP, Payload.text("hi"))
    assert not isinstance(info.value, SessionDisconnectedError)


@pytest.mark.parametrize("status", ["STARTING", "SCAN_QR_CODE", "STOPPED", "FAILED"])
async def test_a_session_that_is_not_working_means_disconnected(
    waha: FakeWaha, transport: WahaTransport, status: str
) -> None:
    waha.sessions["main"] = status
    with pytest.raises(SessionDisconnectedError, match=status):
        await transport.send("main", GROUP, Payload.text("hi"))
    assert waha.delivered == []


async def test_a_500_connection_closed_means_the_session_dropped(
    waha: FakeWaha, transport: WahaTransport
) -> None:
    waha.answer_next(500, connection_closed_500())
    with pytest.raises(SessionDisconnectedError, match="Connection Closed"):
        await transport.send("main", GROUP, Payload.text("hi"))


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (429, {"statusCode": 429, "message": "ThrottlerException: Too Many Requests"}),
        (500, {"statusCode": 500, "exception": {"message": "Cannot read properties of undefined"}}),
        (502, {"message": "Bad Gateway"}),
        (503, {"message": "Service Unavailable"}),
    ],
)
async def test_rate_limits_and_server_errors_are_transient(
    waha: FakeWaha, transport: WahaTransport, status: int, body: dict[str, object]
) -> None:
    waha.answer_next(status, body)
    with pytest.raises(TransientTransportError, match=str(status)):
        await transport.send("main", GROUP, Payload.text("hi"))
    # The next send goes through: nothing about the error sticks.
    await transport.send("main", GROUP, Payload.text("hi again"))
    assert [d.body["text"] for d in waha.delivered] == ["hi again"]


async def test_a_bad_request_is_permanent(waha: FakeWaha, transport: WahaTransport) -> None:
    waha.answer_next(
        400, {"statusCode": 400, "message": ["chatId must be a string"], "error": "Bad Request"}
    )
    with pytest.raises(PermanentTransportError, match="chatId must be a string"):
        await transport.send("main", GROUP, Payload.text("hi"))


async def test_a_slow_answer_is_a_transient_timeout_that_says_it_may_have_been_sent(
    waha: FakeWaha,
) -> None:
    waha.delay_next(1.0)
    async with WahaTransport(
        waha.url,
        allow_private_media=True,
        resolver=loopback_resolver,
        api_key="test-key",
        timeout=0.2,
    ) as impatient:
        with pytest.raises(TransientTransportError, match="may still be delivered"):
            await impatient.send("main", GROUP, Payload.text("slow"))


async def test_a_slow_answer_within_the_timeout_is_a_success(
    waha: FakeWaha, transport: WahaTransport
) -> None:
    waha.delay_next(0.3)
    receipt = await transport.send("main", GROUP, Payload.text("large group"))
    assert receipt.message_id


async def test_a_dropped_connection_is_transient(waha: FakeWaha, transport: WahaTransport) -> None:
    waha.drop_next()
    with pytest.raises(TransientTransportError):
        await transport.send("main", GROUP, Payload.text("hi"))
    await transport.send("main", GROUP, Payload.text("hi"))
    assert len(waha.delivered) == 1


async def test_a_gateway_that_is_down_is_transient() -> None:
    async with HttpServer(_never) as server:
        url = server.url
    async with WahaTransport(url, timeout=1.0) as t:
        with pytest.raises(TransientTransportError, match="cannot reach WAHA"):
            await t.send("main", GROUP, Payload.text("hi"))


async def _never(request: Request) -> Response:
    return Response(500)


async def test_sends_reuse_one_pooled_connection(waha: FakeWaha, transport: WahaTransport) -> None:
    for n in range(5):
        await transport.send("main", GROUP, Payload.text(f"post {n}"))
    assert len(waha.delivered) == 5
    assert waha._server is not None
    assert waha._server.connections == 1


@pytest.mark.parametrize(
    ("name", "content_type", "size", "match"),
    [
        ("missing.jpg", None, 0, "answers 404"),
        ("huge.jpg", "image/jpeg", 6 * 1024 * 1024, "5 MB"),
        ("page.jpg", "text/html; charset=utf-8", 2_000, "text/html"),
    ],
)
async def test_a_bad_media_link_fails_fast_without_calling_the_gateway(
    waha: FakeWaha,
    transport: WahaTransport,
    name: str,
    content_type: str | None,
    size: int,
    match: str,
) -> None:
    url = waha.add_media(name, content_type, size) if content_type else f"{waha.url}/media/{name}"
    with pytest.raises(InvalidPostError, match=match) as info:
        await transport.send("main", GROUP, Payload.image(url))
    assert info.value.field == "payload.media_url"
    assert waha.sends() == []


async def test_a_format_whatsapp_cannot_send_fails_before_any_request(
    waha: FakeWaha, transport: WahaTransport
) -> None:
    with pytest.raises(InvalidPostError, match="image/gif"):
        await transport.send("main", GROUP, Payload.image("https://cdn.example/funny.gif"))
    with pytest.raises(InvalidPostError, match="group_id"):
        await transport.send("main", "not-a-chat", Payload.text("hi"))
    assert waha.requests == []


async def test_the_media_probe_never_carries_the_gateway_key(waha: FakeWaha) -> None:
    seen: list[dict[str, str]] = []

    async def media_host(request: Request) -> Response:
        seen.append(request.headers)
        return Response(200, b"", {"content-type": "image/png", "content-length": "1000"})

    async with (
        HttpServer(media_host) as host,
        WahaTransport(
            waha.url, allow_private_media=True, resolver=loopback_resolver, api_key="test-key"
        ) as t,
    ):
        await t.send("main", GROUP, Payload.image(f"{host.url}/banner"))
    assert seen
    assert all("x-api-key" not in headers for headers in seen)
    [request] = waha.sends()
    assert request.json()["file"]["mimetype"] == "image/png"
    assert request.json()["file"]["filename"] == "banner.png"


async def test_without_probing_an_untyped_url_needs_a_mimetype(waha: FakeWaha) -> None:
    async with WahaTransport(
        waha.url,
        allow_private_media=True,
        resolver=loopback_resolver,
        api_key="test-key",
        probe_media=False,
    ) as t:
        with pytest.raises(InvalidPostError, match="mimetype"):
            await t.send("main", GROUP, Payload.image("https://picsum.example/1024"))
        await t.send(
            "main",
            GROUP,
            Payload("image", media_url="https://picsum.example/1024", mimetype="image/jpeg"),
        )
    assert waha.sends()[0].json()["file"]["mimetype"] == "image/jpeg"


async def test_a_stable_message_id_is_passed_to_engines_that_accept_one() -> None:
    async with FakeWaha(engine="NOWEB") as waha:
        waha.add_session("main")
        async with WahaTransport(
            waha.url,
            allow_private_media=True,
            resolver=loopback_resolver,
            api_key="test-key",
            message_ids=True,
        ) as t:
            token = _CURRENT_TASK.set(task("task-42", attempts=0))
            try:
                first = await t.send("main", GROUP, Payload.text("hello"))
            finally:
                _CURRENT_TASK.reset(token)
            token = _CURRENT_TASK.set(task("task-42", attempts=1))
            try:
                retry = await t.send("main", GROUP, Payload.text("hello"))
            finally:
                _CURRENT_TASK.reset(token)
            outside = await t.send("main", GROUP, Payload.text("no task"))
        assert waha.violations == []
    expected = stable_message_id("task-42")
    assert [r.json().get("id") for r in waha.sends()] == [expected, expected, None]
    assert first.message_id == retry.message_id == expected
    assert outside.message_id != expected


async def test_no_message_id_is_sent_unless_enabled(
    waha: FakeWaha, transport: WahaTransport
) -> None:
    token = _CURRENT_TASK.set(task())
    try:
        await transport.send("main", GROUP, Payload.text("hello"))
    finally:
        _CURRENT_TASK.reset(token)
    assert "id" not in waha.sends()[0].json()


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("WORKING", SessionStatus.CONNECTED),
        ("SCAN_QR_CODE", SessionStatus.DISCONNECTED),
        ("STARTING", SessionStatus.DISCONNECTED),
        ("FAILED", SessionStatus.DISCONNECTED),
    ],
)
async def test_session_status_reads_get_sessions(
    waha: FakeWaha, transport: WahaTransport, status: str, expected: SessionStatus
) -> None:
    waha.sessions["main"] = status
    assert await transport.session_status("main") is expected
    assert waha.requests[-1].path == "/api/sessions/main"


async def test_session_status_of_an_unknown_session_is_disconnected(
    transport: WahaTransport,
) -> None:
    assert await transport.session_status("ghost") is SessionStatus.DISCONNECTED


async def test_session_status_with_a_wrong_key_raises(waha: FakeWaha) -> None:
    async with WahaTransport(
        waha.url, allow_private_media=True, resolver=loopback_resolver, api_key="wrong"
    ) as bad:
        with pytest.raises(PermanentTransportError, match="API key"):
            await bad.session_status("main")


async def test_session_status_of_an_unreachable_gateway_is_unknown(waha: FakeWaha) -> None:
    waha_url = waha.url
    async with HttpServer(_never) as server:
        url = server.url
    async with WahaTransport(url, timeout=1.0) as t:
        assert await t.session_status("main") is SessionStatus.UNKNOWN
    assert waha_url


async def test_session_names_are_escaped_in_paths(waha: FakeWaha, transport: WahaTransport) -> None:
    waha.add_session("shop/eu")
    assert await transport.session_status("shop/eu") is SessionStatus.CONNECTED
    assert waha.requests[-1].path == "/api/sessions/shop%2Feu"


async def test_closing_the_transport_closes_its_pool(waha: FakeWaha) -> None:
    t = WahaTransport(
        waha.url, allow_private_media=True, resolver=loopback_resolver, api_key="test-key"
    )
    async with t:
        await t.send("main", GROUP, Payload.text("hi"))
    with pytest.raises(RuntimeError):
        await t.send("main", GROUP, Payload.text("after close"))


def test_base_url_must_be_absolute() -> None:
    with pytest.raises(ValueError, match="base_url"):
        WahaTransport("localhost:3000")


async def test_an_httpx_mock_transport_can_stand_in_for_the_network() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={"id": "true_x@g.us_ABC"})

    async with WahaTransport("http://waha.test", http_transport=httpx.MockTransport(handler)) as t:
        receipt = await t.send("main", GROUP, Payload.text("hi"))
    assert receipt.message_id == "true_x@g.us_ABC"
