"""Media checks made before any gateway call (pure functions)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engagequeue import Payload, PermanentTransportError, ValidationError
from engagequeue.transports import InvalidPostError, stable_message_id
from engagequeue.transports._base import message_id_of
from engagequeue.transports._media import (
    MAX_MEDIA_BYTES,
    apply_probe,
    check_chat_id,
    check_media,
    check_text,
    is_voice_native,
)

MB = 1024 * 1024


@pytest.mark.parametrize(
    ("payload", "mimetype", "filename"),
    [
        (Payload.image("https://cdn.example/a/photo.JPG"), "image/jpeg", "photo.JPG"),
        (Payload.image("https://cdn.example/a/b.png?x=1"), "image/png", "b.png"),
        (Payload.video("https://cdn.example/clip.mp4"), "video/mp4", "clip.mp4"),
        (Payload.audio("https://cdn.example/voice.opus"), "audio/ogg; codecs=opus", "voice.opus"),
        (Payload.audio("https://cdn.example/talk%20one.mp3"), "audio/mpeg", "talk one.mp3"),
    ],
)
def test_mimetype_and_filename_are_inferred_from_the_url(
    payload: Payload, mimetype: str, filename: str
) -> None:
    media = check_media(payload, can_convert=True, require_mimetype=True)
    assert media.mimetype == mimetype
    assert media.filename == filename


def test_a_given_mimetype_wins_over_the_extension_and_names_the_file() -> None:
    payload = Payload("image", media_url="https://cdn.example/render", mimetype="image/png")
    media = check_media(payload, can_convert=False, require_mimetype=True)
    assert media.mimetype == "image/png"
    assert media.filename == "render.png"


def test_an_image_in_a_format_whatsapp_cannot_show_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidPostError, match="image/gif") as info:
        check_media(
            Payload.image("https://cdn.example/x.gif"), can_convert=True, require_mimetype=True
        )
    assert info.value.field == "payload.mimetype"
    assert "image/jpeg" in str(info.value)


def test_an_unknown_file_type_without_mimetype_is_refused_when_no_probe_will_tell() -> None:
    payload = Payload.image("https://picsum.example/1024")
    with pytest.raises(InvalidPostError, match=r"give payload\.mimetype"):
        check_media(payload, can_convert=False, require_mimetype=True)
    media = check_media(payload, can_convert=False, require_mimetype=False)
    assert media.mimetype is None


def test_a_video_that_needs_converting_passes_only_where_the_gateway_converts() -> None:
    payload = Payload.video("https://cdn.example/clip.webm")
    assert check_media(payload, can_convert=True, require_mimetype=True).needs_conversion
    with pytest.raises(InvalidPostError, match="does not convert"):
        check_media(payload, can_convert=False, require_mimetype=True)


@pytest.mark.parametrize(
    ("url", "mimetype", "converts"),
    [
        ("https://cdn.example/v.opus", None, False),
        ("https://cdn.example/v.ogg", "audio/ogg; codecs=opus", False),
        ("https://cdn.example/v.ogg", None, True),  # plain OGG may be Vorbis
        ("https://cdn.example/v.mp3", None, True),
        ("https://cdn.example/v.m4a", None, True),
    ],
)
def test_only_ogg_opus_is_sent_as_a_voice_note_without_conversion(
    url: str, mimetype: str | None, converts: bool
) -> None:
    payload = Payload("audio", media_url=url, mimetype=mimetype)
    assert (
        check_media(payload, can_convert=True, require_mimetype=True).needs_conversion is converts
    )


def test_a_media_type_mismatch_between_post_and_file_is_refused() -> None:
    with pytest.raises(InvalidPostError, match="which is not an audio"):
        check_media(
            Payload.audio("https://cdn.example/clip.mp4"), can_convert=True, require_mimetype=True
        )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("audio/ogg; codecs=opus", True),
        ("Audio/OGG;codecs=opus", True),
        ('audio/ogg; codecs="opus"', True),
        ("audio/opus", True),
        ("audio/ogg", False),
        ("audio/mpeg", False),
        (None, False),
    ],
)
def test_voice_native_formats(value: str | None, expected: bool) -> None:
    assert is_voice_native(value) is expected


def test_probe_refuses_a_file_over_the_size_cap() -> None:
    media = check_media(
        Payload.image("https://cdn.example/big.jpg"), can_convert=False, require_mimetype=False
    )
    cap = MAX_MEDIA_BYTES[media.media_type]
    assert apply_probe(media, content_type="image/jpeg", content_length=cap, can_convert=False)
    with pytest.raises(InvalidPostError, match=r"5 MB"):
        apply_probe(media, content_type="image/jpeg", content_length=cap + 1, can_convert=False)


def test_probe_refuses_a_link_to_a_web_page_instead_of_the_file() -> None:
    media = check_media(
        Payload.video("https://cdn.example/watch.mp4"), can_convert=True, require_mimetype=False
    )
    with pytest.raises(InvalidPostError, match="text/html"):
        apply_probe(
            media, content_type="text/html; charset=utf-8", content_length=900, can_convert=True
        )


def test_probe_fills_in_a_mimetype_the_url_did_not_tell() -> None:
    media = check_media(
        Payload.image("https://picsum.example/1024"), can_convert=False, require_mimetype=False
    )
    done = apply_probe(media, content_type="image/jpeg", content_length=2 * MB, can_convert=False)
    assert done.mimetype == "image/jpeg"
    assert done.filename == "1024.jpg"
    with pytest.raises(InvalidPostError, match="does not say"):
        apply_probe(
            media, content_type="application/octet-stream", content_length=None, can_convert=False
        )


def test_chat_ids_must_look_like_whatsapp_ids() -> None:
    assert check_chat_id("120363012345678901@g.us") == "120363012345678901@g.us"
    for bad in ["120363012345678901", "@g.us", "a b@g.us", "x/../y@g.us", ""]:
        with pytest.raises(InvalidPostError) as info:
            check_chat_id(bad)
        assert info.value.field == "group_id"


def test_text_over_whatsapps_limit_is_refused() -> None:
    assert check_text("x" * 4096) == "x" * 4096
    with pytest.raises(InvalidPostError, match="4096"):
        check_text("x" * 4097)


def test_invalid_post_is_both_a_permanent_transport_error_and_a_validation_error() -> None:
    error = InvalidPostError("bad", field="payload.media_url")
    assert isinstance(error, PermanentTransportError)
    assert isinstance(error, ValidationError)
    assert error.field == "payload.media_url"


@given(task_id=st.text(min_size=1, max_size=80), part=st.sampled_from(["", "text"]))
def test_stable_message_ids_are_deterministic_and_shaped_like_whatsapp_ids(
    task_id: str, part: str
) -> None:
    first = stable_message_id(task_id, part)
    assert first == stable_message_id(task_id, part)
    assert re.fullmatch(r"3EB0[0-9A-F]{18}", first)
    assert first != stable_message_id(task_id + "x", part)
    assert stable_message_id(task_id, "") != stable_message_id(task_id, "text")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"id": "true_1@g.us_3EB0AA"}, "true_1@g.us_3EB0AA"),
        ({"id": {"fromMe": True, "_serialized": "true_1@g.us_3EB0BB"}}, "true_1@g.us_3EB0BB"),
        ({"key": {"remoteJid": "1@g.us", "fromMe": True, "id": "BAE5CC"}}, "BAE5CC"),
        ({"status": "PENDING"}, None),
    ],
)
def test_the_message_id_is_read_from_every_engines_answer_shape(
    body: dict[str, object], expected: str | None
) -> None:
    assert message_id_of(body) == expected
