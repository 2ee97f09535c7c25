"""The state machine table agrees with itself and with the statuses."""

from __future__ import annotations

import sqlite3

import pytest

from engagequeue import TaskStatus
from engagequeue._state import (
    EVENT_KINDS,
    FINAL_STATUSES,
    RETRY_SQL,
    TRANSITIONS,
    allowed_moves,
    attempts_remain,
)


def test_no_operation_leaves_a_final_status() -> None:
    assert all(t.source not in FINAL_STATUSES for t in TRANSITIONS.values())
    assert {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED} == FINAL_STATUSES


def test_every_status_is_reachable_from_pending() -> None:
    reached = {TaskStatus.PENDING}
    for _ in TaskStatus:
        reached |= {to for source, to in allowed_moves() if source in reached}
    assert reached == set(TaskStatus)


def test_every_transition_records_a_known_event_kind() -> None:
    kinds = {t.event for t in TRANSITIONS.values()}
    # created has no source status; retried is how a fail back to pending is recorded;
    # sending records that a processing task's send starts, without a status change.
    assert kinds | {"created", "retried", "sending"} == EVENT_KINDS


def test_attempts_remain_only_while_one_more_failure_would_leave_an_attempt() -> None:
    assert attempts_remain(0, 3)
    assert attempts_remain(1, 3)
    assert not attempts_remain(2, 3)
    assert not attempts_remain(0, 1)


def test_the_stores_retry_sql_is_the_same_rule_as_attempts_remain() -> None:
    conn = sqlite3.connect(":memory:")
    for attempts in range(6):
        for max_attempts in range(1, 6):
            (sql_says,) = conn.execute(
                f"SELECT {RETRY_SQL} FROM (SELECT ? AS attempts, ? AS max_attempts)",
                (attempts, max_attempts),
            ).fetchone()
            assert bool(sql_says) is attempts_remain(attempts, max_attempts)


def test_status_sql_names_the_single_target_or_the_retry_condition() -> None:
    assert TRANSITIONS["cancel"].status_sql() == "status = 'cancelled'"
    assert TRANSITIONS["fail"].status_sql("c") == (
        "status = CASE WHEN c THEN 'pending' ELSE 'failed' END"
    )
    with pytest.raises(ValueError, match="fail"):
        TRANSITIONS["fail"].status_sql()


def test_a_fail_that_retries_records_retried_and_one_that_gives_up_failed() -> None:
    fail = TRANSITIONS["fail"]
    assert fail.event_for(TaskStatus.PENDING) == "retried"
    assert fail.event_for(TaskStatus.FAILED) == "failed"
    assert TRANSITIONS["expire"].event_for(TaskStatus.PENDING) == "expired"
