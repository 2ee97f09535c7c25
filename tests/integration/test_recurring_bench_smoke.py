"""The recurring-posts benchmark runs end to end on both engines and its audits find nothing wrong.

Only the shape of the report and the audit counts are checked: timings depend on the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "recurring_bench.py"


def check_claims(claims: dict[str, Any], tasks: int) -> None:
    assert sorted(claims) == ["limit_1", "limit_50"]
    for name, run in claims.items():
        limit = int(name.removeprefix("limit_"))
        for kind in ("one_off", "occurrence"):
            figures = run[kind]
            assert (figures["kind"], figures["limit"], figures["tasks"]) == (kind, limit, tasks)
            assert figures["claimed"] == tasks * figures["rounds"]
            assert figures["duplicates"] == 0
            assert figures["lost"] == 0
            assert figures["calls"] >= -(-tasks // limit) * figures["rounds"]
            latency = figures["per_call"]
            assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["max_ms"]
            assert figures["tasks_per_s"] > 0
        # Every claimed occurrence created the following one, once; one-off tasks none.
        assert run["one_off"]["following_created"] == 0
        assert run["occurrence"]["following_created"] == run["occurrence"]["claimed"]
        assert run["occurrence"]["recurrences_without_exactly_one_pending_next"] == 0
        assert set(run["occurrence_vs_one_off"]) == {
            "tasks_per_s_ratio",
            "p50_ratio",
            "extra_us_per_task",
        }


def check_adds(adds: dict[str, Any], calls: int, callers: int) -> None:
    for name, expected_callers in (
        ("add_recurrence_one_by_one", 1),
        (f"add_recurrence_{callers}_callers", callers),
    ):
        run = adds[name]
        assert (run["calls"], run["callers"]) == (calls, expected_callers)
        assert run["errors"] == 0, run["error_samples"]
        assert run["duplicates"] == 0
        assert run["stored"] == run["pending_occurrences"] == calls
        assert run["recurrences_without_exactly_one_pending_occurrence"] == 0
        assert run["per_s"] > 0
    assert adds["schedule_one_by_one"]["errors"] == 0
    assert adds["add_recurrence_vs_schedule_one_by_one"] > 0


@pytest.mark.slow  # a few seconds per engine
def test_quick_recurring_benchmark_reports_both_engines_with_nothing_duplicated() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)

    machine = report["machine"]
    assert machine["cpu_count"] >= 1
    assert {"load_average_1m_at_start", "load_average_1m_at_end", "python", "sqlite"} <= set(
        machine
    )
    params = report["parameters"]
    assert params["quick"] is True
    assert sorted(report["figures"]) == ["postgres", "sqlite"]
    for engine, figures in report["figures"].items():
        if "skipped" in figures:
            continue
        assert sorted(figures) == ["add", "claim"], engine
        check_claims(figures["claim"], params["claim_tasks"])
        check_adds(figures["add"], params["add_calls"], params["add_callers"])
    assert "skipped" not in report["figures"]["sqlite"]
    skipped = report["figures"]["postgres"].get("skipped")
    if skipped is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must benchmark PostgreSQL too: {skipped}")
        pytest.skip(
            f"PostgreSQL part skipped ({skipped}): start PostgreSQL on 127.0.0.1:5432 "
            "(trust auth, database 'test') or set ENGAGEQUEUE_TEST_DSN; CI runs it"
        )
    assert "postgresql" in machine
