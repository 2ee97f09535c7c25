"""examples/http_app.py served by uvicorn on loopback: tokens, scopes and the SQLite file."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from engagequeue import SQLiteTaskStore

ROOT = Path(__file__).parents[2]
GROUP_A = "111@g.us"
GROUP_B = "222@g.us"


@pytest.fixture
def served(tmp_path: Path):
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "ENGAGEQUEUE_DB": str(tmp_path / "app.sqlite3"),
        "ENGAGEQUEUE_TOKENS": json.dumps(
            {"token-a": [f"s1/{GROUP_A}"], "token-b": [f"s1/{GROUP_B}"]}
        ),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "examples.http_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = None
        deadline = time.monotonic() + 30
        assert process.stderr is not None
        while url is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line and process.poll() is not None:
                break
            match = re.search(r"running on (http://127\.0\.0\.1:\d+)", line)
            if match:
                url = match[1]
        assert url, "uvicorn did not start"
        yield url, tmp_path / "app.sqlite3"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()


async def test_the_example_app_serves_scoped_moderation_over_sqlite(served):
    url, db = served
    a = {"Authorization": "Bearer token-a"}
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        assert (await http.get("/health")).json() == {"status": "ok"}

        anonymous = await http.get(f"/api/sessions/s1/groups/{GROUP_A}/engagement/history")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert anonymous.json()["error"] == "unauthorized"

        created = await http.post(
            f"/api/sessions/s1/groups/{GROUP_A}/engagement",
            json={"mediaType": "text", "content": "Hello A", "scheduledAt": "2999-01-01T09:00:00Z"},
            headers=a,
        )
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]

        other = await http.get(f"/api/sessions/s1/groups/{GROUP_B}/engagement/history", headers=a)
        assert other.status_code == 403
        b = {"Authorization": "Bearer token-b"}
        hidden = await http.get(f"/api/moderation/engagement/{task_id}", headers=b)
        assert hidden.status_code == 404

        edited = await http.put(
            f"/api/moderation/engagement/{task_id}", json={"content": "Hello again"}, headers=a
        )
        assert edited.status_code == 200
        listed = await http.get(f"/api/sessions/s1/groups/{GROUP_A}/engagement/history", headers=a)
        assert [t["content"] for t in listed.json()["items"]] == ["Hello again"]
        assert (await http.get("/openapi.json")).status_code == 200

        # A post due now is sent by the app's Scheduler, and then can never change.
        soon = (datetime.now(UTC) + timedelta(seconds=0.5)).isoformat()
        due = await http.post(
            f"/api/sessions/s1/groups/{GROUP_A}/engagement",
            json={"mediaType": "text", "content": "Going out now", "scheduledAt": soon},
            headers=a,
        )
        due_id = due.json()["id"]
        status = "pending"
        deadline = time.monotonic() + 20
        while status != "completed" and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            status = (await http.get(f"/api/moderation/engagement/{due_id}", headers=a)).json()[
                "status"
            ]
        assert status == "completed"
        late = await http.put(
            f"/api/moderation/engagement/{due_id}", json={"content": "changed"}, headers=a
        )
        assert late.status_code == 409
        assert late.json()["status"] == "completed"
        trail = await http.get(f"/api/moderation/engagement/{due_id}/events", headers=a)
        assert [e["kind"] for e in trail.json()] == ["created", "claimed", "sending", "completed"]

    async with SQLiteTaskStore(db) as store:
        assert (await store.get(task_id)).payload.content == "Hello again"
