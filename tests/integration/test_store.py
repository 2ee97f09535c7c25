"""The TaskStore contract, run against every backend (a real SQLite file, a real PostgreSQL).

The behaviour tests are the public conformance suite, ``engagequeue.testing.TaskStoreSuite``,
run here exactly as a third store's authors run it: through a ``store_factory`` fixture
(tests/conftest.py's, parametrised over both engines). The tests below it cover our stores'
own constructor options, which the protocol does not name.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engagequeue import Payload, TaskStatus, ValidationError
from engagequeue.testing import StoreFactory, TaskStoreSuite

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class TestTaskStore(TaskStoreSuite):
    """The whole conformance suite, on SQLite and PostgreSQL."""


async def test_on_expired_fail_gives_at_most_once(store_factory: StoreFactory) -> None:
    store = await store_factory(on_expired="fail")
    await store.add_session("s1")
    task = await store.schedule("s1", "g", Payload.text("x"), T0, max_attempts=5)
    await store.claim_due(now=T0, lease=timedelta(seconds=1))
    assert await store.recover_expired(now=T0 + timedelta(hours=1)) == 1
    failed = await store.get(task.id)
    assert failed.status is TaskStatus.FAILED
    assert "expired" in (failed.last_error or "")


async def test_store_options_are_validated(store_factory: StoreFactory) -> None:
    with pytest.raises(ValidationError) as info:
        await store_factory(durability="sometimes")
    assert info.value.field == "durability"
    with pytest.raises(ValidationError) as info:
        await store_factory(on_expired="ignore")
    assert info.value.field == "on_expired"
