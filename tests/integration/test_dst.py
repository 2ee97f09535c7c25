"""Posts scheduled in local zones fire by instant, across DST changes, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pendulum
import pytest

from engagequeue import Payload, TaskStore, ValidationError

PARIS = ZoneInfo("Europe/Paris")
SAO_PAULO = ZoneInfo("America/Sao_Paulo")
KOLKATA = ZoneInfo("Asia/Kolkata")
US = timedelta(microseconds=1)


async def test_tasks_in_three_zones_across_the_autumn_change_fire_in_instant_order(
    store: TaskStore,
) -> None:
    await store.add_session("s")
    # Paris falls back on 2026-10-25 at 03:00 CEST: 02:30 happens twice.
    local_times = {
        "paris-first-0230": datetime(2026, 10, 25, 2, 30, tzinfo=PARIS, fold=0),  # 00:30 UTC
        "kolkata": datetime(2026, 10, 25, 6, 15, tzinfo=KOLKATA),  # 00:45 UTC
        "sao-paulo": datetime(2026, 10, 24, 22, 0, tzinfo=SAO_PAULO),  # 01:00 UTC
        "paris-second-0230": datetime(2026, 10, 25, 2, 30, tzinfo=PARIS, fold=1),  # 01:30 UTC
        "paris-0300-after": pendulum.datetime(2026, 10, 25, 3, 0, tz="Europe/Paris"),  # 02:00 UTC
    }
    tasks = {}
    for name, when in reversed(local_times.items()):
        tasks[name] = await store.schedule("s", name, Payload.text(name), when)
    expected_utc = [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 0, 45, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 0, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 2, 0, tzinfo=UTC),
    ]
    assert [tasks[name].scheduled_at for name in local_times] == expected_utc

    fired: list[str] = []
    for instant in expected_utc:
        assert await store.claim_due(now=instant - US, limit=10) == []
        claimed = await store.claim_due(now=instant, limit=10)
        assert len(claimed) == 1
        fired.append(claimed[0].group_id)
    assert fired == list(local_times)


async def test_the_spring_forward_gap_is_rejected_not_shifted(store: TaskStore) -> None:
    await store.add_session("s")
    # Paris springs forward on 2026-03-29 at 02:00: 02:30 does not exist that day.
    with pytest.raises(ValidationError, match="does not exist") as info:
        await store.schedule(
            "s", "g", Payload.text("x"), datetime(2026, 3, 29, 2, 30, tzinfo=PARIS)
        )
    assert info.value.field == "scheduled_at"
    assert (await store.history("s", "g")).total == 0


async def test_explicit_offsets_and_pendulum_resolution_name_real_instants(
    store: TaskStore,
) -> None:
    await store.add_session("s")
    # An explicit offset is an instant, whatever the wall clock in Paris did.
    explicit = await store.schedule("s", "g", Payload.text("x"), "2026-03-29T02:30:00+01:00")
    assert explicit.scheduled_at == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    # pendulum resolves a skipped wall time forward when the datetime is built (02:30 ->
    # 03:30 CEST); engagequeue takes the instant pendulum made and does not move it again.
    resolved = pendulum.datetime(2026, 3, 29, 2, 30, tz="Europe/Paris")
    task = await store.schedule("s", "g", Payload.text("y"), resolved)
    assert task.scheduled_at == resolved.in_timezone("UTC")
    assert task.scheduled_at == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
