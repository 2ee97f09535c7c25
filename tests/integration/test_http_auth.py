"""``authorize``: a caller scoped to group A can neither see nor change group B's posts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi import HTTPException, Request

from engagequeue import Payload, SQLiteTaskStore, TaskStatus
from engagequeue.http import Action, create_app

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

GROUP_A = "111@g.us"
GROUP_B = "222@g.us"
FUTURE = "2999-01-01T08:00:00Z"


async def scoped_to_group(request: Request, action: Action, session_id: str, group_id: str) -> bool:
    """Allow a caller only the (session, group) named by its X-Session and X-Group headers."""
    if "x-group" not in request.headers:
        raise HTTPException(401, "log in first", headers={"WWW-Authenticate": "Bearer"})
    return request.headers.get("x-session") == session_id and request.headers["x-group"] == group_id


@pytest.fixture
async def sqlite_store(db_path: Path) -> AsyncIterator[SQLiteTaskStore]:
    async with SQLiteTaskStore(db_path) as store:
        await store.add_session("s1")
        yield store


@pytest.fixture
async def caller_a(sqlite_store: SQLiteTaskStore) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(sqlite_store, authorize=scoped_to_group)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        headers={"X-Session": "s1", "X-Group": GROUP_A},
    ) as http:
        yield http


@pytest.fixture
async def task_b(sqlite_store: SQLiteTaskStore) -> str:
    task = await sqlite_store.schedule("s1", GROUP_B, Payload.text("group B only"), FUTURE)
    return task.id


def task_url(task_id: str) -> str:
    return f"/api/moderation/engagement/{task_id}"


async def assert_looks_unknown(response: httpx.Response, task_id: str, caller: httpx.AsyncClient):
    """The refusal is byte for byte the 404 of an id that does not exist (modulo the id)."""
    unknown_id = "f" * len(task_id)
    sent = response.request
    unknown = await caller.request(
        sent.method,
        str(sent.url).replace(task_id, unknown_id),
        content=sent.content,
        headers={"content-type": sent.headers.get("content-type", "application/json")},
    )
    assert response.status_code == 404
    assert unknown.status_code == 404
    assert response.json() == {"error": "not_found", "message": f"no task with id {task_id!r}"}
    assert response.text.replace(task_id, unknown_id) == unknown.text
    assert dict(response.headers) == dict(unknown.headers) | {
        "content-length": response.headers["content-length"]
    }


async def test_caller_of_group_a_cannot_read_a_task_of_group_b(caller_a, task_b):
    response = await caller_a.get(task_url(task_b))
    await assert_looks_unknown(response, task_b, caller_a)
    assert "group B only" not in response.text


async def test_caller_of_group_a_cannot_read_the_events_of_a_task_of_group_b(caller_a, task_b):
    response = await caller_a.get(f"{task_url(task_b)}/events")
    await assert_looks_unknown(response, task_b, caller_a)


async def test_caller_of_group_a_cannot_edit_a_task_of_group_b(caller_a, sqlite_store, task_b):
    before = await sqlite_store.get(task_b)

    response = await caller_a.put(task_url(task_b), json={"content": "hijacked"})
    await assert_looks_unknown(response, task_b, caller_a)
    # Even an edit that would be invalid on the real task answers 404, not 422: no probing.
    invalid = await caller_a.put(task_url(task_b), json={"mediaType": "image"})
    await assert_looks_unknown(invalid, task_b, caller_a)

    assert await sqlite_store.get(task_b) == before
    assert [e.kind for e in await sqlite_store.events(task_b)] == ["created"]


async def test_caller_of_group_a_cannot_cancel_a_task_of_group_b(caller_a, sqlite_store, task_b):
    response = await caller_a.delete(task_url(task_b))
    await assert_looks_unknown(response, task_b, caller_a)
    assert (await sqlite_store.get(task_b)).status is TaskStatus.PENDING
    assert [e.kind for e in await sqlite_store.events(task_b)] == ["created"]


async def test_caller_of_group_a_cannot_list_the_history_of_group_b(caller_a, task_b):
    response = await caller_a.get(f"/api/sessions/s1/groups/{GROUP_B}/engagement/history")
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert task_b not in response.text


async def test_caller_of_group_a_cannot_schedule_into_group_b(caller_a, sqlite_store):
    response = await caller_a.post(
        f"/api/sessions/s1/groups/{GROUP_B}/engagement",
        json={"mediaType": "text", "content": "spam", "scheduledAt": FUTURE},
    )
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert (await sqlite_store.history("s1", GROUP_B)).total == 0


async def test_caller_of_group_a_can_do_everything_in_group_a(caller_a, sqlite_store, task_b):
    base = f"/api/sessions/s1/groups/{GROUP_A}/engagement"
    created = await caller_a.post(
        base, json={"mediaType": "text", "content": "ours", "scheduledAt": FUTURE}
    )
    assert created.status_code == 201
    task_id = created.json()["id"]
    assert (await caller_a.get(task_url(task_id))).status_code == 200
    assert (await caller_a.put(task_url(task_id), json={"content": "ours!"})).status_code == 200
    assert (await caller_a.get(f"{task_url(task_id)}/events")).status_code == 200
    listed = await caller_a.get(f"{base}/history")
    assert [t["id"] for t in listed.json()["items"]] == [task_id]
    assert (await caller_a.delete(task_url(task_id))).status_code == 200
    assert (await sqlite_store.get(task_b)).status is TaskStatus.PENDING


async def test_authorize_is_called_with_the_action_and_the_tasks_own_session_and_group(
    sqlite_store,
):
    calls: list[tuple[str, str, str]] = []

    def record(request: Request, action: Action, session_id: str, group_id: str) -> bool:
        calls.append((action, session_id, group_id))
        return True

    app = create_app(sqlite_store, authorize=record)
    base = f"/api/sessions/s1/groups/{GROUP_A}/engagement"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        task_id = (
            await http.post(base, json={"mediaType": "text", "content": "x", "scheduledAt": FUTURE})
        ).json()["id"]
        await http.get(f"{base}/history")
        await http.get(task_url(task_id))
        await http.get(f"{task_url(task_id)}/events")
        await http.put(task_url(task_id), json={"content": "y"})
        await http.delete(task_url(task_id))
        await http.get(task_url("unknown"))  # unknown ids never reach authorize
    assert calls == [
        ("schedule", "s1", GROUP_A),
        ("read", "s1", GROUP_A),
        ("read", "s1", GROUP_A),
        ("read", "s1", GROUP_A),
        ("edit", "s1", GROUP_A),
        ("cancel", "s1", GROUP_A),
    ]


@pytest.mark.parametrize("verdict", [False, None, "yes", 1])
async def test_anything_but_true_refuses(sqlite_store, verdict):
    app = create_app(sqlite_store, authorize=lambda *_: verdict)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        response = await http.get(f"/api/sessions/s1/groups/{GROUP_A}/engagement/history")
    assert response.status_code == 403


async def test_authorize_may_raise_http_exception_which_keeps_its_status_and_headers(
    sqlite_store, task_b
):
    app = create_app(sqlite_store, authorize=scoped_to_group)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        response = await http.get(f"/api/sessions/s1/groups/{GROUP_B}/engagement/history")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"error": "unauthorized", "message": "log in first"}
