"""The cross-process lag benchmark runs end to end: every post it schedules is sent exactly once.

Only the report's shape and its audit counts are checked, never a lag: timings depend on
the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from markdown_docs import require_postgres
from store_support import POSTGRES_DSN

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "cross_process_lag.py"


def lag_report(engine: str, tmp_path: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--engines", engine, "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "ENGAGEQUEUE_BENCH_DSN": POSTGRES_DSN},
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["parameters"]["quick"] is True
    assert report["parameters"]["poll_interval"] == 30.0
    [name] = report["engines"]
    assert name == engine
    found: dict[str, Any] = report["engines"][engine]
    posts = report["parameters"]["posts"]
    runs = found["runs"]
    assert sorted((r["mode"], r["due"]) for r in runs) == [
        ("cross_process", "ahead"),
        ("cross_process", "now"),
        ("in_process", "ahead"),
        ("in_process", "now"),
    ]
    for run in runs:
        assert run["posts"] == run["sent"] == posts
        assert run["lost"] == run["duplicates"] == run["early"] == 0
        assert run["p50_ms"] <= run["p99_ms"] <= run["max_ms"]
        parts = (run["schedule_call"], run["after_the_call_returned"])
        if run["due"] == "now":
            assert all(part["p50_ms"] <= part["max_ms"] for part in parts)
        else:
            assert parts == (None, None)
    assert found["idle"]["sent"] == 0
    assert found["idle"]["cpu_seconds"] >= 0
    assert found["idle"]["seconds"] >= report["parameters"]["idle_seconds"]
    for target in found["targets"].values():
        assert isinstance(target["pass"], bool)
    assert found["targets"]["cross_process_p99_ms"]["value"] == max(
        r["p99_ms"] for r in runs if r["mode"] == "cross_process"
    )
    return found


@pytest.mark.slow  # two processes, a few seconds per run
def test_sqlite_posts_scheduled_by_another_process_are_each_sent_once(tmp_path: Path) -> None:
    found = lag_report("sqlite", tmp_path)
    assert found["idle"]["statements"] is None


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_posts_scheduled_by_another_process_are_each_sent_once(tmp_path: Path) -> None:
    require_postgres()
    found = lag_report("postgres", tmp_path)
    idle = found["idle"]
    assert idle["statements"] >= 0
    assert idle["server_backends"] >= 1  # the pool's and the listener's connections
    assert 0 <= idle["server_backends_active_in_window"] <= idle["server_backends"]
