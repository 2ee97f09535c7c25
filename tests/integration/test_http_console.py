"""The console's serving (headers, mount, files) and the connection endpoint, over ASGI."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi import FastAPI

from engagequeue import SQLiteTaskStore
from engagequeue.http import create_app, create_router

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

GROUP = "120363000000000001@g.us"
CONSOLE_FILES = files("engagequeue.http").joinpath("console")


@pytest.fixture
async def sqlite_store(db_path: Path) -> AsyncIterator[SQLiteTaskStore]:
    async with SQLiteTaskStore(db_path) as store:
        await store.add_session("s1")
        yield store


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_the_console_is_off_unless_asked_for(sqlite_store):
    async with client_for(create_app(sqlite_store)) as http:
        assert (await http.get("/moderation/")).status_code == 404
        assert (await http.get("/moderation/console.js")).status_code == 404


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/moderation/", "text/html"),
        ("/moderation/console.js", "text/javascript"),
        ("/moderation/console.css", "text/css"),
        ("/moderation/favicon.svg", "image/svg+xml"),
    ],
)
async def test_every_console_file_carries_the_security_headers(sqlite_store, path, kind):
    async with client_for(create_app(sqlite_store, console=True)) as http:
        response = await http.get(path)
        head = await http.head(path)
    assert response.status_code == 200
    assert head.status_code == 200
    assert response.headers["content-type"].startswith(kind)
    policy = dict(
        part.strip().split(" ", 1)
        for part in response.headers["content-security-policy"].split(";")
    )
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_the_bare_path_redirects_to_the_page_keeping_the_query(sqlite_store):
    async with client_for(create_app(sqlite_store, console=True)) as http:
        response = await http.get("/moderation", params={"session": "s1", "group": GROUP})
    assert response.status_code == 308
    assert (
        response.headers["location"] == f"moderation/?session=s1&group={GROUP.replace('@', '%40')}"
    )


async def test_the_router_serves_the_console_under_its_prefix(sqlite_store):
    app = FastAPI()
    app.include_router(create_router(sqlite_store, console=True), prefix="/bot")
    async with client_for(app) as http:
        page = await http.get("/bot/moderation/")
        script = await http.get("/bot/moderation/console.js")
    assert page.status_code == 200
    assert script.status_code == 200
    # The page reaches the API relative to itself, so the prefix carries over.
    assert 'new URL("../api/", document.baseURI)' in script.text


async def test_the_console_routes_stay_out_of_the_openapi_document(sqlite_store):
    async with client_for(create_app(sqlite_store, console=True)) as http:
        paths = (await http.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith("/moderation")]


def test_the_page_has_no_inline_script_or_style_and_no_markup_sinks():
    html = CONSOLE_FILES.joinpath("index.html").read_text(encoding="utf-8")
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts, "the page loads its script"
    assert all(" src=" in tag for tag in scripts), scripts
    assert "<style" not in html
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", html)  # nothing from another origin
    script = CONSOLE_FILES.joinpath("console.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink


async def test_the_connection_endpoint_reports_the_session_state(sqlite_store):
    url = f"/api/sessions/s1/groups/{GROUP}/connection"
    async with client_for(create_app(sqlite_store)) as http:
        first = await http.get(url)
        await sqlite_store.session_disconnected("s1")
        second = await http.get(url)
        unknown = await http.get(f"/api/sessions/nobody/groups/{GROUP}/connection")
    assert first.status_code == 200
    assert first.json() == {"sessionId": "s1", "groupId": GROUP, "connected": True}
    assert second.json()["connected"] is False
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "not_found"


async def test_the_connection_endpoint_is_behind_authorize_as_a_read(sqlite_store):
    seen = []

    def authorize(_request, action, session_id, group_id):
        seen.append((action, session_id, group_id))
        return group_id == GROUP

    async with client_for(create_app(sqlite_store, authorize=authorize)) as http:
        allowed = await http.get(f"/api/sessions/s1/groups/{GROUP}/connection")
        refused = await http.get("/api/sessions/s1/groups/other@g.us/connection")
    assert allowed.status_code == 200
    assert refused.status_code == 403
    assert set(refused.json()) == {"error", "message"}
    assert seen == [("read", "s1", GROUP), ("read", "s1", "other@g.us")]


async def test_is_connected_follows_the_session(store):
    await store.add_session("s9")
    assert await store.is_connected("s9") is True
    await store.session_disconnected("s9")
    assert await store.is_connected("s9") is False
    await store.session_connected("s9")
    assert await store.is_connected("s9") is True
