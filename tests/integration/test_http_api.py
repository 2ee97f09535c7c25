"""The moderation endpoints through the ASGI app, against a real SQLite store."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

import engagequeue.http
from engagequeue import EngageQueueError, Payload, SQLiteTaskStore, TaskStatus
from engagequeue._converters import converter
from engagequeue.http import create_app, create_router
from engagequeue.http._schemas import ErrorBody, EventBody, PageBody, TaskBody

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

GROUP = "120363000000000001@g.us"
BASE = f"/api/sessions/s1/groups/{GROUP}/engagement"
PAST = "2026-01-01T08:00:00Z"
FUTURE = "2999-01-01T08:00:00Z"


@pytest.fixture
async def sqlite_store(db_path: Path) -> AsyncIterator[SQLiteTaskStore]:
    async with SQLiteTaskStore(db_path) as store:
        await store.add_session("s1")
        yield store


@pytest.fixture
async def client(sqlite_store: SQLiteTaskStore) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(sqlite_store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def task_url(task_id: str) -> str:
    return f"/api/moderation/engagement/{task_id}"


async def schedule(client: httpx.AsyncClient, **body: object) -> dict[str, object]:
    body = {"mediaType": "text", "content": "Hello group", "scheduledAt": FUTURE, **body}
    response = await client.post(BASE, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    ErrorBody.model_validate(body)
    assert body["error"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


# -- packaging ----------------------------------------------------------------------------


def test_importing_engagequeue_does_not_import_fastapi():
    code = (
        "import sys, engagequeue; "
        "heavy = [m for m in ('fastapi', 'starlette', 'pydantic') if m in sys.modules]; "
        "print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(Path(__file__).parents[2] / "src")},
    )
    assert result.stdout.strip() == "[]"


# -- schedule -----------------------------------------------------------------------------


async def test_post_schedules_a_task_and_answers_201_with_its_json(client, sqlite_store):
    response = await client.post(
        BASE,
        json={"mediaType": "text", "content": "Hi all", "scheduledAt": "2026-03-01T10:30:00+01:00"},
    )

    assert response.status_code == 201
    body = response.json()
    stored = await sqlite_store.get(body["id"])
    assert body == converter.unstructure(stored)
    assert body["sessionId"] == "s1"
    assert body["groupId"] == GROUP
    assert body["scheduledAt"] == "2026-03-01T09:30:00.000000Z"
    assert body["status"] == "pending"
    assert body["maxAttempts"] == 3
    TaskBody.model_validate(body)


async def test_post_schedules_a_media_post_with_max_attempts(client, sqlite_store):
    body = await schedule(
        client,
        mediaType="image",
        content="New arrivals",
        mediaUrl="https://cdn.example.com/a.png",
        maxAttempts=5,
    )
    stored = await sqlite_store.get(str(body["id"]))
    assert stored.payload == Payload.image("https://cdn.example.com/a.png", caption="New arrivals")
    assert stored.max_attempts == 5


async def test_post_to_an_unknown_session_is_404_and_writes_nothing(client, sqlite_store):
    response = await client.post(
        f"/api/sessions/nobody/groups/{GROUP}/engagement",
        json={"mediaType": "text", "content": "x", "scheduledAt": FUTURE},
    )
    body = assert_error(response, 404, "not_found")
    assert "nobody" in str(body["message"])
    assert (await sqlite_store.history("s1", GROUP)).total == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mediaType": "text", "scheduledAt": FUTURE}, "content"),
        ({"mediaType": "text", "content": "  ", "scheduledAt": FUTURE}, "content"),
        ({"mediaType": "image", "content": "c", "scheduledAt": FUTURE}, "mediaUrl"),
        (
            {"mediaType": "image", "mediaUrl": "ftp://x.example/a", "scheduledAt": FUTURE},
            "mediaUrl",
        ),
        (
            {
                "mediaType": "text",
                "content": "x",
                "mediaUrl": "https://x.example/a.png",
                "scheduledAt": FUTURE,
            },
            "mediaUrl",
        ),
        ({"content": "x", "scheduledAt": FUTURE}, "mediaType"),
        ({"mediaType": "TEXT!", "content": "x", "scheduledAt": FUTURE}, "mediaType"),
        ({"mediaType": "text", "content": "x"}, "scheduledAt"),
        (
            {"mediaType": "text", "content": "x", "scheduledAt": "2026-03-01T10:00:00"},
            "scheduledAt",
        ),
        ({"mediaType": "text", "content": "x", "scheduledAt": "tomorrow"}, "scheduledAt"),
        (
            {"mediaType": "text", "content": "x", "scheduledAt": FUTURE, "maxAttempts": 0},
            "maxAttempts",
        ),
        (
            {"mediaType": "text", "content": "x", "scheduledAt": FUTURE, "maxAttempts": "3"},
            "maxAttempts",
        ),
        ({"mediaType": "text", "content": "x", "scheduledAt": FUTURE, "priority": 1}, "priority"),
        ({"mediaType": "text", "content": "x" * 4097, "scheduledAt": FUTURE}, "content"),
        ({"mediaType": "text", "content": "a\x00b", "scheduledAt": FUTURE}, "content"),
    ],
)
async def test_post_with_invalid_input_is_422_naming_the_field_and_writes_nothing(
    client, sqlite_store, body, field
):
    response = await client.post(BASE, json=body)
    error = assert_error(response, 422, "validation_error")
    assert error["field"] == field
    assert field in str(error["message"])
    assert any(item["field"] == field for item in error["errors"])
    assert (await sqlite_store.history("s1", GROUP)).total == 0


async def test_a_lone_surrogate_in_json_is_422_not_a_crash(client, sqlite_store):
    raw = (
        b'{"mediaType": "text", "content": "bad \\ud800", "scheduledAt": "'
        + FUTURE.encode()
        + b'"}'
    )
    response = await client.post(BASE, content=raw, headers={"content-type": "application/json"})
    assert assert_error(response, 422, "validation_error")["field"] == "content"
    assert (await sqlite_store.history("s1", GROUP)).total == 0


# -- read ---------------------------------------------------------------------------------


async def test_get_returns_the_task_json(client):
    created = await schedule(client)
    response = await client.get(task_url(str(created["id"])))
    assert response.status_code == 200
    assert response.json() == created


@pytest.mark.parametrize("task_id", ["0000unknown", "x" * 300, "a b", "%00"])
async def test_get_of_an_unknown_or_impossible_id_is_404(client, task_id):
    body = assert_error(await client.get(task_url(task_id)), 404, "not_found")
    assert "no task with id" in str(body["message"])


# -- edit ---------------------------------------------------------------------------------


async def test_put_changes_content_only_and_records_an_edited_event(client, sqlite_store):
    created = await schedule(
        client, mediaType="image", content="old", mediaUrl="https://x.example/a.png"
    )
    task_id = str(created["id"])

    response = await client.put(task_url(task_id), json={"content": "new caption"})

    assert response.status_code == 200
    body = response.json()
    assert body["content"] == "new caption"
    assert body["mediaType"] == "image"
    assert body["mediaUrl"] == "https://x.example/a.png"
    assert body["scheduledAt"] == created["scheduledAt"]
    stored = await sqlite_store.get(task_id)
    assert stored.payload.content == "new caption"
    assert [e.kind for e in await sqlite_store.events(task_id)] == ["created", "edited"]


async def test_put_moves_the_scheduled_time(client, sqlite_store):
    task_id = str((await schedule(client))["id"])
    response = await client.put(
        task_url(task_id), json={"scheduledAt": "2030-05-01T12:00:00-03:00"}
    )
    assert response.status_code == 200
    assert response.json()["scheduledAt"] == "2030-05-01T15:00:00.000000Z"
    assert (await sqlite_store.get(task_id)).scheduled_at == datetime(2030, 5, 1, 15, tzinfo=UTC)


async def test_put_switching_to_image_without_media_url_is_422_naming_media_url(
    client, sqlite_store
):
    task_id = str((await schedule(client, content="text post"))["id"])
    before = await sqlite_store.get(task_id)

    response = await client.put(task_url(task_id), json={"mediaType": "image"})

    error = assert_error(response, 422, "validation_error")
    assert error["field"] == "mediaUrl"
    assert await sqlite_store.get(task_id) == before
    assert [e.kind for e in await sqlite_store.events(task_id)] == ["created"]


async def test_put_switching_to_image_with_url_keeps_the_text_as_caption(client):
    task_id = str((await schedule(client, content="see this"))["id"])
    response = await client.put(
        task_url(task_id), json={"mediaType": "image", "mediaUrl": "https://x.example/i.png"}
    )
    assert response.status_code == 200
    assert (response.json()["mediaType"], response.json()["content"]) == ("image", "see this")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"status": "completed"}, "status"),
        ({"mediaType": None}, "mediaType"),
        ({"scheduledAt": None}, "scheduledAt"),
        ({"scheduledAt": "2026-03-01 10:00"}, "scheduledAt"),
        ({"content": 12}, "content"),
        ({"content": None}, "content"),
    ],
)
async def test_put_with_invalid_input_is_422_naming_the_field(client, sqlite_store, body, field):
    task_id = str((await schedule(client))["id"])
    error = assert_error(await client.put(task_url(task_id), json=body), 422, "validation_error")
    assert error["field"] == field
    assert [e.kind for e in await sqlite_store.events(task_id)] == ["created"]


async def test_put_of_an_unknown_task_is_404(client):
    assert_error(await client.put(task_url("nope"), json={"content": "x"}), 404, "not_found")


@pytest.mark.parametrize("finish", ["claim", "complete", "cancel"])
async def test_put_of_a_task_that_is_no_longer_pending_is_409_with_its_status(
    client, sqlite_store, finish
):
    task_id = str((await schedule(client, scheduledAt=PAST))["id"])
    if finish in {"claim", "complete"}:
        [claimed] = await sqlite_store.claim_due()
        assert claimed.id == task_id
        if finish == "complete":
            await sqlite_store.complete(task_id, message_id="wamid.1")
    else:
        await sqlite_store.cancel(task_id)
    before = await sqlite_store.get(task_id)

    response = await client.put(task_url(task_id), json={"content": "too late"})

    body = assert_error(response, 409, "conflict")
    assert body["status"] == before.status.value
    assert before.status is not TaskStatus.PENDING
    assert await sqlite_store.get(task_id) == before
    assert "edited" not in [e.kind for e in await sqlite_store.events(task_id)]


# -- cancel and events --------------------------------------------------------------------


async def test_delete_cancels_a_pending_task_then_409s(client, sqlite_store):
    task_id = str((await schedule(client))["id"])

    response = await client.delete(task_url(task_id))
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert (await sqlite_store.get(task_id)).status is TaskStatus.CANCELLED

    again = assert_error(await client.delete(task_url(task_id)), 409, "conflict")
    assert again["status"] == "cancelled"


async def test_delete_of_a_processing_task_is_409_and_leaves_it_processing(client, sqlite_store):
    task_id = str((await schedule(client, scheduledAt=PAST))["id"])
    await sqlite_store.claim_due()
    body = assert_error(await client.delete(task_url(task_id)), 409, "conflict")
    assert body["status"] == "processing"
    assert (await sqlite_store.get(task_id)).status is TaskStatus.PROCESSING


async def test_delete_of_an_unknown_task_is_404(client):
    assert_error(await client.delete(task_url("nope")), 404, "not_found")


async def test_events_list_the_audit_trail_oldest_first(client, sqlite_store):
    task_id = str((await schedule(client))["id"])
    await client.put(task_url(task_id), json={"content": "edited"})
    await client.delete(task_url(task_id))

    response = await client.get(f"{task_url(task_id)}/events")

    assert response.status_code == 200
    trail = response.json()
    assert [e["kind"] for e in trail] == ["created", "edited", "cancelled"]
    assert trail == [converter.unstructure(e) for e in await sqlite_store.events(task_id)]
    for event in trail:
        EventBody.model_validate(event)
        assert event["taskId"] == task_id
        assert event["at"].endswith("Z")


async def test_events_of_an_unknown_task_is_404(client):
    assert_error(await client.get(f"{task_url('nope')}/events"), 404, "not_found")


# -- history ------------------------------------------------------------------------------


@pytest.fixture
async def march(sqlite_store: SQLiteTaskStore) -> dict[str, str]:
    """Five tasks: Feb 28 23:59:59, Mar 1 00:00, Mar 15, Mar 31 23:59:59.999999, Apr 1 00:00."""
    times = {
        "feb28": datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC),
        "mar01": datetime(2026, 3, 1, tzinfo=UTC),
        "mar15": datetime(2026, 3, 15, 12, tzinfo=UTC),
        "mar31": datetime(2026, 3, 31, 23, 59, 59, 999999, tzinfo=UTC),
        "apr01": datetime(2026, 4, 1, tzinfo=UTC),
    }
    ids = {}
    for name, at in times.items():
        task = await sqlite_store.schedule("s1", GROUP, Payload.text(name), at)
        ids[name] = task.id
    await sqlite_store.schedule("s1", "other@g.us", Payload.text("other group"), times["mar15"])
    await sqlite_store.cancel(ids["mar15"])
    return ids


async def history(client: httpx.AsyncClient, **params: object) -> httpx.Response:
    return await client.get(f"{BASE}/history", params=params)


def names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    PageBody.model_validate(response.json())
    return [item["content"] for item in response.json()["items"]]


async def test_history_with_bare_dates_covers_those_whole_utc_days(client, march):
    response = await history(client, startDate="2026-03-01", endDate="2026-03-31")
    assert names(response) == ["mar01", "mar15", "mar31"]
    assert response.json()["total"] == 3


async def test_history_with_datetimes_uses_start_inclusive_end_exclusive(client, march):
    response = await history(
        client, startDate="2026-03-01T01:00:00+01:00", endDate="2026-04-01T00:00:00Z"
    )
    assert names(response) == ["mar01", "mar15", "mar31"]


async def test_history_without_filters_lists_the_group_in_time_order(client, march):
    response = await history(client)
    assert names(response) == ["feb28", "mar01", "mar15", "mar31", "apr01"]
    assert response.json() | {"items": None} == {
        "items": None,
        "total": 5,
        "limit": 50,
        "offset": 0,
    }


async def test_history_empty_filter_values_mean_no_filter(client, march):
    response = await client.get(f"{BASE}/history?startDate=&endDate=&status=")
    assert len(names(response)) == 5


async def test_history_status_may_repeat_or_be_comma_separated(client, march):
    by_comma = await client.get(f"{BASE}/history?status=cancelled,completed")
    assert names(by_comma) == ["mar15"]
    repeated = await client.get(f"{BASE}/history?status=pending&status=cancelled")
    assert len(names(repeated)) == 5
    pending = await history(client, status="pending")
    assert names(pending) == ["feb28", "mar01", "mar31", "apr01"]


async def test_history_pages_with_limit_and_offset(client, march):
    response = await history(client, limit=2, offset=1)
    assert names(response) == ["mar01", "mar15"]
    assert response.json() | {"items": None} == {"items": None, "total": 5, "limit": 2, "offset": 1}
    assert names(await history(client, limit=2, offset=4)) == ["apr01"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"startDate": "2026-03-01T00:00:00"}, "startDate"),
        ({"endDate": "31/03/2026"}, "endDate"),
        ({"startDate": "2026-02-30"}, "startDate"),
        ({"startDate": "2026-03-10", "endDate": "2026-03-01"}, "endDate"),
        ({"status": "sent"}, "status"),
        ({"status": "pending,nope"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
    ],
)
async def test_history_with_a_bad_filter_is_422_naming_the_parameter(client, march, params, field):
    error = assert_error(await history(client, **params), 422, "validation_error")
    assert error["field"] == field
    assert field in str(error["message"])


async def test_history_of_an_unknown_session_is_404(client):
    response = await client.get(f"/api/sessions/ghost/groups/{GROUP}/engagement/history")
    assert_error(response, 404, "not_found")


# -- one error shape, no leaks ------------------------------------------------------------


async def test_unknown_paths_and_methods_answer_in_the_error_shape(client):
    assert_error(await client.get("/api/nothing"), 404, "not_found")
    assert_error(await client.patch(task_url("x"), json={}), 405, "method_not_allowed")


async def test_an_oversized_body_is_413_before_parsing(client, sqlite_store):
    huge = json.dumps({"mediaType": "text", "content": "x" * 70_000, "scheduledAt": FUTURE})
    response = await client.post(BASE, content=huge, headers={"content-type": "application/json"})
    assert_error(response, 413, "payload_too_large")
    assert (await sqlite_store.history("s1", GROUP)).total == 0


async def test_an_oversized_streamed_body_without_length_is_413(client, sqlite_store):
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"mediaType": "text", "content": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'", "scheduledAt": "2999-01-01T00:00:00Z"}'

    response = await client.post(
        BASE, content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "payload_too_large")
    assert (await sqlite_store.history("s1", GROUP)).total == 0


async def test_the_body_limit_is_configurable(sqlite_store):
    app = create_app(sqlite_store, max_body_size=100)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        small = await http.post(
            BASE, json={"mediaType": "text", "content": "x", "scheduledAt": FUTURE}
        )
        assert small.status_code == 201
        big = await http.post(
            BASE, json={"mediaType": "text", "content": "x" * 100, "scheduledAt": FUTURE}
        )
        assert_error(big, 413, "payload_too_large")


async def test_a_body_that_is_not_json_is_415_or_422(client):
    form = await client.post(BASE, content=b"content=hi", headers={"content-type": "text/plain"})
    assert_error(form, 415, "unsupported_media_type")
    broken = await client.post(BASE, content=b"{oops", headers={"content-type": "application/json"})
    assert assert_error(broken, 422, "validation_error")["field"] == "body"
    not_utf8 = await client.post(
        BASE, content=b'{"content": "\xff\xfe"}', headers={"content-type": "application/json"}
    )
    assert assert_error(not_utf8, 422, "validation_error")["field"] == "body"
    deep = await client.post(
        BASE, content=b"[" * 30_000 + b"]" * 30_000, headers={"content-type": "application/json"}
    )
    assert assert_error(deep, 422, "validation_error")["field"] == "body"
    array = await client.post(BASE, json=[1, 2])
    assert assert_error(array, 422, "validation_error")["field"] == "body"


async def test_an_unexpected_error_is_a_bare_500_without_details(db_path, caplog):
    store = SQLiteTaskStore(db_path)  # never opened: every call fails inside the store
    app = create_app(store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        response = await http.get(f"{BASE}/history")
        body = assert_error(response, 500, "internal_error")
    assert body == {"error": "internal_error", "message": "internal server error"}
    for secret in ("Traceback", "store", "sqlite", str(db_path), "open"):
        assert secret not in response.text
    assert "the store is not open" in caplog.text  # the details went to the log


async def test_a_failing_authorize_callback_is_a_bare_500(sqlite_store):
    def authorize(request, action, session_id, group_id):
        raise RuntimeError("SELECT * FROM users WHERE path='/etc/secrets'")

    app = create_app(sqlite_store, authorize=authorize)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        response = await http.get(f"{BASE}/history")
    assert_error(response, 500, "internal_error")
    assert "SELECT" not in response.text
    assert "secrets" not in response.text


async def test_the_router_keeps_its_error_shape_inside_a_host_app_with_its_own_handlers(
    sqlite_store,
):
    host = FastAPI()

    @host.exception_handler(RequestValidationError)
    async def host_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": "host handler"}, status_code=400)

    @host.get("/api/health")
    async def health(limit: int) -> dict[str, str]:
        return {"ok": "yes"}

    host.include_router(create_router(sqlite_store))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=host), base_url="http://t"
    ) as http:
        ours = await http.post(BASE, json={"mediaType": "text"})
        assert assert_error(ours, 422, "validation_error")["field"] in {"content", "scheduledAt"}
        assert_error(await http.get(task_url("nope")), 404, "not_found")
        created = await http.post(
            BASE, json={"mediaType": "text", "content": "x", "scheduledAt": FUTURE}
        )
        assert created.status_code == 201
        theirs = await http.get("/api/health?limit=x")
        assert theirs.json() == {"detail": "host handler"}


# -- OpenAPI ------------------------------------------------------------------------------


async def test_the_openapi_document_describes_every_endpoint_body_and_error(client):
    document = (await client.get("/openapi.json")).json()
    operations = {
        (method.upper(), path): op
        for path, item in document["paths"].items()
        for method, op in item.items()
    }
    task_path = "/api/moderation/engagement/{task_id}"
    group_path = "/api/sessions/{session_id}/groups/{group_id}/engagement"
    recurrence_path = "/api/moderation/engagement/recurring/{recurrence_id}"
    expected = {
        ("POST", group_path): {"201", "400", "403", "404", "413", "415", "422", "500"},
        ("GET", f"{group_path}/history"): {"200", "403", "404", "422", "500"},
        ("GET", task_path): {"200", "404", "422", "500"},
        ("PUT", task_path): {"200", "400", "404", "409", "412", "413", "415", "422", "500"},
        ("DELETE", task_path): {"200", "404", "409", "412", "422", "500"},
        ("GET", f"{task_path}/events"): {"200", "404", "422", "500"},
        ("POST", f"{group_path}/recurring"): {"201", "400", "403", "404", "413", "415", "422", "500"},
        ("GET", f"{group_path}/recurring"): {"200", "403", "404", "422", "500"},
        ("GET", recurrence_path): {"200", "404", "422", "500"},
        ("PUT", recurrence_path): {"200", "400", "404", "409", "413", "415", "422", "500"},
        ("DELETE", recurrence_path): {"200", "404", "422", "500"},
        ("POST", f"{recurrence_path}/pause"): {"200", "404", "409", "422", "500"},
        ("POST", f"{recurrence_path}/resume"): {"200", "404", "409", "422", "500"},
        ("GET", f"{recurrence_path}/events"): {"200", "404", "422", "500"},
        ("GET", "/api/sessions/{session_id}/groups/{group_id}/connection"): {
            "200",
            "403",
            "404",
            "422",
            "500",
        },
    }
    assert set(operations) == set(expected)
    error_ref = "#/components/schemas/ErrorBody"
    for key, codes in expected.items():
        responses = operations[key]["responses"]
        assert set(responses) == codes, key
        for code in codes - {"200", "201"}:
            schema = responses[code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": error_ref}, (key, code)
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    for body in ("ScheduleBody", "EditBody"):
        assert schemas[body]["additionalProperties"] is False
    assert set(schemas["EditBody"]["properties"]) == {
        "content",
        "mediaType",
        "mediaUrl",
        "scheduledAt",
    }
    assert set(schemas["TaskBody"]["required"]) >= {
        "id",
        "sessionId",
        "groupId",
        "mediaType",
        "content",
        "mediaUrl",
        "scheduledAt",
        "status",
        "attempts",
        "lastError",
        "createdAt",
        "updatedAt",
    }


async def test_create_app_opens_the_store_on_startup(db_path):
    store = SQLiteTaskStore(db_path)
    app = create_app(store)
    with pytest.raises(EngageQueueError, match="not open"):
        await store.add_session("s1")
    try:
        async with app.router.lifespan_context(app):
            await store.add_session("s1")
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t"
            ) as http:
                response = await http.post(
                    BASE, json={"mediaType": "text", "content": "x", "scheduledAt": FUTURE}
                )
                assert response.status_code == 201
    finally:
        await store.close()


def test_engagequeue_http_exports_exactly_its_public_names():
    assert engagequeue.http.__all__ == [
        "DEFAULT_MAX_BODY_SIZE",
        "Action",
        "Authorize",
        "create_app",
        "create_router",
        "create_webhook_router",
    ]
    assert engagequeue.http.DEFAULT_MAX_BODY_SIZE == 64 * 1024
