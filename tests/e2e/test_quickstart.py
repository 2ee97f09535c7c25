# Copyright 2026 engagequeue developers. Licensed under the MIT license.
"""examples/quickstart.py runs as documented: it sends its posts, prints them and exits."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_quickstart(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), *args],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.slow
def test_quickstart_sends_three_posts_in_order_and_prints_the_history(tmp_path):
    db = tmp_path / "qs.sqlite3"
    done = run_quickstart(str(db))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    sent = [line for line in lines if " shop-bot -> 120363021234567890@g.us " in line]
    kinds = [re.search(r"\[(\w+)\]", line).group(1) for line in sent]
    assert kinds == ["text", "image", "text"]
    assert "Good morning!" in sent[0]
    assert "new-arrivals.jpg | New arrivals are in" in sent[1]
    history = [line for line in lines if "attempts=" in line]
    assert len(history) == 3
    assert all("completed attempts=1 message_id=console-" in line for line in history)
    assert lines[-1] == "audit trail of the last post: created, claimed, sending, completed"
    assert db.exists()


@pytest.mark.slow
def test_quickstart_runs_without_arguments_on_a_temporary_file():
    done = run_quickstart()
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("completed attempts=1") == 3
