"""The JSON form of tasks, events and pages: camelCase keys, UTC instants with Z, enum values."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engagequeue import MediaType, Page, Payload, Task, TaskEvent, TaskStatus, ValidationError
from engagequeue._converters import converter, json_field

PARIS = timezone(timedelta(hours=2))

TASK_KEYS = {
    "id",
    "sessionId",
    "groupId",
    "mediaType",
    "content",
    "mediaUrl",
    "scheduledAt",
    "status",
    "attempts",
    "maxAttempts",
    "lastError",
    "createdAt",
    "updatedAt",
    "version",
    "recurrenceId",
}


def make_task(**changes: object) -> Task:
    values: dict[str, object] = {
        "id": "t1",
        "session_id": "s1",
        "group_id": "120363@g.us",
        "payload": Payload.image("https://cdn.example.com/a.png", caption="Hello"),
        "scheduled_at": datetime(2026, 3, 1, 11, 30, 0, 5, tzinfo=PARIS),
        "status": TaskStatus.FAILED,
        "attempts": 3,
        "max_attempts": 3,
        "last_error": "gateway said no",
        "created_at": datetime(2026, 2, 1, tzinfo=UTC),
        "updated_at": datetime(2026, 3, 1, 9, 31, tzinfo=UTC),
    }
    values.update(changes)
    return Task(**values)  # type: ignore[arg-type]


def test_task_unstructures_to_the_contract_keys_with_camel_case_and_z_instants():
    data = converter.unstructure(make_task())

    assert set(data) == TASK_KEYS
    assert data == {
        "id": "t1",
        "sessionId": "s1",
        "groupId": "120363@g.us",
        "mediaType": "image",
        "content": "Hello",
        "mediaUrl": "https://cdn.example.com/a.png",
        "scheduledAt": "2026-03-01T09:30:00.000005Z",
        "status": "failed",
        "attempts": 3,
        "maxAttempts": 3,
        "lastError": "gateway said no",
        "createdAt": "2026-02-01T00:00:00.000000Z",
        "updatedAt": "2026-03-01T09:31:00.000000Z",
        "version": 1,
        "recurrenceId": None,
    }
    json.dumps(data)  # plain JSON values only


def test_enums_unstructure_to_their_values_not_their_names():
    data = converter.unstructure(make_task(status=TaskStatus.PENDING, payload=Payload.text("x")))
    assert data["status"] == "pending"
    assert data["mediaType"] == "text"
    assert type(data["status"]) is str
    assert converter.unstructure(MediaType.VIDEO) == "video"


def test_datetimes_unstructure_as_utc_with_z_whatever_their_zone():
    assert converter.unstructure(datetime(2026, 1, 1, 1, 0, tzinfo=PARIS)) == (
        "2025-12-31T23:00:00.000000Z"
    )


@pytest.mark.parametrize(
    ("instant", "text"),
    [
        (datetime(733, 4, 19, 10, 54, 27, tzinfo=UTC), "0733-04-19T10:54:27.000000Z"),
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00.000000Z"),
        (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "9999-12-31T23:59:59.999999Z"),
    ],
)
def test_instants_keep_four_digit_years_and_microseconds(instant, text):
    assert converter.unstructure(instant) == text
    assert converter.structure(text, datetime) == instant


def test_task_round_trips_through_json():
    task = make_task()
    back = converter.structure(json.loads(json.dumps(converter.unstructure(task))), Task)
    assert back == task
    assert back.scheduled_at.tzinfo is not None
    assert back.scheduled_at.utcoffset() == timedelta(0)


def test_structuring_names_the_json_key_of_a_missing_field():
    data = converter.unstructure(make_task())
    del data["groupId"]
    with pytest.raises(ValidationError) as info:
        converter.structure(data, Task)
    assert info.value.field == "groupId"


def test_structuring_refuses_an_instant_without_offset_naming_the_key():
    data = converter.unstructure(make_task())
    data["scheduledAt"] = "2026-03-01T09:30:00"
    with pytest.raises(ValidationError) as info:
        converter.structure(data, Task)
    assert info.value.field == "scheduledAt"


def test_structuring_validates_the_payload_and_names_its_json_key():
    data = converter.unstructure(make_task())
    data["mediaUrl"] = None
    with pytest.raises(ValidationError) as info:
        converter.structure(data, Task)
    assert info.value.field == "mediaUrl"


def test_structuring_refuses_an_unknown_status():
    data = converter.unstructure(make_task())
    data["status"] = "sent"
    with pytest.raises(ValidationError) as info:
        converter.structure(data, Task)
    assert info.value.field == "status"


def test_event_round_trips_with_camel_case_keys():
    event = TaskEvent(
        task_id="t1",
        at=datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
        kind="edited",
        detail={"payload": True, "media_type": "text"},
        id=7,
    )
    data = converter.unstructure(event)
    assert data == {
        "id": 7,
        "taskId": "t1",
        "at": "2026-03-01T09:30:00.000000Z",
        "kind": "edited",
        "detail": {"payload": True, "media_type": "text"},
    }
    back = converter.structure(data, TaskEvent)
    assert back == event
    assert dict(back.detail) == dict(event.detail)


def test_page_unstructures_to_items_total_limit_offset_and_back():
    tasks = [make_task(id="a"), make_task(id="b", payload=Payload.text("hi"))]
    page = Page(items=tasks, total=12, limit=2, offset=4)
    data = converter.unstructure(page)
    assert set(data) == {"items", "total", "limit", "offset"}
    assert [item["id"] for item in data["items"]] == ["a", "b"]
    assert (data["total"], data["limit"], data["offset"]) == (12, 2, 4)
    assert converter.structure(data, Page) == page


@pytest.mark.parametrize(
    ("python", "json_key"),
    [
        ("payload.media_url", "mediaUrl"),
        ("payload.content", "content"),
        ("payload.media_type", "mediaType"),
        ("scheduled_at", "scheduledAt"),
        ("max_attempts", "maxAttempts"),
        ("start", "startDate"),
        ("end", "endDate"),
        ("limit", "limit"),
        (None, None),
    ],
)
def test_json_field_maps_python_field_names_to_json_keys(python, json_key):
    assert json_field(python) == json_key


instants = st.datetimes(
    min_value=datetime(2, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
    max_value=datetime(9998, 12, 31),  # noqa: DTZ001 - hypothesis bounds are naive
    timezones=st.sampled_from([UTC, PARIS, timezone(timedelta(hours=-9, minutes=-30))]),
)


@given(scheduled=instants, created=instants, content=st.text(min_size=1, max_size=50))
def test_any_valid_task_survives_the_json_round_trip(scheduled, created, content):
    if not content.strip() or "\x00" in content:
        content = "x" + content.replace("\x00", "")
    task = make_task(
        payload=Payload.text(content),
        scheduled_at=scheduled,
        created_at=created,
        updated_at=created,
        status=TaskStatus.PENDING,
        last_error=None,
    )
    data = converter.unstructure(task)
    assert data["scheduledAt"].endswith("Z")
    assert converter.structure(json.loads(json.dumps(data)), Task) == task
