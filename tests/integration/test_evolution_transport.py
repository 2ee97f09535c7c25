"""EvolutionTransport against a fake Evolution API: a real HTTP server on 127.0.0.1 that
validates every request against the committed OpenAPI extract (v2.1.1)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from engagequeue import (
    MessageTransport,
    Payload,
    PermanentTransportError,
    SessionDisconnectedError,
    TransientTransportError,
)
from engagequeue.transports import (
    EvolutionTransport,
    InvalidPostError,
    PartialSendError,
    SessionStatus,
)
from fakes import openapi
from fakes.evolution import FakeEvolution, connection_closed_500
from fakes.http import HttpServer, Request, Response, loopback_resolver

GROUP = "120363012345678901@g.us"


def _template(path: str) -> str:
    path = re.sub(r"^/message/(\w+)/[^/]+$", r"/message/\1/{instance}", path)
    return re.sub(
        r"^/instance/connectionState/[^/]+$", "/instance/connectionState/{instance}", path
    )


@pytest.fixture
async def evolution() -> AsyncIterator[FakeEvolution]:
    async with FakeEvolution() as fake:
        fake.add_instance("shop")
        yield fake
    assert fake.violations == [], "requests or answers broke the Evolution OpenAPI document"
    documented = openapi.documented_operations("evolution")
    for request in fake.requests:
        assert (request.method, _template(request.path)) in documented, request.path


@pytest.fixture
async def transport(evolution: FakeEvolution) -> AsyncIterator[EvolutionTransport]:
    async with EvolutionTransport(
        evolution.url,
        allow_private_media=True,
        resolver=loopback_resolver,
        api_key="test-key",
        timeout=2.0,
        text_retry_delays=(0.0,),
    ) as t:
        yield t


async def test_it_is_a_message_transport(transport: EvolutionTransport) -> None:
    assert isinstance(transport, MessageTransport)


async def test_a_text_post_goes_to_send_text_with_the_apikey_header(
    evolution: FakeEvolution, transport: EvolutionTransport
) -> None:
    receipt = await transport.send("shop", GROUP, Payload.text("Flash sale https://shop.example"))
    [request] = evolution.sends()
    assert request.path == "/message/sendText/shop"
    assert request.headers["apikey"] == "test-key"
    assert request.json() == {
        "number": GROUP,
        "text": "Flash sale https://shop.example",
        "linkPreview": True,
    }
    assert receipt.message_id == evolution.delivered[0].message_id
    assert receipt.raw is not None
    assert receipt.raw["status"] == "PENDING"


async def test_presence_delay_is_sent_as_evolutions_delay(evolution: FakeEvolution) -> None:
    async with EvolutionTransport(
        evolution.url,
        allow_private_media=True,
        resolver=loopback_resolver,
        api_key="test-key",
        presence_delay_ms=1200,
    ) as t:
        await t.send("shop", GROUP, Payload.text("typing first"))
    assert evolution.sends()[0].json()["delay"] == 1200


@pytest.mark.parametrize(
    ("name", "content_type", "factory", "mediatype"),
    [
        ("promo.png", "image/png", Payload.image, "image"),
        ("clip.mp4", "video/mp4", Payload.video, "video"),
    ],
)
async def test_images_and_videos_go_to_send_media(
    evolution: FakeEvolution,
    transport: EvolutionTransport,
    name: str,
    content_type: str,
    factory: object,
    mediatype: str,
) -> None:
    url = evolution.add_media(name, content_type, 200_000)
    payload = factory(url, "Caption here")  # type: ignore[operator]
    receipt = await transport.send("shop", GROUP, payload)
    [request] = evolution.sends()
    assert request.path == "/message/sendMedia/shop"
    assert request.json() == {
        "number": GROUP,
        "mediatype": mediatype,
        "mimetype": content_type,
        "caption": "Caption here",
        "media": url,
        "fileName": name,
    }
    assert receipt.message_id == evolution.delivered[0].message_id


async def test_media_without_caption_still_sends_the_documented_required_fields(
    evolution: FakeEvolution, transport: EvolutionTransport
) -> None:
    url = evolution.add_media("promo.jpg", "image/jpeg")
    await transport.send("shop", GROUP, Payload.image(url))
    body = evolution.sends()[0].json()
    assert body["caption"] == ""
    assert body["fileName"] == "promo.jpg"


async def test_a_video_evolution_cannot_convert_fails_before_any_request(
    evolution: FakeEvolution, transport: EvolutionTransport
) -> None:
    with pytest.raises(InvalidPostError, match="does not convert"):
        await transport.send("shop", GROUP, Payload.video("https://cdn.example/clip.webm"))
    assert evolution.requests == []


async def test_audio_is_sent_as_a_converted_voice_note_then_its_text(
    evolution: FakeEvolution, transport: EvolutionTransport
) -> None:
    url = evolution.add_media("note.mp3", "audio/mpeg", 50_000)
    receipt = await transport.send(
        "shop", GROUP, Payload("audio", content="Reply with your size", media_url=url)
    )
    voice, text = evolution.sends()
    assert voice.path == "/message/sendWhatsAppAudio/shop"
    assert voice.json() == {"number": GROUP, "audio": url, "encoding": True}
    assert text.json()["text"] == "Reply with your size"
    assert [d.kind for d in evolution.delivered] == ["voice", "text"]
    assert receipt.message_id == evolution.delivered[0].message_id


async def test_a_voice_note_whose_text_meets_a_closed_connection_is_a_partial_send(
    evolution: FakeEvolution, transport: EvolutionTransport
) -> None:
    url = evolution.add_media("note.ogg", "audio/ogg", 50_000)
    evolution.delay_next(0)
    evolution.answer_next(
        400,
        {
            "status": 400,
            "error": "Bad Request",
            "response": {"message": ["Error: Connection Closed"]},
        },
    )
    with pytest.raises(PartialSendError, match="voice note was sent"):
        await transport.send("shop", GROUP, Payload("audio", content="hi", media_url=url))
    assert [d.kind for d in evolution.delivered] == ["voice"]


async def test_a_wrong_api_key_is_a_permanent_error_that_says_so(evolution: FakeEvolution) -> None:
    async with EvolutionTransport(
        evolution.url, allow_private_media=True, resolver=loopback_resolver, api_key="wrong"
    ) as bad:
        with pytest.raises(PermanentTransportError, match="API key"):
            await bad.send("shop", GROUP, Payload.text("hi"))


async def test_the_instance_token_is_accepted_as_key(evolution: FakeEvolution) -> None:
    async with EvolutionTransport(
        evolution.url,
        allow_private_media=True,
        resolver=loopback_resolver,
        api_key="instance-token",
    ) as t:
        await t.send("shop", GROUP, Payload.text("hi"))
    assert len(evolution.delivered) == 1


async def test_an_unknown_instance_is_a_permanent_error(transport: EvolutionTransport) -> None:
    with pytest.raises(PermanentTransportError, match="no instance 'ghost'") as info:
        await transport.send("ghost", GROUP, Payload.text("hi"))
    assert not isinstance(info.value, SessionDisconnectedError)


@pytest.mark.parametrize("state", ["close", "connecting"])
async def test_an_instance_that_is_not_open_means_disconnected(
    evolution: FakeEvolution, transport: EvolutionTransport, state: str
) -> None:
    evolution.instances["shop"] = state
    with pytest.raises(SessionDisconnectedError, match="Connection Closed"):
        await transport.send("shop", GROUP, Payload.text("hi"))
    assert evolution.delivered == []


async def test_a_500_connection_closed_means_the_session_dropped(
    evolution: FakeEvolution, transport: EvolutionTransport
) -> None:
    evolution.answer_next(500, connection_closed_500())
    with pytest.raises(SessionDisconnectedError):
        await transport.send("shop", GROUP, Payload.text("hi"))


async def test_an_answer_reporting_a_state_other_than_open_means_disconnected(
    evolution: FakeEvolution, transport: EvolutionTransport
) -> None:
    evolution.answer_next(400, {"instance": {"instanceName": "shop", "state": "close"}})
    with pytest.raises(SessionDisconnectedError, match="'close'"):
        await transport.send("shop", GROUP, Payload.text("hi"))


async def test_a_chat_that_does_not_exist_is_permanent(
    evolution: FakeEvolution, transport: EvolutionTransport
) -> None:
    evolution.answer_next(
        400,
        {
            "status": 400,
            "error": "Bad Request",
            "response": {"message": [{"exists": False, "jid": GROUP, "number": GROUP}]},
        },
    )
    with pytest.raises(PermanentTransportError, match="chat does not exist"):
        await transport.send("shop", GROUP, Payload.text("hi"))


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_rate_limits_and_server_errors_are_transient(
    evolution: FakeEvolution, transport: EvolutionTransport, status: int
) -> None:
    evolution.answer_next(
        status, {"status": status, "error": "Oops", "response": {"message": ["try later"]}}
    )
    with pytest.raises(TransientTransportError, match=str(status)):
        await transport.send("shop", GROUP, Payload.text("hi"))


async def test_slow_answers_and_dropped_connections_are_transient(
    evolution: FakeEvolution,
) -> None:
    async with EvolutionTransport(
        evolution.url,
        allow_private_media=True,
        resolver=loopback_resolver,
        api_key="test-key",
        timeout=0.2,
    ) as t:
        evolution.delay_next(1.0)
        with pytest.raises(TransientTransportError, match="in time"):
            await t.send("shop", GROUP, Payload.text("slow"))
        evolution.drop_next()
        with pytest.raises(TransientTransportError):
            await t.send("shop", GROUP, Payload.text("dropped"))


async def test_a_media_link_that_is_gone_fails_fast(
    evolution: FakeEvolution, transport: EvolutionTransport
) -> None:
    with pytest.raises(InvalidPostError, match="404"):
        await transport.send("shop", GROUP, Payload.image(f"{evolution.url}/media/gone.jpg"))
    assert evolution.sends() == []


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("open", SessionStatus.CONNECTED),
        ("connecting", SessionStatus.DISCONNECTED),
        ("close", SessionStatus.DISCONNECTED),
    ],
)
async def test_session_status_reads_the_connection_state(
    evolution: FakeEvolution, transport: EvolutionTransport, state: str, expected: SessionStatus
) -> None:
    evolution.instances["shop"] = state
    assert await transport.session_status("shop") is expected
    assert evolution.requests[-1].path == "/instance/connectionState/shop"


async def test_session_status_of_unknown_and_unreachable_instances(
    transport: EvolutionTransport,
) -> None:
    assert await transport.session_status("ghost") is SessionStatus.DISCONNECTED

    async def refuse(request: Request) -> Response:
        return Response(500)

    async with HttpServer(refuse) as server:
        url = server.url
    async with EvolutionTransport(url, timeout=1.0) as down:
        assert await down.session_status("shop") is SessionStatus.UNKNOWN


async def test_session_status_with_a_wrong_key_raises(evolution: FakeEvolution) -> None:
    async with EvolutionTransport(
        evolution.url, allow_private_media=True, resolver=loopback_resolver, api_key="wrong"
    ) as bad:
        with pytest.raises(PermanentTransportError, match="API key"):
            await bad.session_status("shop")
