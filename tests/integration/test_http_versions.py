"""ETag / If-Match on the task endpoints, and concurrent PUTs that never lose a change.

Run on both engines (``store_factory``): two app instances over two store objects on one
database stand for two API processes, so their writes race through the database itself.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from engagequeue import Payload, TaskStatus, VersionConflict
from engagequeue.http import create_app

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from store_support import StoreFactory

PAST = "2026-01-01T08:00:00Z"
LATER = "2999-01-01T08:00:00Z"
ROUNDS = 40


class CountingStore:
    """A real store, passed through, that counts the version conflicts its edits met."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.conflicts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def edit(self, task_id: str, **kwargs: Any) -> Any:
        try:
            return await self._inner.edit(task_id, **kwargs)
        except VersionConflict:
            self.conflicts += 1
            raise


@pytest.fixture
async def clients(
    store_factory: StoreFactory,
) -> AsyncIterator[tuple[Any, list[CountingStore], list[httpx.AsyncClient]]]:
    """(a store for setup and checks, the two API stores, a client for each API)."""
    admin = await store_factory()
    await admin.add_session("s1")
    stores = [CountingStore(await store_factory()) for _ in range(2)]
    http = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(store)),  # type: ignore[arg-type]
            base_url="http://t",
        )
        for store in stores
    ]
    try:
        yield admin, stores, http
    finally:
        for client in http:
            await client.aclose()


def url(task_id: str) -> str:
    return f"/api/moderation/engagement/{task_id}"


async def test_task_responses_carry_the_version_as_etag(clients: Any) -> None:
    admin, _, (http, _) = clients
    created = await http.post(
        "/api/sessions/s1/groups/g@g.us/engagement",
        json={"mediaType": "text", "content": "x", "scheduledAt": LATER},
    )
    assert created.status_code == 201
    assert created.headers["etag"] == '"1"'
    assert created.json()["version"] == 1
    task_id = created.json()["id"]
    read = await http.get(url(task_id))
    assert (read.headers["etag"], read.json()["version"]) == ('"1"', 1)
    edited = await http.put(url(task_id), json={"content": "y"})
    assert (edited.headers["etag"], edited.json()["version"]) == ('"2"', 2)
    assert (await admin.get(task_id)).version == 2
    cancelled = await http.delete(url(task_id))
    assert (cancelled.headers["etag"], cancelled.json()["version"]) == ('"3"', 3)


async def test_put_with_a_stale_if_match_is_412_and_changes_nothing(clients: Any) -> None:
    admin, _, (http, _) = clients
    task = await admin.schedule("s1", "g@g.us", Payload.text("original"), LATER)
    etag = (await http.get(url(task.id))).headers["etag"]
    first = await http.put(url(task.id), json={"content": "first"}, headers={"If-Match": etag})
    assert first.status_code == 200, first.text
    stale = await http.put(url(task.id), json={"content": "stale"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    body = stale.json()
    assert body["error"] == "precondition_failed"
    assert (body["status"], body["version"]) == ("pending", 2)
    assert stale.headers["etag"] == '"2"'
    after = await admin.get(task.id)
    assert (after.payload.content, after.version) == ("first", 2)
    assert [e.kind for e in await admin.events(task.id)] == ["created", "edited"]
    # The current tag, one of a list, a weak form of it, and * all match.
    for template in ('"{v}"', '"99", "{v}"', 'W/"{v}"', "*"):
        header = template.format(v=(await admin.get(task.id)).version)
        ok = await http.put(url(task.id), json={"content": header}, headers={"If-Match": header})
        assert ok.status_code == 200, (header, ok.text)
    # Tags that name no version never match.
    for header in ("garbage", '"abc"', "1"):
        refused = await http.put(url(task.id), json={"content": "no"}, headers={"If-Match": header})
        assert refused.status_code == 412, header
    assert (await admin.get(task.id)).payload.content == "*"


async def test_if_match_is_checked_before_the_status(clients: Any) -> None:
    """A claimed post with a stale tag: 412 (the caller's view is stale); a current tag: 409."""
    admin, _, (http, _) = clients
    task = await admin.schedule("s1", "g@g.us", Payload.text("original"), PAST)
    etag = (await http.get(url(task.id))).headers["etag"]
    [claimed] = await admin.claim_due(worker_id="w")
    stale = await http.put(url(task.id), json={"content": "x"}, headers={"If-Match": etag})
    assert (stale.status_code, stale.json()["status"]) == (412, "processing")
    current = f'"{claimed.version}"'
    conflict = await http.put(url(task.id), json={"content": "x"}, headers={"If-Match": current})
    assert (conflict.status_code, conflict.json()["status"]) == (409, "processing")
    gone = await http.delete(url(task.id), headers={"If-Match": etag})
    assert gone.status_code == 412
    assert (await admin.get(task.id)).status is TaskStatus.PROCESSING


async def test_delete_honours_if_match(clients: Any) -> None:
    admin, _, (http, _) = clients
    task = await admin.schedule("s1", "g@g.us", Payload.text("original"), LATER)
    await admin.edit(task.id, payload=Payload.text("moved on"))
    stale = await http.delete(url(task.id), headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.json()["version"] == 2
    assert (await admin.get(task.id)).status is TaskStatus.PENDING
    done = await http.delete(url(task.id), headers={"If-Match": '"2"'})
    assert (done.status_code, done.json()["status"]) == (200, "cancelled")


async def test_concurrent_puts_of_different_fields_both_land(clients: Any) -> None:
    """Two moderators at once, one the caption, one the media URL: no change is lost."""
    admin, stores, (one, two) = clients
    for round_ in range(ROUNDS):
        task = await admin.schedule(
            "s1",
            f"{round_}@g.us",
            Payload.image("https://example.com/original.png", caption="original"),
            LATER,
        )
        caption, media = f"caption {round_}", f"https://example.com/{round_}.png"
        a, b = await asyncio.gather(
            one.put(url(task.id), json={"content": caption}),
            two.put(url(task.id), json={"mediaUrl": media}),
        )
        final = await admin.get(task.id)
        edits = [e.kind for e in await admin.events(task.id)].count("edited")
        for response in (a, b):
            assert response.status_code in {200, 409}, response.text
        if a.status_code == b.status_code == 200:
            assert (final.payload.content, final.payload.media_url) == (caption, media)
            assert edits == 2
        else:  # exactly one caller is told, and only the other's change is there
            assert {a.status_code, b.status_code} == {200, 409}
            assert edits == 1
            expected = (caption, "https://example.com/original.png")
            if b.status_code == 200:
                expected = ("original", media)
            assert (final.payload.content, final.payload.media_url) == expected
        assert final.version == 1 + edits
    # The race was real: the stores met concurrent versions and merged again.
    assert sum(store.conflicts for store in stores) > 0


async def test_concurrent_puts_with_the_same_if_match_one_wins_one_412(clients: Any) -> None:
    admin, _, (one, two) = clients
    for round_ in range(ROUNDS // 2):
        task = await admin.schedule(
            "s1", f"{round_}@g.us", Payload.image("https://example.com/o.png", "o"), LATER
        )
        tag = {"If-Match": f'"{task.version}"'}
        a, b = await asyncio.gather(
            one.put(url(task.id), json={"content": "a"}, headers=tag),
            two.put(url(task.id), json={"mediaUrl": "https://example.com/b.png"}, headers=tag),
        )
        assert sorted([a.status_code, b.status_code]) == [200, 412]
        final = await admin.get(task.id)
        assert final.version == 2
        if a.status_code == 200:
            assert (final.payload.content, final.payload.media_url) == (
                "a",
                "https://example.com/o.png",
            )
        else:
            assert (final.payload.content, final.payload.media_url) == (
                "o",
                "https://example.com/b.png",
            )
