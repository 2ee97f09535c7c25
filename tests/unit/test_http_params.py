"""The HTTP adapter's pure helpers: history bounds, status filters, the merge of a partial edit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engagequeue import MediaType, Payload, TaskStatus, ValidationError
from engagequeue.http._params import merge_payload, parse_bound, parse_status_filter, to_http


def test_a_bare_start_date_is_the_first_instant_of_that_utc_day():
    assert parse_bound("2026-03-01", "startDate", end=False) == datetime(2026, 3, 1, tzinfo=UTC)


def test_a_bare_end_date_includes_that_whole_utc_day():
    assert parse_bound("2026-03-31", "endDate", end=True) == datetime(2026, 4, 1, tzinfo=UTC)


def test_a_bare_end_date_on_the_last_representable_day_bounds_nothing():
    assert parse_bound("9999-12-31", "endDate", end=True) is None


def test_a_datetime_bound_with_an_offset_is_converted_to_utc():
    assert parse_bound("2026-03-01T10:00:00+02:00", "startDate", end=False) == datetime(
        2026, 3, 1, 8, tzinfo=UTC
    )


def test_an_unencoded_plus_offset_that_arrived_as_a_space_is_understood():
    assert parse_bound("2026-03-01T10:00:00 02:00", "endDate", end=True) == datetime(
        2026, 3, 1, 8, tzinfo=UTC
    )


@pytest.mark.parametrize("value", [None, "", "   "])
def test_an_absent_or_empty_bound_means_no_bound(value):
    assert parse_bound(value, "startDate", end=False) is None


@pytest.mark.parametrize(
    "value", ["2026-03-01T10:00:00", "2026-02-30", "yesterday", "2026-13-01", "20260301"]
)
def test_a_bad_bound_is_refused_naming_the_parameter(value):
    with pytest.raises(ValidationError) as info:
        parse_bound(value, "startDate", end=False)
    assert info.value.field == "startDate"
    assert "startDate" in str(info.value)


def test_statuses_may_repeat_or_be_comma_separated_and_are_deduplicated():
    assert parse_status_filter(["pending, completed", "FAILED", "pending"]) == (
        TaskStatus.PENDING,
        TaskStatus.COMPLETED,
        TaskStatus.FAILED,
    )


@pytest.mark.parametrize("values", [None, [], [""], [" , "]])
def test_no_named_status_means_no_status_filter(values):
    assert parse_status_filter(values) is None


def test_an_unknown_status_is_refused_naming_the_parameter():
    with pytest.raises(ValidationError) as info:
        parse_status_filter(["pending,sent"])
    assert info.value.field == "status"
    assert "'sent'" in str(info.value)


def test_merging_content_keeps_the_rest_of_the_post():
    current = Payload.image("https://cdn.example.com/a.png", caption="old")
    merged = merge_payload(current, {"content": "new"})
    assert merged == Payload.image("https://cdn.example.com/a.png", caption="new")


def test_switching_to_image_without_a_media_url_names_media_url():
    with pytest.raises(ValidationError) as info:
        merge_payload(Payload.text("hello"), {"media_type": "image"})
    assert info.value.field == "mediaUrl"
    assert "mediaUrl" in str(info.value)
    assert "payload." not in str(info.value)


def test_switching_to_image_with_a_media_url_keeps_the_text_as_caption():
    merged = merge_payload(
        Payload.text("hello"), {"media_type": "image", "media_url": "https://x.example/i.png"}
    )
    assert merged == Payload.image("https://x.example/i.png", caption="hello")


def test_switching_to_text_drops_the_media_url():
    merged = merge_payload(
        Payload.video("https://x.example/v.mp4", "watch"), {"media_type": "text"}
    )
    assert merged == Payload.text("watch")


def test_switching_to_text_with_a_media_url_is_refused_naming_it():
    with pytest.raises(ValidationError) as info:
        merge_payload(
            Payload.text("hi"), {"media_type": "text", "media_url": "https://x.example/i.png"}
        )
    assert info.value.field == "mediaUrl"


def test_clearing_a_caption_with_null_is_allowed_on_media():
    merged = merge_payload(Payload.image("https://x.example/i.png", "c"), {"content": None})
    assert merged.content is None
    assert merged.media_type is MediaType.IMAGE


def test_a_new_media_url_drops_the_old_files_mimetype_and_name():
    current = Payload(
        MediaType.IMAGE, media_url="https://x.example/a.png", mimetype="image/png", filename="a.png"
    )
    assert merge_payload(current, {"content": "c"}).mimetype == "image/png"
    changed = merge_payload(current, {"media_url": "https://x.example/b.jpg"})
    assert (changed.mimetype, changed.filename) == (None, None)


def test_to_http_renames_the_field_and_its_mentions_but_not_other_words():
    exc = to_http(ValidationError("end must not be before start; end it", field="end"))
    assert exc.field == "endDate"
    assert str(exc) == "endDate must not be before start; endDate it"
    exc = to_http(ValidationError("payload.media_url is required", field="payload.media_url"))
    assert (exc.field, str(exc)) == ("mediaUrl", "mediaUrl is required")
