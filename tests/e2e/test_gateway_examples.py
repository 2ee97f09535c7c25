"""The gateway example bots, run as the user runs them, against fake gateways on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import pytest

import engagequeue
from fakes.evolution import FakeEvolution
from fakes.waha import FakeWaha

ROOT = Path(__file__).resolve().parents[2]
SRC = str(Path(engagequeue.__file__).resolve().parents[1])
GROUP = "120363012345678901@g.us"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _run(script: str, env: dict[str, str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "examples" / script),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": SRC, **env},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    text = out.decode()
    assert proc.returncode == 0, text
    return text


def _common_env(tmp_path: Path) -> dict[str, str]:
    return {
        "GROUP_ID": GROUP,
        "SEND_GAP": "0",
        "SEND_JITTER": "0",
        "WEBHOOK_HOST": "127.0.0.1",
        "WEBHOOK_PORT": str(_free_port()),
        "EQ_DB": str(tmp_path / "bot.sqlite3"),
    }


@pytest.mark.slow
async def test_the_waha_example_sends_its_post_through_waha(tmp_path: Path) -> None:
    async with FakeWaha(engine="NOWEB") as waha:
        waha.add_session("default")
        out = await _run(
            "waha_bot.py",
            {
                **_common_env(tmp_path),
                "WAHA_URL": waha.url,
                "WAHA_API_KEY": "test-key",
                "WAHA_HMAC_KEY": "hook-key",
            },
        )
    assert [(d.session, d.chat_id) for d in waha.delivered] == [("default", GROUP)]
    assert "text: completed" in out
    assert waha.violations == []


@pytest.mark.slow
async def test_the_evolution_example_sends_its_post_through_evolution(tmp_path: Path) -> None:
    async with FakeEvolution() as evolution:
        evolution.add_instance("default")
        out = await _run(
            "evolution_bot.py",
            {
                **_common_env(tmp_path),
                "EVOLUTION_URL": evolution.url,
                "EVOLUTION_API_KEY": "test-key",
                "WEBHOOK_API_KEY": "instance-token",
            },
        )
    assert [(d.session, d.chat_id) for d in evolution.delivered] == [("default", GROUP)]
    assert "text: completed" in out
    assert evolution.violations == []
