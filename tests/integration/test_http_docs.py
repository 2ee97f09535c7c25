"""The Python code in docs/http.md runs, and the apps it builds behave as the page says."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

PAGE = Path(__file__).parents[2] / "docs" / "http.md"
GROUP = "120363000000000001@g.us"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.DOTALL)


@pytest.fixture
def page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Run every block of the page in order, in one namespace, in an empty directory."""
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs_http"}
    for block in python_blocks():
        exec(compile(block, str(PAGE), "exec"), namespace)  # noqa: S102 - our own docs
    return namespace


def test_the_page_has_python_blocks():
    assert len(python_blocks()) >= 2


async def test_the_mounted_router_of_the_page_authenticates_and_scopes(page):
    app = page["app"]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await http.get("/health")).json() == {"status": "ok"}
            base = f"/api/sessions/shop-session/groups/{GROUP}/engagement"
            anonymous = await http.get(f"{base}/history")
            assert anonymous.status_code == 401
            assert anonymous.json()["error"] == "unauthorized"
            alice = {"Authorization": "Bearer token-of-alice"}
            created = await http.post(
                base,
                json={"mediaType": "text", "content": "Hi", "scheduledAt": "2999-01-01T00:00:00Z"},
                headers=alice,
            )
            assert created.status_code == 201
            other = await http.get(
                "/api/sessions/shop-session/groups/999@g.us/engagement/history", headers=alice
            )
            assert other.status_code == 403
            history = await http.get(
                f"{base}/history?startDate=2999-01-01&endDate=2999-01-01", headers=alice
            )
            assert history.json()["total"] == 1


async def test_the_standalone_app_of_the_page_serves_its_openapi_document(page):
    app = page["standalone"]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await http.get("/openapi.json")).status_code == 200
            missing = await http.get("/nowhere")
            assert missing.json() == {"error": "not_found", "message": "Not Found"}
    await page["standalone_store"].close()
