"""examples/compose_and_schedule.py run as a subprocess against the fake model server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engagequeue import MediaType, SQLiteTaskStore
from fakes_openai import Fail, FakeChatServer, Reply, running_server

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "compose_and_schedule.py"
SALE = "https://shop.example.com/spring-sale"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeChatServer]:
    with running_server() as fake:
        yield fake


def run_example(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


async def test_the_example_composes_and_schedules_into_sqlite(
    server: FakeChatServer, tmp_path: Path
) -> None:
    server.script(
        Reply("*Soldes* sur [le trail](https://evil.example/x)"), Reply(f"*Soldes !*\n{SALE}")
    )
    db = tmp_path / "posts.sqlite3"
    result = run_example(
        "--base-url", server.base_url, "--model", "llama3.1", "--db", str(db),
        "--at", "2030-05-04T09:30:00+02:00", "--group", "g1@g.us",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"*Soldes !*\n{SALE}" in result.stdout
    assert '"ai": true' in result.stdout
    assert len(server.requests) == 2
    assert server.requests[0].body["model"] == "llama3.1"
    assert server.requests[0].headers["authorization"] == "Bearer not-needed"
    async with SQLiteTaskStore(db) as store:
        page = await store.history("default", "g1@g.us")
        (task,) = page.items
        assert task.payload.content == f"*Soldes !*\n{SALE}"
        assert task.scheduled_at.isoformat() == "2030-05-04T07:30:00+00:00"
        (created,) = await store.events(task.id)
        assert created.detail["ai"] is True
        assert created.detail["attempts"] == 2
        assert created.detail["repaired"] is False


async def test_the_example_schedules_a_repaired_image_caption(
    server: FakeChatServer, tmp_path: Path
) -> None:
    server.script(then=Reply("Les soldes : https://evil.example/x"))
    db = tmp_path / "posts.sqlite3"
    result = run_example(
        "--base-url", server.base_url, "--model", "m", "--db", str(db), "--api-key", "sk-e2e",
        "--media-url", "https://cdn.example.com/spring.jpg", "--max-attempts", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "sk-e2e" not in result.stdout + result.stderr
    assert server.requests[0].headers["authorization"] == "Bearer sk-e2e"
    async with SQLiteTaskStore(db) as store:
        (task,) = (await store.history("default", "120363000000000000@g.us")).items
        assert task.payload.media_type is MediaType.IMAGE
        assert "evil.example" not in (task.payload.content or "")
        assert SALE in (task.payload.content or "")
        (created,) = await store.events(task.id)
        assert created.detail["repaired"] is True


async def test_the_example_exits_non_zero_and_schedules_nothing_when_the_server_fails(
    server: FakeChatServer, tmp_path: Path
) -> None:
    server.script(then=Fail(500, "model crashed", retry_after_ms=1))
    db = tmp_path / "posts.sqlite3"
    result = run_example(
        "--base-url", server.base_url, "--model", "m", "--db", str(db), "--max-retries", "1",
    )  # fmt: skip
    assert result.returncode == 2
    assert "the model server failed" in result.stderr
    assert len(server.requests) == 2
    async with SQLiteTaskStore(db) as store:
        assert (await store.history("default", "120363000000000000@g.us")).total == 0
