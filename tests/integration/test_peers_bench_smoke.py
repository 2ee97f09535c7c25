"""The side-by-side benchmark runs end to end, and nothing it drains is lost or done twice.

Only the report's shape and its audit counts are checked: timings depend on the machine.
Our side runs with ``--no-peers`` (no network, no peer environment); the peers' run needs
their throw-away environment, built from the package registry on first use, and is skipped
with the reason when it cannot be built.
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

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "peers.py"
PEER_VENV_UNAVAILABLE = 3  # peers.py's exit status when the peer environment cannot be built


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "ENGAGEQUEUE_BENCH_DSN": POSTGRES_DSN},
    )


def report_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["machine"]["cpu_count"] >= 1
    assert report["parameters"]["quick"] is True
    assert len(report["machine"]["load_average_1m_after_each_round"]) == 1
    return report


def rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["figure"]: row for row in report["table"]}


def assert_sqlite_side(report: dict[str, Any]) -> None:
    p, runs = report["parameters"], report["runs"]
    [schedule] = runs["ours.sqlite_schedule_one_by_one"]
    assert schedule["one_by_one"]["tasks"] == p["schedule_one_by_one"]
    assert schedule["schedule_many"]["tasks"] == p["schedule_many"]
    for durability, tasks in (("normal", p["drain_tasks"]), ("full", p["drain_tasks_full"])):
        [drain] = runs[f"ours.sqlite_drain_sequential_{durability}"]
        assert (drain["durability"], drain["completes"], drain["processes"]) == (
            durability,
            "sequential",
            1,
        )
        assert drain["tasks"] == drain["completed_calls"] == tasks
        assert drain["errors"] == 0, drain["error_samples"]
        assert drain["lost"] == drain["duplicates"] == drain["out_of_order"] == 0
        assert drain["tasks_without_exactly_one_claim_and_completion"] == 0
        [bare] = runs[f"bare.sqlite_drain_sequential_{durability}"]
        assert bare["tasks"] == p[f"reference_tasks_{durability}"]
    for concurrency in ("", "_concurrency_200"):
        [dispatch] = runs[f"ours.sqlite_dispatch_scheduler{concurrency}"]
        assert dispatch["tasks"] == p["dispatch_tasks"]
        assert dispatch["in_order_per_group"] is True
    table = rows(report)
    for figure in ("sqlite_schedule_one_by_one", "sqlite_schedule_many"):
        assert table[figure]["ours"] > 0
        assert table[figure]["bare"] > 0
        assert table[figure]["ratio_to_bare"] == round(
            table[figure]["ours"] / table[figure]["bare"], 3
        )


def assert_postgres_side(report: dict[str, Any]) -> None:
    p, runs = report["parameters"], report["runs"]
    for processes in p["pg_processes"]:
        for side in ("ours", "bare"):
            [drain] = runs[f"{side}.postgres_drain_{processes}p"]
            assert drain["processes"] == processes
            assert drain["tasks"] == p["pg_tasks"]
            assert drain["lost"] == drain["duplicates"] == 0
            assert drain["cpu_us_per_task"] > 0
        [ours] = runs[f"ours.postgres_drain_{processes}p"]
        assert ours["completed_calls"] == p["pg_tasks"]
        assert ours["errors"] == 0, ours["error_samples"]
        assert len(ours["per_worker_completed"]) == processes
    audit = report["postgres_audit"]
    assert audit["processes"] == p["pg_audit_processes"] == 8
    assert audit["completed_calls"] == audit["tasks"] == p["pg_tasks"]
    assert audit["errors"] == 0, audit["error_samples"]
    assert audit["lost"] == audit["duplicates"] == 0
    assert audit["not_completed"] == 0
    assert audit["tasks_without_exactly_one_claim_and_completion"] == 0
    cpu = rows(report)["postgres_drain_4p_cpu_us_per_task"]
    assert isinstance(cpu["met"], bool)


@pytest.mark.slow  # several processes; tens of seconds
def test_our_sqlite_side_runs_without_peers_and_loses_nothing() -> None:
    report = report_of(run("--no-peers", "--parts", "sqlite"))
    assert report["peers"] == {"skipped": "--no-peers"}
    assert_sqlite_side(report)
    for row in report["table"]:
        assert row["peer"] is None
        assert row.get("met") is None  # no peer, no verdict


@pytest.mark.slow
@pytest.mark.postgres
def test_our_postgres_side_runs_without_peers_and_eight_processes_lose_nothing() -> None:
    require_postgres()
    report = report_of(run("--no-peers", "--parts", "postgres"))
    assert "postgres_skipped" not in report
    assert_postgres_side(report)


@pytest.mark.slow
@pytest.mark.postgres
def test_peers_run_side_by_side_and_their_audits_are_clean() -> None:
    require_postgres()
    result = run()
    if result.returncode == PEER_VENV_UNAVAILABLE:
        pytest.skip(f"the peers' virtual environment cannot be built here: {result.stderr.strip()}")
    report = report_of(result)
    assert {"huey", "litequeue", "pgqueuer", "asyncpg", "venv"} <= set(report["peers"])
    assert_sqlite_side(report)
    assert_postgres_side(report)
    p, runs = report["parameters"], report["runs"]
    [put] = runs["peer.sqlite_schedule_one_by_one"]
    assert put["stored"] == put["tasks"] == p["schedule_one_by_one"]
    [batch] = runs["peer.sqlite_schedule_many"]
    assert batch["stored"] == batch["tasks"] == p["schedule_many"]
    for name in (
        "sqlite_drain_sequential_normal",
        "sqlite_drain_sequential_full",
        "sqlite_dispatch_scheduler",
    ):
        [huey] = runs[f"peer.{name}"]
        assert huey["peer"] == "huey"
        assert huey["executed"] == huey["tasks"]
        assert huey["lost"] == huey["duplicates"] == huey["left_in_queue"] == 0
    for processes in p["pg_processes"]:
        [pgq] = runs[f"peer.postgres_drain_{processes}p"]
        assert (pgq["peer"], pgq["processes"]) == ("pgqueuer", processes)
        assert pgq["executed"] == pgq["logged_successful"] == pgq["tasks"] == p["pg_tasks"]
        assert pgq["lost"] == pgq["duplicates"] == pgq["left_in_queue"] == 0
    table = rows(report)
    for figure, row in table.items():
        if "target" in row and figure != "postgres_drain_4p_cpu_us_per_task":
            assert row["ratio_to_peer"] == round(row["ours"] / row["peer"], 3)
            assert row["met"] is (row["ratio_to_peer"] >= row["min_ratio"])
