"""The recurring endpoints over the real app: create, list, read, edit, pause, resume, end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from engagequeue import SQLiteTaskStore
from engagequeue.http import create_app

GROUP = "/api/sessions/s1/groups/g1@g.us/engagement"
ONE = "/api/moderation/engagement/recurring"
WEEKLY = "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0"
MONDAY = datetime(2999, 3, 4, 8, 0, tzinfo=UTC)


def _instant(value: object) -> datetime:
    assert isinstance(value, str)
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value)


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SQLiteTaskStore]:
    async with SQLiteTaskStore(db_path) as opened:
        await opened.add_session("s1")
        yield opened


def _client(store: SQLiteTaskStore, authorize: object = None) -> httpx.AsyncClient:
    app = create_app(store, authorize=authorize)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def _create(http: httpx.AsyncClient, **body: object) -> dict[str, object]:
    body = {
        "mediaType": "text",
        "content": "Monday tips",
        "rule": WEEKLY,
        "timezone": "Europe/Paris",
        "startsAt": "2999-03-01T00:00:00+01:00",
        **body,
    }
    response = await http.post(f"{GROUP}/recurring", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_list_read_and_the_pending_occurrence(store: SQLiteTaskStore) -> None:
    async with _client(store) as http:
        made = await _create(http)
        assert made["status"] == "active"
        assert made["timezone"] == "Europe/Paris"
        # 2999-03-04 is the first Monday at or after the start; 09:00 Paris is 08:00 UTC.
        assert _instant(made["nextAt"]) == MONDAY
        listed = (await http.get(f"{GROUP}/recurring")).json()
        assert [r["id"] for r in listed] == [made["id"]]
        read = await http.get(f"{ONE}/{made['id']}")
        assert read.status_code == 200
        assert read.json() == made
        page = (await http.get(f"{GROUP}/history")).json()
        assert [t["recurrenceId"] for t in page["items"]] == [made["id"]]
        assert _instant(page["items"][0]["scheduledAt"]) == MONDAY


async def test_bad_rule_or_zone_is_422_naming_the_field_and_writes_nothing(
    store: SQLiteTaskStore,
) -> None:
    async with _client(store) as http:
        for body, field in [
            ({"rule": "FREQ=SECONDLY"}, "rule"),
            ({"rule": "FREQ=DAILY;DTSTART=20260101T000000Z"}, "rule"),
            ({"timezone": "Mars/Olympus"}, "timezone"),
            ({"startsAt": "2999-03-01T00:00:00"}, "startsAt"),
        ]:
            response = await http.post(
                f"{GROUP}/recurring",
                json={
                    "mediaType": "text",
                    "content": "x",
                    "rule": WEEKLY,
                    "timezone": "Europe/Paris",
                    **body,
                },
            )
            assert response.status_code == 422, (body, response.text)
            assert field in response.text, (body, response.text)
        assert (await http.get(f"{GROUP}/recurring")).json() == []
        assert (await http.get(f"{GROUP}/history")).json()["total"] == 0


async def test_edit_pause_resume_and_end(store: SQLiteTaskStore) -> None:
    async with _client(store) as http:
        made = await _create(http)
        url = f"{ONE}/{made['id']}"
        edited = await http.put(url, json={"content": "New tips"})
        assert edited.status_code == 200, edited.text
        [pending] = (await http.get(f"{GROUP}/history", params={"status": "pending"})).json()[
            "items"
        ]
        assert pending["content"] == "New tips"

        paused = await http.post(f"{url}/pause")
        assert (paused.status_code, paused.json()["status"]) == (200, "paused")
        assert (await http.get(f"{GROUP}/history", params={"status": "pending"})).json()[
            "total"
        ] == 0
        resumed = await http.post(f"{url}/resume")
        assert (resumed.status_code, resumed.json()["status"]) == (200, "active")
        assert (await http.get(f"{GROUP}/history", params={"status": "pending"})).json()[
            "total"
        ] == 1

        ended = await http.delete(url)
        assert (ended.status_code, ended.json()["status"]) == (200, "ended")
        assert (await http.get(f"{GROUP}/history", params={"status": "pending"})).json()[
            "total"
        ] == 0
        again = await http.post(f"{url}/resume")
        assert again.status_code == 409, again.text
        kinds = [e["kind"] for e in (await http.get(f"{url}/events")).json()]
        assert kinds[0] == "created"
        assert {"edited", "paused", "resumed", "ended"} <= set(kinds)


async def test_a_refused_group_is_403_and_its_recurrences_404(store: SQLiteTaskStore) -> None:
    async with _client(store) as http:
        made = await _create(http)

    def only_other_groups(request: object, action: str, session_id: str, group_id: str) -> bool:
        return group_id != "g1@g.us"

    async with _client(store, only_other_groups) as http:
        assert (await http.get(f"{GROUP}/recurring")).status_code == 403
        assert (await http.get(f"{ONE}/{made['id']}")).status_code == 404
        assert (await http.post(f"{ONE}/{made['id']}/pause")).status_code == 404
        assert (await http.get(f"{ONE}/unknown-id")).status_code == 404
    assert (await store.get_recurrence(str(made["id"]))).status.value == "active"


async def test_history_filters_one_recurrences_occurrences(store: SQLiteTaskStore) -> None:
    async with _client(store) as http:
        mondays = await _create(http)
        fridays = await _create(http, rule="FREQ=WEEKLY;BYDAY=FR;BYHOUR=9;BYMINUTE=0")
        one_off = await http.post(
            GROUP,
            json={"mediaType": "text", "content": "once", "scheduledAt": "2999-03-05T10:00:00Z"},
        )
        assert one_off.status_code == 201, one_off.text
        everything = (await http.get(f"{GROUP}/history")).json()
        assert everything["total"] == 3
        for made in (mondays, fridays):
            page = (await http.get(f"{GROUP}/history", params={"recurrenceId": made["id"]})).json()
            assert page["total"] == 1
            assert [t["recurrenceId"] for t in page["items"]] == [made["id"]]
            assert _instant(page["items"][0]["scheduledAt"]) == _instant(made["nextAt"])
        unknown = await http.get(f"{GROUP}/history", params={"recurrenceId": "661a0000"})
        assert unknown.json()["total"] == 0
        bad = await http.get(f"{GROUP}/history", params={"recurrenceId": "  "})
        assert bad.status_code == 422, bad.text
        assert "recurrenceId" in bad.text
        assert "recurrence_id" not in bad.text
