"""The store benchmark runs end to end and its drain audit finds no duplicate and no lost task.

Only the shape of the report and the audit counts are checked: timings depend on the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "store_bench.py"


@pytest.mark.slow  # spawns five processes; a few seconds
def test_quick_benchmark_prints_a_json_report_with_no_duplicate_or_lost_task() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--quick",
            "--durability",
            "normal",
            "--no-reference",
            "--completes",
            "concurrent",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)

    assert report["machine"]["cpu_count"] >= 1
    assert report["parameters"]["quick"] is True
    drains = report["figures"]["drain"]
    assert sorted(d["processes"] for d in drains) == [1, 4]
    for drain in drains:
        assert drain["tasks"] == report["parameters"]["drain_tasks"]
        assert drain["completed_calls"] == drain["tasks"]
        assert drain["errors"] == 0, drain["error_samples"]
        assert drain["duplicates"] == 0
        assert drain["lost"] == 0
        assert drain["tasks_without_exactly_one_claim_and_completion"] == 0
        assert drain["out_of_order"] == 0
        assert drain["tasks_per_s"] > 0
    assert report["targets"]["drain_duplicates"] == {
        "value": 0,
        "max": 0,
        "unit": "tasks",
        "pass": True,
    }
    assert report["targets"]["drain_lost"]["pass"] is True

    schedule = report["figures"]["schedule"]
    assert schedule["one_by_one"]["tasks"] == report["parameters"]["schedule_one_by_one"]
    assert schedule["schedule_many"]["tasks"] == report["parameters"]["schedule_many"]
    together = schedule["one_call_per_task_100_callers"]
    assert (together["tasks"], together["callers"]) == (schedule["one_by_one"]["tasks"], 100)
    history = report["figures"]["history"]
    assert history["rows"] == report["parameters"]["history_rows"]
    assert 0 < history["p50_ms"] <= history["p95_ms"] <= history["max_ms"]
    first = history["first_pass"]
    assert 0 < first["p50_ms"] <= first["p95_ms"] <= first["max_ms"]
    for verdict in report["targets"].values():
        assert isinstance(verdict["pass"], bool)


DISPATCH = SCRIPT.parent / "dispatch.py"


@pytest.mark.slow  # a few seconds
def test_dispatch_benchmark_reports_in_order_sends_lag_and_its_reference(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(DISPATCH),
            *("--tasks", "400", "--groups", "20", "--concurrency", "8,50"),
            *("--lag-posts", "20", "--dir", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [run["concurrency"] for run in report["end_to_end"]] == [8, 50]
    for run in report["end_to_end"]:
        assert run["tasks"] == 400
        assert run["in_order_per_group"] is True
        assert run["tasks_per_s"] > 0
    assert report["store_drain"]["tasks"] == 400
    assert report["lag"]["posts"] == 20
    assert report["lag"]["early"] == 0
    assert report["reference"]["tasks"] == 400
    assert report["targets"]["end_to_end_tasks_per_s"]["value"] == max(
        run["tasks_per_s"] for run in report["end_to_end"]
    )
    assert isinstance(report["targets"]["lag_p99_ms"]["pass"], bool)
