"""Hostile input becomes a clear 4xx or typed error and writes nothing: instants at the
edges of the calendar, event details JSON cannot carry, model answers with NUL, lone
surrogates or a hostile model name, a client that disconnects mid-body."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import pytest_asyncio

from engagequeue import (
    CompositionError,
    GroupProfile,
    Payload,
    PostComposer,
    ProductLink,
    SQLiteTaskStore,
    ValidationError,
)
from engagequeue.http import create_app
from fakes_openai import FakeChatServer, Reply, running_server
from store_support import StoreFactory

GROUP = "120363012345678901@g.us"
SALE = "https://shop.example.com/sale"
PROFILE = GroupProfile(name="Runners", language="en", links=(ProductLink(SALE, "Sale"),))
GOOD = f"Spring sale on every trail shoe.\n{SALE}"
PLUS_ONE = timezone(timedelta(hours=1))

EDGES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]


# -- instants at the edges of the calendar ------------------------------------------------


@pytest.mark.parametrize(
    "at",
    [
        datetime(1, 1, 1, tzinfo=PLUS_ONE),
        datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-1))),
        *EDGES,
    ],
)
async def test_an_instant_outside_the_calendar_is_a_validation_error_and_writes_nothing(
    store_factory: StoreFactory, at: object
) -> None:
    store = await store_factory()
    await store.add_session("s")
    with pytest.raises(ValidationError, match="outside the range"):
        await store.schedule("s", GROUP, Payload.text("hi"), at)
    with pytest.raises(ValidationError, match="outside the range"):
        await store.schedule_many([("s", GROUP, Payload.text("hi"), at)])
    task = await store.schedule("s", GROUP, Payload.text("hi"), "2030-01-01T00:00:00Z")
    with pytest.raises(ValidationError, match="outside the range"):
        await store.edit(task.id, scheduled_at=at)
    page = await store.history("s", GROUP)
    assert [t.id for t in page.items] == [task.id]
    assert (await store.get(task.id)).scheduled_at == datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, SQLiteTaskStore]]:
    async with SQLiteTaskStore(tmp_path / "api.sqlite3") as store:
        await store.add_session("s")
        transport = httpx.ASGITransport(app=create_app(store))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client, store


@pytest.mark.parametrize("at", EDGES)
async def test_calendar_edges_over_http_are_422_not_500(
    api: tuple[httpx.AsyncClient, SQLiteTaskStore], at: str
) -> None:
    client, store = api
    path = f"/api/sessions/s/groups/{GROUP}/engagement"
    answer = await client.post(path, json={"mediaType": "text", "content": "hi", "scheduledAt": at})
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "scheduledAt"
    history = await client.get(f"{path}/history", params={"startDate": at})
    assert history.status_code == 422, history.text
    assert (await store.history("s", GROUP)).total == 0


# -- event details ----------------------------------------------------------------------


class Unserialisable:
    pass


@pytest.mark.parametrize(
    ("detail", "field"),
    [
        ({"k": float("nan")}, "detail.k"),
        ({"k": math.inf}, "detail.k"),
        ({"k": [1, -math.inf]}, "detail.k[1]"),
        ({"k": "m\ud800"}, "detail.k"),
        ({"k": "a\x00b"}, "detail.k"),
        ({"k\udcff": 1}, "detail"),
        ({1: "x"}, "detail"),
        ({"k": {"x"}}, "detail.k"),
        ({"k": Unserialisable()}, "detail.k"),
        ({"k": b"bytes"}, "detail.k"),
    ],
)
async def test_a_detail_json_cannot_carry_is_refused_and_nothing_is_written(
    store_factory: StoreFactory, detail: dict[Any, Any], field: str
) -> None:
    store = await store_factory()
    await store.add_session("s")
    with pytest.raises(ValidationError) as info:
        await store.schedule("s", GROUP, Payload.text("hi"), "2030-01-01T00:00:00Z", detail=detail)
    assert info.value.field == field
    assert (await store.history("s", GROUP)).total == 0


async def test_a_deeply_nested_detail_is_refused(store_factory: StoreFactory) -> None:
    store = await store_factory()
    await store.add_session("s")
    nested: dict[str, Any] = {}
    inner = nested
    for _ in range(100):
        inner["k"] = {}
        inner = inner["k"]
    with pytest.raises(ValidationError, match="nests deeper"):
        await store.schedule("s", GROUP, Payload.text("hi"), "2030-01-01T00:00:00Z", detail=nested)
    assert (await store.history("s", GROUP)).total == 0


async def test_a_valid_detail_is_stored_as_json(store_factory: StoreFactory) -> None:
    store = await store_factory()
    await store.add_session("s")
    detail = {"k": (1, 2.5, "é", None, True), "n": {"deep": ["x"]}}
    task = await store.schedule(
        "s", GROUP, Payload.text("hi"), "2030-01-01T00:00:00Z", detail=detail
    )
    (created,) = await store.events(task.id)
    assert created.detail["k"] == [1, 2.5, "é", None, True]
    assert created.detail["n"] == {"deep": ["x"]}


# -- model answers ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[FakeChatServer]:
    with running_server() as fake:
        yield fake


@pytest_asyncio.fixture
async def client(server: FakeChatServer) -> AsyncIterator[openai.AsyncOpenAI]:
    server.script()
    async with openai.AsyncOpenAI(
        base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=5
    ) as c:
        yield c


@pytest.mark.parametrize("bad", ["\x00", "\ud800", "\udfff\ud800", "\x1b[2J", "\x7f"])
async def test_an_answer_with_nul_surrogates_or_controls_is_retried_with_feedback(
    server: FakeChatServer, client: openai.AsyncOpenAI, bad: str
) -> None:
    server.script(Reply(f"Spring{bad} sale!\n{SALE}"), Reply(GOOD))
    post = await PostComposer(client, "m").compose(PROFILE, "the sale")
    assert post.text == GOOD
    assert post.attempts == 2
    feedback = server.requests[1].messages[-1]["content"]
    assert "control characters or invalid Unicode" in feedback


@pytest.mark.parametrize("bad", ["\x00", "\ud800"])
async def test_a_model_that_keeps_sending_them_is_repaired_or_raises(
    server: FakeChatServer, client: openai.AsyncOpenAI, bad: str
) -> None:
    server.script(then=Reply(f"Spring{bad} sale!\n{SALE}"))
    post = await PostComposer(client, "m", max_attempts=2).compose(PROFILE, "the sale")
    assert post.repaired
    assert bad not in post.text
    assert SALE in post.text
    Payload.text(post.text)  # storable
    with pytest.raises(CompositionError, match="control characters"):
        await PostComposer(client, "m", max_attempts=2, on_failure="raise").compose(
            PROFILE, "the sale"
        )


async def test_a_hostile_model_name_is_stored_clean_and_the_audit_trail_stays_readable(
    server: FakeChatServer, client: openai.AsyncOpenAI, tmp_path: Path
) -> None:
    hostile = "m\ud800\x00\x1b" + "x" * 5000
    server.script(Reply(f"Spring\ud800 sale\n{SALE}", model=hostile), Reply(GOOD, model=hostile))
    async with SQLiteTaskStore(tmp_path / "ai.sqlite3") as store:
        await store.add_session("s")
        task = await PostComposer(client, "m").compose_and_schedule(
            store, "s", GROUP, PROFILE, "the sale", "2030-01-01T00:00:00Z"
        )
        (created,) = await store.events(task.id)
        model = created.detail["model"]
        assert model.startswith("m\ufffd")
        assert all(ch.isprintable() for ch in model)
        assert len(model) <= 200
        transport = httpx.ASGITransport(app=create_app(store))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            answer = await http.get(f"/api/moderation/engagement/{task.id}/events")
    assert answer.status_code == 200
    assert answer.json()[0]["detail"]["model"] == model


# -- a client that disconnects mid-body -------------------------------------------------


async def test_a_client_disconnecting_mid_body_is_logged_at_debug_not_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with SQLiteTaskStore(tmp_path / "d.sqlite3") as store:
        await store.add_session("s")
        app = create_app(store)
        sent: list[dict[str, Any]] = []
        messages = [
            {"type": "http.request", "body": b'{"mediaType": "te', "more_body": True},
            {"type": "http.disconnect"},
        ]

        async def receive() -> dict[str, Any]:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": f"/api/sessions/s/groups/{GROUP}/engagement",
            "raw_path": f"/api/sessions/s/groups/{GROUP}/engagement".encode(),
            "query_string": b"",
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"200")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
            "root_path": "",
        }
        with caplog.at_level(logging.DEBUG):
            await app(scope, receive, send)
        assert (await store.history("s", GROUP)).total == 0
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert all(r.exc_info is None for r in caplog.records if r.name.startswith("engagequeue"))
    assert any("disconnected" in r.getMessage() for r in caplog.records if r.levelno == 10)
