"""Payload rules, instants and the value types: pure code, no I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import attrs
import pendulum
import pytest

from engagequeue import (
    GroupProfile,
    MediaType,
    Page,
    Payload,
    ProductLink,
    TaskConflict,
    TaskStatus,
    ValidationError,
)
from engagequeue._times import from_micros, isoformat, parse_instant, to_micros

# -- payloads ---------------------------------------------------------------------------


def test_text_payload_keeps_its_body() -> None:
    payload = Payload.text("*Hello* group")
    assert payload.media_type is MediaType.TEXT
    assert payload.content == "*Hello* group"
    assert payload.media_url is None


@pytest.mark.parametrize("factory", [Payload.image, Payload.video])
def test_media_payloads_take_a_url_and_an_optional_caption(factory) -> None:  # type: ignore[no-untyped-def]
    with_caption = factory("https://cdn.example.com/a.mp4", caption="look")
    assert with_caption.media_url == "https://cdn.example.com/a.mp4"
    assert with_caption.content == "look"
    assert factory("http://cdn.example.com/a").content is None


def test_audio_payload() -> None:
    payload = Payload.audio("https://cdn.example.com/voice.ogg")
    assert payload.media_type is MediaType.AUDIO
    assert payload.content is None


def test_media_type_accepts_its_string_values() -> None:
    assert Payload("IMAGE", media_url="https://x.example/a.png").media_type is MediaType.IMAGE  # type: ignore[arg-type]
    assert [m.value for m in MediaType] == ["text", "image", "video", "audio"]
    assert [s.value for s in TaskStatus] == [
        "pending",
        "processing",
        "completed",
        "failed",
        "cancelled",
    ]


@pytest.mark.parametrize(
    ("build", "field", "words"),
    [
        (lambda: Payload.text(""), "payload.content", "blank"),
        (lambda: Payload.text("   \n\t"), "payload.content", "blank"),
        (lambda: Payload.text(None), "payload.content", "required"),  # type: ignore[arg-type]
        (lambda: Payload.text("x" * 4097), "payload.content", "4096"),
        (lambda: Payload.text("nul\x00byte"), "payload.content", "NUL"),
        (lambda: Payload(MediaType.TEXT, "hi", media_url="https://a.example/x.png"), "payload.media_url", "not allowed"),
        (lambda: Payload("sticker", media_url="https://a.example/x"), "payload.media_type", "sticker"),  # type: ignore[arg-type]
        (lambda: Payload(None), "payload.media_type", "one of"),  # type: ignore[arg-type]
        (lambda: Payload(MediaType.IMAGE), "payload.media_url", "required"),
        (lambda: Payload.image("cdn.example.com/a.jpg"), "payload.media_url", "scheme"),
        (lambda: Payload.image("/relative/a.jpg"), "payload.media_url", "scheme"),
        (lambda: Payload.image("file:///etc/passwd"), "payload.media_url", "file"),
        (lambda: Payload.image("data:image/png;base64,AAAA"), "payload.media_url", "data"),
        (lambda: Payload.image("javascript:alert(1)"), "payload.media_url", "javascript"),
        (lambda: Payload.image("ftp://example.com/a.jpg"), "payload.media_url", "ftp"),
        (lambda: Payload.image("https://user:pw@example.com/a.jpg"), "payload.media_url", "credentials"),
        (lambda: Payload.image("https://user@example.com/a.jpg"), "payload.media_url", "credentials"),
        (lambda: Payload.image("https://exa mple.com/a.jpg"), "payload.media_url", "whitespace"),
        (lambda: Payload.image("https:///a.jpg"), "payload.media_url", "host"),
        (lambda: Payload.image("https://example.com:99999/a.jpg"), "payload.media_url", "valid"),
        (lambda: Payload.image("https://example.com/" + "a" * 2100), "payload.media_url", "2048"),
        (lambda: Payload.image("https://example.com/a.jpg", caption="c" * 1025), "payload.content", "1024"),
        (lambda: Payload(MediaType.IMAGE, media_url="https://e.example/a", mimetype="video/mp4"), "payload.mimetype", "image/"),
        (lambda: Payload(MediaType.AUDIO, media_url="https://e.example/a", mimetype="nonsense"), "payload.mimetype", "MIME"),
        (lambda: Payload(MediaType.VIDEO, media_url="https://e.example/a", filename="../x.mp4"), "payload.filename", "plain"),
    ],
)  # fmt: skip
def test_every_payload_rule_raises_a_validation_error_naming_the_field(
    build,
    field: str,
    words: str,  # type: ignore[no-untyped-def]
) -> None:
    with pytest.raises(ValidationError) as info:
        build()
    assert info.value.field == field
    assert words.lower() in str(info.value).lower()
    assert isinstance(info.value, ValueError)


def test_limits_are_inclusive() -> None:
    assert len(Payload.text("x" * 4096).content or "") == 4096
    assert Payload.image("https://e.example/a.jpg", caption="c" * 1024).content
    assert Payload(
        MediaType.AUDIO, media_url="https://e.example/v", mimetype="audio/ogg; codecs=opus"
    )


def test_payloads_are_frozen_and_evolve_revalidates() -> None:
    payload = Payload.text("hi")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        payload.content = "changed"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        attrs.evolve(payload, content=" ")
    assert attrs.evolve(payload, content="ok").content == "ok"


def test_group_profile_takes_links_as_values_or_strings() -> None:
    profile = GroupProfile(
        "Runners",
        links=("https://shop.example/shoes", ProductLink("https://shop.example/socks", "Socks")),
    )
    assert [link.url for link in profile.links] == [
        "https://shop.example/shoes",
        "https://shop.example/socks",
    ]
    assert profile.language == "en"
    with pytest.raises(ValidationError):
        ProductLink("javascript:alert(1)")


def test_page_knows_whether_more_follows() -> None:
    assert Page(items=[], total=0, limit=10, offset=0).has_more is False
    assert Page(items=(), total=5, limit=10, offset=10).has_more is False
    assert Page(items=(), total=11, limit=10, offset=0).has_more is True


def test_task_conflict_carries_the_current_status() -> None:
    error = TaskConflict("t1", TaskStatus.PROCESSING, "edit", "pending")
    assert error.status is TaskStatus.PROCESSING
    assert "t1" in str(error)
    assert "processing" in str(error)


# -- instants ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
        datetime(2026, 3, 29, 3, 30, tzinfo=ZoneInfo("Europe/Paris")),
        pendulum.datetime(2026, 3, 29, 3, 30, tz="Europe/Paris"),
        datetime(2026, 3, 29, 7, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        "2026-03-29T01:30:00Z",
        "2026-03-29T01:30:00.000000+00:00",
        "2026-03-29T03:30:00+02:00",
        "2026-03-28T22:30:00-03:00",
        "2026-03-29 07:00:00+05:30",
    ],
)
def test_parse_instant_turns_every_aware_form_into_the_same_utc_instant(value: object) -> None:
    parsed = parse_instant(value)
    assert parsed == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert parsed.tzinfo is UTC
    assert type(parsed) is datetime


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (datetime(2026, 3, 29, 1, 30), "naive"),  # noqa: DTZ001
        ("2026-03-29T01:30:00", "offset"),
        ("2026-03-29", "offset"),
        (date(2026, 3, 29), "bare date"),
        ("not a time", "ISO 8601"),
        ("2026-13-45T00:00:00Z", "ISO 8601"),
        (1743211800, "int"),
        (None, "NoneType"),
    ],
)
def test_parse_instant_refuses_what_is_not_an_instant(value: object, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_instant(value, "scheduled_at")
    assert info.value.field == "scheduled_at"
    assert words.lower() in str(info.value).lower()


def test_micros_round_trip_exactly_and_keep_order() -> None:
    a = datetime(2026, 1, 1, tzinfo=UTC)
    b = a + timedelta(microseconds=1)
    assert to_micros(b) - to_micros(a) == 1
    assert from_micros(to_micros(b)) == b
    assert from_micros(0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert isoformat(b) == "2026-01-01T00:00:00.000001Z"


def test_lone_surrogates_are_refused_before_they_reach_the_database() -> None:
    with pytest.raises(ValidationError, match="surrogate"):
        Payload.text("broken \ud800 text")
    with pytest.raises(ValidationError, match="surrogate"):
        Payload.image("https://example.com/\udc00.jpg")


def test_isoformat_keeps_four_digit_years() -> None:
    assert isoformat(datetime(733, 4, 19, tzinfo=UTC)) == "0733-04-19T00:00:00.000000Z"
