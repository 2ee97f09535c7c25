"""The recurring store operations, planned without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
import pytest

from engagequeue import Payload, RecurrenceConflict, RecurrenceStatus, ValidationError, daily_rule
from engagequeue._store_recurring import (
    RecurrencePlan,
    RecurrenceState,
    plan_add,
    plan_advance,
    plan_edit,
    plan_end,
    plan_pause,
    plan_resume,
)

NOW = datetime(2026, 1, 1, 8, tzinfo=UTC)
NINE = datetime(2026, 1, 1, 9, tzinfo=UTC)
DAY = timedelta(days=1)


def add(**options) -> RecurrencePlan:
    arguments = {
        "timezone": "UTC",
        "starts_at": None,
        "until": None,
        "count": None,
        "max_attempts": 3,
        "now": NOW,
    } | options
    return plan_add("r1", "s", "g", Payload.text("tip"), daily_rule(9), **arguments)


def state_of(plan: RecurrencePlan) -> RecurrenceState:
    return plan.state


def test_add_plans_the_first_occurrence_at_or_after_now() -> None:
    plan = add()
    r = plan.state.recurrence
    assert r.status is RecurrenceStatus.ACTIVE
    assert r.next_at == NINE
    assert r.issued == 1
    assert plan.new_task is not None
    assert plan.new_task.scheduled_at == NINE
    assert r.next_task_id == plan.new_task.id
    assert [kind for kind, _ in plan.events] == ["created", "scheduled"]
    assert plan.created_detail == {"recurrence_id": "r1", "occurrence": 1}


def test_a_past_start_records_nothing_as_skipped() -> None:
    plan = add(starts_at=NOW - 30 * DAY)
    assert [kind for kind, _ in plan.events] == ["created", "scheduled"]
    assert plan.state.recurrence.next_at == NINE


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"timezone": "Nowhere/Else"}, "timezone"),
        ({"starts_at": datetime(2026, 1, 1)}, "starts_at"),  # noqa: DTZ001
        ({"until": "2026-01-01T08:30:00Z"}, "until"),
        ({"count": 0}, "count"),
        ({"max_attempts": 0}, "max_attempts"),
    ],
)
def test_add_refuses_bad_arguments_naming_them(options, field) -> None:
    with pytest.raises(ValidationError) as caught:
        add(**options)
    assert caught.value.field == field


def test_advance_after_a_claim_on_time_plans_the_next_day() -> None:
    state = add().state
    plan = plan_advance(state, NINE + timedelta(seconds=3), reason="claimed")
    assert plan.new_task is not None
    assert plan.new_task.scheduled_at == NINE + DAY
    assert plan.state.head_at == NINE + DAY
    assert plan.state.last_at == NINE
    assert plan.state.recurrence.issued == 2
    assert [kind for kind, _ in plan.events] == ["scheduled"]


def test_advance_after_downtime_skips_each_passed_occurrence_and_does_not_burst() -> None:
    state = add().state
    plan = plan_advance(state, NINE + 3 * DAY + timedelta(hours=1), reason="claimed")
    assert plan.new_task is not None
    assert plan.new_task.scheduled_at == NINE + 4 * DAY
    kinds = [kind for kind, _ in plan.events]
    assert kinds == ["skipped", "skipped", "skipped", "scheduled"]
    assert plan.events[0][1] == {"scheduled_at": "2026-01-02T09:00:00.000000Z"}
    assert plan.state.recurrence.issued == 5


def test_advance_ends_the_series_at_count() -> None:
    state = add(count=2).state
    second = plan_advance(state, NINE, reason="claimed")
    assert second.state.recurrence.issued == 2
    third = plan_advance(second.state, NINE + DAY, reason="claimed")
    assert third.new_task is None
    assert third.state.recurrence.status is RecurrenceStatus.ENDED
    assert third.state.recurrence.next_task_id is None
    assert third.events[-1] == ("ended", {"reason": "count"})


def test_advance_ends_the_series_at_until() -> None:
    state = add(until=NINE + DAY).state
    plan = plan_advance(
        plan_advance(state, NINE, reason="claimed").state, NINE + DAY, reason="claimed"
    )
    assert plan.state.recurrence.status is RecurrenceStatus.ENDED
    assert plan.events[-1] == ("ended", {"reason": "until"})


def test_pause_cancels_the_pending_occurrence_and_resume_plans_the_first_after_now() -> None:
    state = add(count=3).state
    paused = plan_pause(state, NOW)
    assert paused.cancel_task == state.recurrence.next_task_id
    assert paused.state.recurrence.status is RecurrenceStatus.PAUSED
    assert paused.state.recurrence.next_at is None
    assert paused.state.recurrence.issued == 0  # the cancelled one never happened
    assert plan_pause(paused.state, NOW).changed is False
    later = NOW + 10 * DAY
    resumed = plan_resume(paused.state, later)
    assert resumed.new_task is not None
    assert resumed.new_task.scheduled_at == NINE + 10 * DAY
    assert [kind for kind, _ in resumed.events] == ["resumed", "scheduled"]
    assert resumed.state.recurrence.issued == 1


def test_end_cancels_the_pending_occurrence_and_ended_refuses_changes() -> None:
    state = add().state
    ended = plan_end(state, NOW)
    assert ended.cancel_task == state.recurrence.next_task_id
    assert ended.state.recurrence.status is RecurrenceStatus.ENDED
    assert plan_end(ended.state, NOW).changed is False
    for plan in (plan_pause, plan_resume):
        with pytest.raises(RecurrenceConflict) as caught:
            plan(ended.state, NOW)
        assert caught.value.status is RecurrenceStatus.ENDED
    with pytest.raises(RecurrenceConflict):
        plan_edit(ended.state, NOW, payload=Payload.text("new"))


def test_edit_payload_changes_the_pending_occurrence_unless_it_was_edited_on_its_own() -> None:
    state = add().state
    plan = plan_edit(state, NOW, payload=Payload.text("new"))
    assert plan.update_task == (state.recurrence.next_task_id, Payload.text("new"), None)
    assert plan.state.recurrence.payload == Payload.text("new")
    own = plan_edit(attrs.evolve(state, head_edited=True), NOW, payload=Payload.text("new"))
    assert own.update_task is None
    assert own.state.recurrence.payload == Payload.text("new")


def test_edit_rule_moves_the_pending_occurrence() -> None:
    state = add().state
    plan = plan_edit(state, NOW, rule=daily_rule(18, 30), timezone="Europe/Paris")
    assert plan.update_task == (
        state.recurrence.next_task_id,
        None,
        datetime(2026, 1, 1, 17, 30, tzinfo=UTC),
    )
    assert plan.state.recurrence.next_at == datetime(2026, 1, 1, 17, 30, tzinfo=UTC)
    assert plan.state.recurrence.timezone == "Europe/Paris"
    assert plan.events[0] == (
        "edited",
        {"rule": "FREQ=DAILY;BYHOUR=18;BYMINUTE=30", "timezone": "Europe/Paris"},
    )


def test_edit_count_below_the_pending_occurrence_ends_the_series() -> None:
    state = plan_advance(add().state, NINE, reason="claimed").state  # occurrence 2 pending
    plan = plan_edit(state, NOW + DAY, count=1)
    assert plan.cancel_task == state.recurrence.next_task_id
    assert plan.state.recurrence.status is RecurrenceStatus.ENDED
    assert plan.events[-1] == ("ended", {"reason": "count"})
    kept = plan_edit(state, NOW + DAY, count=5)
    assert kept.cancel_task is None
    assert kept.update_task is None
    assert kept.state.recurrence.next_at == state.recurrence.next_at


def test_edit_needs_a_change_and_validates_it() -> None:
    state = add().state
    with pytest.raises(ValidationError):
        plan_edit(state, NOW)
    with pytest.raises(ValidationError) as caught:
        plan_edit(state, NOW, rule="FREQ=SECONDLY")
    assert caught.value.field == "rule"
