"""The state machine table agrees with itself and with the statuses."""

from __future__ import annotations

from engagequeue import TaskStatus
from engagequeue._state import EVENT_KINDS, FINAL_STATUSES, TRANSITIONS, allowed_moves


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
