# Copyright 2026 engagequeue developers. Licensed under the MIT license.
"""PostgreSQL-specific behaviour of ``PostgresTaskStore``, on the real server.

The generic store behaviour is proven for every backend by tests/integration/test_store.py;
here: schema isolation and migrations, the durability mapping, concurrent claimers in
separate processes, lost connections and a real server restart, and a parity run that
plays one operation sequence on SQLite and on PostgreSQL and compares every result.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import psycopg
import pytest

import engagequeue
from engagequeue import (
    EngageQueueError,
    OutcomeUnknownError,
    Payload,
    PostgresTaskStore,
    SessionNotFound,
    SQLiteTaskStore,
    TaskConflict,
    TaskNotFound,
    TaskStatus,
    ValidationError,
    _store_args,
)
from engagequeue._store_postgres import SCHEMA_VERSION
from store_support import POSTGRES_DSN, populate_every_status

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SRC = Path(__file__).resolve().parents[2] / "src"


def new_schema() -> str:
    return f"eq_test_{uuid.uuid4().hex[:12]}"


async def sql(query: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Run one statement on a fresh autocommit connection; return its rows (if any)."""
    async with await psycopg.AsyncConnection.connect(POSTGRES_DSN, autocommit=True) as conn:
        cursor = await conn.execute(query, params)
        return await cursor.fetchall() if cursor.description else []


@pytest.fixture
async def pg() -> AsyncIterator[PostgresTaskStore]:
    store = PostgresTaskStore(POSTGRES_DSN, schema=new_schema())
    async with store:
        try:
            yield store
        finally:
            await store.drop_schema()


@pytest.fixture
def schemas() -> Iterator[list[str]]:
    """Schema names a test creates; all dropped at the end."""
    names: list[str] = []
    yield names
    for name in names:
        asyncio.run(sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


# -- packaging and options -------------------------------------------------------------------


def test_importing_engagequeue_does_not_import_psycopg_until_the_store_is_used() -> None:
    code = (
        "import sys, engagequeue\n"
        "assert 'psycopg' not in sys.modules and 'psycopg_pool' not in sys.modules\n"
        "engagequeue.PostgresTaskStore\n"
        "assert 'psycopg' in sys.modules and 'psycopg_pool' in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)
    assert engagequeue.PostgresTaskStore is PostgresTaskStore


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"schema": 'bad"name'}, "schema"),
        ({"schema": "1starts_with_digit"}, "schema"),
        ({"schema": "x" * 64}, "schema"),
        ({"durability": "fast"}, "durability"),
        ({"on_expired": "ignore"}, "on_expired"),
        ({"max_pool_size": 0}, "max_pool_size"),
        ({"min_pool_size": 5, "max_pool_size": 2}, "max_pool_size"),
        ({"connect_timeout": -1}, "connect_timeout"),
        ({"retry_timeout": "soon"}, "retry_timeout"),
    ],
)
def test_bad_options_are_refused_naming_the_option(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        PostgresTaskStore(POSTGRES_DSN, **options)
    assert caught.value.field == field


def test_a_malformed_dsn_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        PostgresTaskStore("host=127.0.0.1 port")
    assert caught.value.field == "dsn"


def test_the_repr_hides_the_password() -> None:
    store = PostgresTaskStore("postgresql://app:s3cret@127.0.0.1:5432/test", schema="eq_x")
    assert "s3cret" not in repr(store)
    assert "eq_x" in repr(store)


async def test_an_unreachable_server_fails_open_with_a_clear_error() -> None:
    store = PostgresTaskStore("postgresql://postgres@127.0.0.1:1/test", connect_timeout=0.3)
    with pytest.raises(EngageQueueError, match="cannot connect to PostgreSQL"):
        await store.open()
    with pytest.raises(EngageQueueError, match="not open"):
        await store.get("anything")


async def test_a_closed_store_refuses_work_and_close_is_idempotent(pg: PostgresTaskStore) -> None:
    await pg.close()
    await pg.close()
    with pytest.raises(EngageQueueError, match="not open"):
        await pg.add_session("s")
    await pg.open()
    await pg.add_session("s")


# -- schema, isolation and migrations ---------------------------------------------------------


async def test_every_table_lives_in_the_store_schema(pg: PostgresTaskStore) -> None:
    rows = await sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
        (pg.schema,),
    )
    assert {r[0] for r in rows} == {
        "schema_version",
        "sessions",
        "tasks",
        "task_events",
        "recurrences",
        "recurrence_events",
    }


async def test_stores_in_two_schemas_of_one_database_do_not_see_each_other(
    schemas: list[str],
) -> None:
    schemas += [new_schema(), new_schema()]
    async with (
        PostgresTaskStore(POSTGRES_DSN, schema=schemas[0]) as one,
        PostgresTaskStore(POSTGRES_DSN, schema=schemas[1]) as two,
    ):
        await one.add_session("s")
        await two.add_session("s")
        task = await one.schedule("s", "g", Payload.text("only in one"), T0)
        with pytest.raises(TaskNotFound):
            await two.get(task.id)
        assert await two.claim_due(now=T0, limit=10) == []
        assert (await two.history("s", "g")).total == 0
        assert [t.id for t in await one.claim_due(now=T0, limit=10)] == [task.id]
        await two.drop_schema()
        assert (await one.get(task.id)).status is TaskStatus.PROCESSING
        with pytest.raises(SessionNotFound):
            await one.delete_session("other")


async def test_a_new_schema_records_its_migrations_and_reopening_applies_none(
    schemas: list[str],
) -> None:
    schemas.append(new_schema())
    async with PostgresTaskStore(POSTGRES_DSN, schema=schemas[0]) as store:
        await store.add_session("s")
        task = await store.schedule("s", "g", Payload.text("kept"), T0)
    versions = await sql(f'SELECT version, description FROM "{schemas[0]}".schema_version')
    assert [v[0] for v in versions] == list(range(1, SCHEMA_VERSION + 1))
    assert all(v[1] for v in versions)
    async with PostgresTaskStore(POSTGRES_DSN, schema=schemas[0]) as again:
        assert (await again.get(task.id)).payload.content == "kept"
    assert len(await sql(f'SELECT * FROM "{schemas[0]}".schema_version')) == SCHEMA_VERSION


async def test_concurrent_opens_of_a_new_schema_create_it_once(schemas: list[str]) -> None:
    schemas.append(new_schema())
    stores = [PostgresTaskStore(POSTGRES_DSN, schema=schemas[0]) for _ in range(5)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        rows = await sql(f'SELECT version FROM "{schemas[0]}".schema_version ORDER BY version')
        assert [r[0] for r in rows] == list(range(1, SCHEMA_VERSION + 1))
        await stores[0].add_session("s")
        await stores[4].schedule("s", "g", Payload.text("works"), T0)
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_a_schema_from_a_newer_engagequeue_is_refused_untouched(schemas: list[str]) -> None:
    schemas.append(new_schema())
    async with PostgresTaskStore(POSTGRES_DSN, schema=schemas[0]):
        pass
    await sql(
        f'INSERT INTO "{schemas[0]}".schema_version (version, description) VALUES (99, %s)',
        ("from the future",),
    )
    store = PostgresTaskStore(POSTGRES_DSN, schema=schemas[0])
    with pytest.raises(EngageQueueError, match=r"version 99.*upgrade engagequeue"):
        await store.open()
    rows = await sql(f'SELECT version FROM "{schemas[0]}".schema_version ORDER BY version')
    assert [r[0] for r in rows] == [*range(1, SCHEMA_VERSION + 1), 99]


async def test_drop_schema_removes_everything_and_open_starts_afresh(schemas: list[str]) -> None:
    schemas.append(new_schema())
    store = PostgresTaskStore(POSTGRES_DSN, schema=schemas[0])
    async with store:
        await store.add_session("s")
        task = await store.schedule("s", "g", Payload.text("gone"), T0)
        await store.drop_schema()
    assert await sql("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schemas[0],)) == []
    async with store:
        with pytest.raises(TaskNotFound):
            await store.get(task.id)
    await store.drop_schema()  # closed: uses its own connection
    assert await sql("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schemas[0],)) == []


async def test_the_database_refuses_two_tasks_of_one_group_in_flight(pg: PostgresTaskStore) -> None:
    await pg.add_session("s")
    await pg.schedule_many([("s", "g", Payload.text(f"t{i}"), T0) for i in range(2)])
    with pytest.raises(psycopg.errors.UniqueViolation):
        await sql(f"UPDATE \"{pg.schema}\".tasks SET status = 'processing'")


async def test_deleting_a_session_cascades_in_the_database(pg: PostgresTaskStore) -> None:
    await pg.add_session("s")
    task = await pg.schedule("s", "g", Payload.text("x"), T0)
    await sql(f'DELETE FROM "{pg.schema}".sessions')
    assert (
        await sql(f'SELECT * FROM "{pg.schema}".task_events WHERE task_id = %s', (task.id,)) == []
    )


# -- durability -----------------------------------------------------------------------------


async def _commit_level(durability: str, server_setting: str, schema: str) -> str:
    """The synchronous_commit level a store's write transaction runs with."""
    dsn = f"{POSTGRES_DSN}?options=-c%20synchronous_commit%3D{server_setting}"
    async with PostgresTaskStore(dsn, schema=schema, durability=durability) as store:
        s = f'"{schema}"'
        await sql(f"CREATE TABLE IF NOT EXISTS {s}.probe (level text)")
        await sql(f"DELETE FROM {s}.probe")
        await sql(
            f"CREATE OR REPLACE FUNCTION {s}.probe_level() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN INSERT INTO {s}.probe VALUES (current_setting('synchronous_commit'));"
            " RETURN NEW; END $$"
        )
        await sql(
            f"CREATE OR REPLACE TRIGGER probe AFTER INSERT ON {s}.sessions "
            f"FOR EACH ROW EXECUTE FUNCTION {s}.probe_level()"
        )
        await store.add_session(f"s-{uuid.uuid4().hex}")
        rows = await sql(f"SELECT level FROM {s}.probe")
    return str(rows[0][0])


@pytest.mark.parametrize(
    ("durability", "server_setting", "expected"),
    [
        ("normal", "off", "local"),  # raised: a committed task survives a server crash
        ("normal", "on", "on"),  # a stronger server setting is kept
        ("full", "off", "on"),
        ("full", "local", "on"),
        ("full", "remote_apply", "remote_apply"),
    ],
)
async def test_durability_sets_the_least_synchronous_commit_level_and_never_lowers_it(
    schemas: list[str], durability: str, server_setting: str, expected: str
) -> None:
    schemas.append(new_schema())
    assert await _commit_level(durability, server_setting, schemas[0]) == expected


# -- concurrent claimers ----------------------------------------------------------------------

CLAIMER = textwrap.dedent(
    """
    import asyncio, json, random, sys
    from datetime import timedelta
    from engagequeue import PostgresTaskStore

    async def main(dsn, schema, name):
        rng = random.Random(name)
        claimed = []
        async with PostgresTaskStore(dsn, schema=schema, max_pool_size=2) as store:
            idle = 0
            while True:
                tasks = await store.claim_due(
                    limit=rng.randint(1, 8), worker_id=name, lease=timedelta(hours=1)
                )
                for task in tasks:
                    claimed.append(task.id)
                    await store.complete(task.id, message_id=name, worker_id=name)
                if tasks:
                    idle = 0
                    continue
                if await store.next_due() is None:
                    break
                idle += 1
                await asyncio.sleep(0.001 * min(idle, 5))
        print(json.dumps(claimed))

    asyncio.run(main(*sys.argv[1:]))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [4, 8])
async def test_concurrent_claimers_in_separate_processes_take_each_task_once_and_groups_in_order(
    pg: PostgresTaskStore, workers: int
) -> None:
    """Claims run in parallel (no schema-wide lock): nothing lost, duplicated or reordered."""
    sessions, groups_per_session, per_group = 3, 20, 40  # 2,400 due tasks
    items = []
    for s in range(sessions):
        await pg.add_session(f"s{s}")
        for g in range(groups_per_session):
            for i in range(per_group):
                # Interleaved times with ties, so order within a group is by time, then id.
                at = T0 + timedelta(seconds=(i * 7 + g) % 50 + i // 3)
                items.append((f"s{s}", f"g{g}", Payload.text(f"s{s} g{g} #{i}"), at))
    scheduled = await pg.schedule_many(items)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CLAIMER,
            POSTGRES_DSN,
            pg.schema,
            f"worker-{n}",
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        for n in range(workers)
    ]
    outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 240)
    assert [p.returncode for p in procs] == [0] * workers
    claimed = [tid for out, _ in outputs for tid in json.loads(out)]

    # Every task claimed exactly once, by exactly one process.
    assert len(claimed) == len(set(claimed)) == len(scheduled)
    assert set(claimed) == {t.id for t in scheduled}
    assert sum(1 for out, _ in outputs if json.loads(out)) > 1, "the claimers did not overlap"

    # The audit trail: per group, claims follow (scheduled_at, id) order, and each claim
    # comes after the previous task of the group completed (never two in flight).
    rows = await sql(
        f"SELECT t.session_id, t.group_id, t.scheduled_at, t.id, e.kind, e.seq "
        f'FROM "{pg.schema}".task_events e JOIN "{pg.schema}".tasks t ON t.id = e.task_id '
        "WHERE e.kind IN ('claimed', 'completed') ORDER BY e.seq"
    )
    by_group: dict[tuple[str, str], list[tuple[str, str, datetime]]] = defaultdict(list)
    for session_id, group_id, at, task_id, kind, _ in rows:
        by_group[session_id, group_id].append((kind, task_id, at))
    assert len(by_group) == sessions * groups_per_session
    for trail in by_group.values():
        kinds = [k for k, _, _ in trail]
        assert kinds == ["claimed", "completed"] * per_group
        order = [(at, tid) for k, tid, at in trail if k == "claimed"]
        assert order == sorted(order)
    assert all(t.status is TaskStatus.COMPLETED for t in await _all_tasks(pg))


async def test_concurrent_claimers_in_one_process_never_share_a_task(
    pg: PostgresTaskStore,
) -> None:
    await pg.add_session("s")
    scheduled = await pg.schedule_many(
        [("s", f"g{i % 50}", Payload.text(f"#{i}"), T0 + timedelta(seconds=i)) for i in range(500)]
    )
    others = [PostgresTaskStore(POSTGRES_DSN, schema=pg.schema) for _ in range(3)]
    await asyncio.gather(*(o.open() for o in others))
    try:
        results = await asyncio.gather(
            *(
                s.claim_due(now=T0 + timedelta(hours=1), limit=30, worker_id=f"w{n}")
                for n, s in enumerate([pg, *others] * 3)
            )
        )
    finally:
        await asyncio.gather(*(o.close() for o in others))
    claimed = [t for batch in results for t in batch]
    # 50 groups, one head each: all 50 heads are claimed, once, and nothing else.
    heads = {t.group_id: t for t in reversed(scheduled)}
    assert sorted(t.id for t in claimed) == sorted(t.id for t in heads.values())


async def test_a_backlog_in_a_busy_group_does_not_hide_other_groups_heads(
    pg: PostgresTaskStore,
) -> None:
    """Past a long backlog the claim switches to its per-group walk; same answer, in order."""
    await pg.add_session("s")
    await pg.add_session("t")
    early = await pg.schedule("t", "early", Payload.text("before the backlog"), T0)
    backlog = await pg.schedule_many(
        [("s", "busy", Payload.text(f"#{i}"), T0 + timedelta(seconds=i)) for i in range(700)]
    )
    later = await pg.schedule_many(
        [
            ("s", f"g{i}", Payload.text(f"g{i}"), T0 + timedelta(hours=1, seconds=i % 3))
            for i in range(6)
        ]
    )
    await pg.schedule("s", "g0", Payload.text("behind g0's head"), T0)  # now g0's head
    now = T0 + timedelta(hours=2)
    first = await pg.claim_due(now=now, limit=1)
    assert [t.id for t in first] == [early.id]
    assert [t.id for t in await pg.claim_due(now=now, limit=1)] == [backlog[0].id]
    # "busy" is in flight; 699 of its tasks are due before every other group's head.
    claimed = await pg.claim_due(now=now, limit=4)
    g0_head = (await pg.history("s", "g0", limit=1)).items[0]
    expected = sorted([g0_head, *later[1:]], key=lambda t: (t.scheduled_at, t.id))[:4]
    assert [t.id for t in claimed] == [t.id for t in expected]
    rest = await pg.claim_due(now=now, limit=50)
    assert len(rest) == 2  # the two remaining groups; nothing of "busy" or "g0"
    assert {t.group_id for t in [*claimed, *rest]} == {"g0", "g1", "g2", "g3", "g4", "g5"}


async def _all_tasks(store: PostgresTaskStore) -> list[engagequeue.Task]:
    ids = [r[0] for r in await sql(f'SELECT id FROM "{store.schema}".tasks')]
    return [await store.get(i) for i in ids]


# -- lost connections -----------------------------------------------------------------------


async def _terminate_backends(application_name: str | None = None) -> int:
    """Kill every other connection to the test database (as a server restart would)."""
    rows = await sql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND backend_type = 'client backend'"
    )
    return int(rows[0][0])


async def test_the_store_carries_on_after_its_connections_are_killed(
    pg: PostgresTaskStore, caplog: pytest.LogCaptureFixture
) -> None:
    await pg.add_session("s")
    task = await pg.schedule("s", "g", Payload.text("before"), T0)
    assert await _terminate_backends() >= 1
    with caplog.at_level(logging.WARNING, logger="engagequeue.postgres"):
        assert (await pg.get(task.id)).id == task.id
        await _terminate_backends()
        claimed = await pg.claim_due(now=T0)
        await _terminate_backends()
        await pg.complete(task.id)
    assert [t.id for t in claimed] == [task.id]
    assert [e.kind for e in await pg.events(task.id)] == ["created", "claimed", "completed"]
    assert any("retrying" in r.getMessage() for r in caplog.records)


async def _kill_once_at(store: PostgresTaskStore, when: str, event: str) -> None:
    """Make the next ``event`` on tasks kill its own connection, ``when`` = commit or statement."""
    s = f'"{store.schema}"'
    await sql(f"CREATE SEQUENCE {s}.kill_once")
    await sql(
        f"CREATE FUNCTION {s}.kill_once() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" IF nextval('{s}.kill_once') = 1 THEN PERFORM pg_terminate_backend(pg_backend_pid());"
        " END IF; RETURN NULL; END $$"
    )
    timing = "DEFERRABLE INITIALLY DEFERRED" if when == "commit" else ""
    await sql(
        f"CREATE CONSTRAINT TRIGGER kill_once AFTER {event} ON {s}.tasks {timing} "
        f"FOR EACH ROW EXECUTE FUNCTION {s}.kill_once()"
    )


async def test_a_claim_cut_off_before_commit_is_retried_and_hands_out_each_task_once(
    pg: PostgresTaskStore,
) -> None:
    await pg.add_session("s")
    tasks = await pg.schedule_many([("s", f"g{i}", Payload.text("x"), T0) for i in range(3)])
    await _kill_once_at(pg, "statement", "UPDATE")
    claimed = await pg.claim_due(now=T0, limit=10)
    assert sorted(t.id for t in claimed) == sorted(t.id for t in tasks)
    for t in tasks:
        assert [e.kind for e in await pg.events(t.id)] == ["created", "claimed"]


async def test_a_claim_cut_off_while_committing_is_not_repeated(pg: PostgresTaskStore) -> None:
    await pg.add_session("s")
    task = await pg.schedule("s", "g", Payload.text("x"), T0)
    await _kill_once_at(pg, "commit", "UPDATE")
    with pytest.raises(OutcomeUnknownError, match="may or may not have been applied"):
        await pg.claim_due(now=T0)
    # The commit did not happen here (the trigger aborted it): the task is still claimable.
    assert (await pg.get(task.id)).status is TaskStatus.PENDING
    assert [t.id for t in await pg.claim_due(now=T0)] == [task.id]


async def test_a_complete_cut_off_while_committing_reports_an_unknown_outcome(
    pg: PostgresTaskStore,
) -> None:
    await pg.add_session("s")
    task = await pg.schedule("s", "g", Payload.text("x"), T0)
    await pg.claim_due(now=T0)
    await _kill_once_at(pg, "commit", "UPDATE")
    with pytest.raises(OutcomeUnknownError, match="check with get") as info:
        await pg.complete(task.id, message_id="m")
    assert isinstance(info.value, EngageQueueError)
    current = await pg.get(task.id)
    assert current.status is TaskStatus.PROCESSING
    assert current.attempts == 0
    assert (await pg.complete(task.id, message_id="m")).status is TaskStatus.COMPLETED


async def test_a_schedule_cut_off_while_committing_is_repeated_and_stored_once(
    pg: PostgresTaskStore,
) -> None:
    await pg.add_session("s")
    await _kill_once_at(pg, "commit", "INSERT")
    tasks = await pg.schedule_many([("s", "g", Payload.text(f"#{i}"), T0) for i in range(3)])
    rows = await sql(f'SELECT id FROM "{pg.schema}".tasks ORDER BY id')
    assert [r[0] for r in rows] == sorted(t.id for t in tasks)
    for t in tasks:
        assert [e.kind for e in await pg.events(t.id)] == ["created"]


async def test_repeating_an_insert_that_did_commit_returns_the_stored_tasks_once(
    pg: PostgresTaskStore,
) -> None:
    """What happens when a schedule's COMMIT succeeded but its answer was lost."""
    await pg.add_session("s")
    prepared = [
        _store_args.prepare_task("s", "g", Payload.text(f"#{i}"), T0, 3) for i in range(2)
    ]

    async def insert(conn: Any) -> list[engagequeue.Task]:
        return await pg._insert_tasks(conn, prepared, {"by": "test"})

    first = await pg._write(insert)
    second = await pg._write(insert)
    assert second == first
    assert len(await sql(f'SELECT 1 FROM "{pg.schema}".task_events')) == 2


async def test_delete_session_cut_off_while_committing_still_succeeds(
    pg: PostgresTaskStore,
) -> None:
    await pg.add_session("s")
    await pg.schedule("s", "g", Payload.text("x"), T0)
    await _kill_once_at(pg, "commit", "DELETE")
    await pg.delete_session("s")
    assert await sql(f'SELECT 1 FROM "{pg.schema}".sessions') == []


def _cluster() -> tuple[str, str] | None:
    """The local Debian cluster serving 127.0.0.1:5432, if this machine has one."""
    if shutil.which("pg_ctlcluster") is None or shutil.which("pg_lsclusters") is None:
        return None
    out = subprocess.run(
        ["pg_lsclusters", "--no-header"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "5432":
            return fields[0], fields[1]
    return None


def _pg_ctl(action: str, cluster: tuple[str, str]) -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, action],
        check=True,
        capture_output=True,
        timeout=120,
    )


def _wait_until_up(deadline: float = 60.0) -> None:
    stop = time.monotonic() + deadline
    while True:
        try:
            with psycopg.connect(POSTGRES_DSN, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            if time.monotonic() > stop:
                raise
            time.sleep(0.2)
        else:
            return


@pytest.mark.slow
async def test_a_server_restart_mid_run_loses_nothing(
    pg: PostgresTaskStore, caplog: pytest.LogCaptureFixture
) -> None:
    cluster = _cluster()
    if cluster is None:
        pytest.skip("no local pg_ctlcluster-managed server on port 5432 to restart")
    await pg.add_session("s")
    scheduled: list[str] = []
    completed: list[str] = []
    unknown: list[str] = []
    stop, produced = asyncio.Event(), asyncio.Event()

    async def produce() -> None:
        n = 0
        while not stop.is_set():
            task = await pg.schedule("s", f"g{n % 5}", Payload.text(f"#{n}"), T0)
            scheduled.append(task.id)
            n += 1
            await asyncio.sleep(0.002)
        produced.set()

    async def consume() -> None:
        while not (produced.is_set() and await pg.next_due() is None):
            try:
                tasks = await pg.claim_due(limit=5, lease=timedelta(seconds=1))
            except EngageQueueError as exc:
                unknown.append(str(exc))
                await pg.recover_expired(now=datetime.now(UTC) + timedelta(seconds=2))
                continue
            for task in tasks:
                try:
                    await pg.complete(task.id)
                except EngageQueueError as exc:
                    unknown.append(str(exc))
                    if (await pg.get(task.id)).status is TaskStatus.PROCESSING:
                        await pg.complete(task.id)
                completed.append(task.id)
            if not tasks:
                await asyncio.sleep(0.005)

    try:
        with caplog.at_level(logging.WARNING, logger="engagequeue.postgres"):
            runners = [asyncio.create_task(produce()), asyncio.create_task(consume())]
            await asyncio.sleep(0.5)
            before = len(scheduled)
            await asyncio.to_thread(_pg_ctl, "restart", cluster)
            await asyncio.sleep(1.0)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*runners), 120)
    finally:
        if _cluster() is not None:
            try:
                _wait_until_up(5)
            except psycopg.OperationalError:
                _pg_ctl("start", cluster)
                _wait_until_up()

    assert before > 0
    assert len(scheduled) > before, "nothing was scheduled after the restart"
    assert any("retrying" in r.getMessage() for r in caplog.records), "the restart went unseen"
    stored = {t.id: t for t in await _all_tasks(pg)}
    assert set(stored) == set(scheduled)  # every acknowledged schedule is there, none twice
    left = {t.id: t.status.value for t in stored.values() if t.status is not TaskStatus.COMPLETED}
    assert not left, (left, unknown)
    if not unknown:
        assert sorted(completed) == sorted(scheduled)
        for task_id in scheduled[:: max(1, len(scheduled) // 50)]:
            kinds = [e.kind for e in await pg.events(task_id)]
            assert kinds == ["created", "claimed", "completed"]


# -- parity with SQLite ---------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _ids() -> Callable[[], str]:
    counter = iter(range(10**9))
    return lambda: f"{next(counter):029x}"


Outcome = tuple[str, Any]


def _normal(value: Any) -> Any:
    """A comparable form of a store result (events without their row ids)."""
    if isinstance(value, engagequeue.TaskEvent):
        return ("event", value.task_id, value.at, value.kind, dict(value.detail))
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


async def _play(  # noqa: PLR0912 - one branch per store operation
    store: Any, seed: int, clock: FakeClock, steps: int
) -> list[Outcome]:
    """Play a seeded random sequence of operations; return every outcome."""
    rng = random.Random(seed)
    sessions = ["alpha", "beta", "gamma"]
    groups = ["g1", "g2", "g3"]
    task_ids: list[str] = ["0" * 29]  # an unknown id too
    outcomes: list[Outcome] = []

    def at() -> datetime:
        return T0 + timedelta(minutes=rng.choice([0, 0, 1, 2, 5, 30, 90]))

    def payload() -> Payload:
        if rng.random() < 0.7:
            return Payload.text(f"post {rng.randint(0, 999)}")
        return Payload.image(f"https://cdn.example.com/{rng.randint(0, 9)}.png", "caption")

    for _ in range(steps):
        clock.now += timedelta(seconds=rng.choice([0, 1, 20, 60, 600]))
        op = rng.choices(
            [
                "add_session", "connect", "disconnect", "delete_session", "schedule",
                "schedule_many", "edit", "cancel", "claim", "complete", "fail", "release",
                "recover", "next_due", "history", "get", "events",
            ],
            weights=[4, 2, 2, 1, 12, 3, 4, 2, 10, 6, 5, 2, 2, 2, 4, 2, 3],
        )[0]  # fmt: skip
        tid = rng.choice(task_ids)
        session = rng.choice(sessions)
        try:
            if op == "add_session":
                result: Any = await store.add_session(session)
            elif op == "connect":
                result = await store.session_connected(session)
            elif op == "disconnect":
                result = await store.session_disconnected(session)
            elif op == "delete_session":
                result = await store.delete_session(session)
            elif op == "schedule":
                result = await store.schedule(
                    session,
                    rng.choice(groups),
                    payload(),
                    at(),
                    max_attempts=rng.randint(1, 3),
                    detail={"n": rng.randint(0, 9)} if rng.random() < 0.5 else None,
                )
                task_ids.append(result.id)
            elif op == "schedule_many":
                items: list[Any] = [
                    (rng.choice(sessions), rng.choice(groups), payload(), at())
                    for _ in range(rng.randint(1, 4))
                ]
                if rng.random() < 0.2:
                    items.append((session, "g1", "not a payload", at()))
                result = await store.schedule_many(items)
                task_ids += [t.id for t in result]
            elif op == "edit":
                kwargs: dict[str, Any] = {}
                if rng.random() < 0.6:
                    kwargs["scheduled_at"] = at()
                if rng.random() < 0.5 or not kwargs:
                    kwargs["payload"] = payload()
                result = await store.edit(tid, **kwargs)
            elif op == "cancel":
                result = await store.cancel(tid)
            elif op == "claim":
                result = await store.claim_due(
                    now=clock.now + timedelta(minutes=rng.choice([0, 0, 60])),
                    limit=rng.randint(1, 4),
                    worker_id=rng.choice([None, "w1", "w2"]),
                    lease=timedelta(minutes=rng.choice([1, 5])),
                )
            elif op == "complete":
                result = await store.complete(tid, message_id=rng.choice([None, "m1"]))
            elif op == "fail":
                retry = rng.choice([None, clock.now + timedelta(minutes=3)])
                result = await store.fail(tid, "gateway said no", retry_at=retry)
            elif op == "release":
                result = await store.release(tid, "scheduler stopped")
            elif op == "recover":
                result = await store.recover_expired(
                    now=clock.now + timedelta(minutes=rng.choice([0, 2, 10]))
                )
            elif op == "next_due":
                result = await store.next_due()
            elif op == "history":
                result = await store.history(
                    session,
                    rng.choice(groups),
                    start=rng.choice([None, T0 + timedelta(minutes=1)]),
                    end=rng.choice([None, T0 + timedelta(minutes=30)]),
                    status=rng.choice([None, "pending", ["completed", "failed"], "cancelled"]),
                    limit=rng.choice([1, 3, 50]),
                    offset=rng.choice([0, 0, 1, 4]),
                )
            elif op == "get":
                result = await store.get(tid)
            else:
                result = await store.events(tid)
            outcomes.append((op, _normal(result)))
        except (EngageQueueError, ValueError) as exc:
            status = exc.status if isinstance(exc, TaskConflict) else None
            outcomes.append((op, ("error", type(exc).__name__, str(exc), status)))
    for tid in task_ids:
        try:
            outcomes.append(("final", _normal(await store.events(tid))))
        except TaskNotFound as exc:
            outcomes.append(("final", str(exc)))
    return outcomes


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_the_same_operations_give_the_same_results_on_sqlite_and_postgresql(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, schemas: list[str]
) -> None:
    steps = 250
    monkeypatch.setattr(_store_args, "new_task_id", _ids())
    sqlite_clock = FakeClock()
    async with SQLiteTaskStore(tmp_path / "parity.sqlite3", clock=sqlite_clock) as lite:
        expected = await _play(lite, seed, sqlite_clock, steps)

    monkeypatch.setattr(_store_args, "new_task_id", _ids())
    schemas.append(new_schema())
    pg_clock = FakeClock()
    async with PostgresTaskStore(POSTGRES_DSN, schema=schemas[0], clock=pg_clock) as pg:
        actual = await _play(pg, seed, pg_clock, steps)

    kinds = {op for op, _ in expected}
    assert {"claim", "complete", "fail", "edit", "history"} <= kinds
    assert sum(1 for _, r in expected if isinstance(r, tuple) and r[0] == "error") > 0
    for number, (want, got) in enumerate(zip(expected, actual, strict=True)):
        assert got == want, f"step {number}: {want[0]}"


# -- text PostgreSQL cannot store -------------------------------------------------------------


async def test_nul_characters_in_reasons_are_replaced_and_in_ids_refused(
    pg: PostgresTaskStore,
) -> None:
    await pg.add_session("s")
    task = await pg.schedule("s", "g", Payload.text("x"), T0)
    with pytest.raises(ValidationError) as caught:
        await pg.claim_due(now=T0, worker_id="w\x00")
    assert caught.value.field == "worker_id"
    await pg.claim_due(now=T0)
    with pytest.raises(ValidationError) as caught:
        await pg.complete(task.id, message_id="m\x00")
    assert caught.value.field == "message_id"
    failed = await pg.fail(task.id, "bad\x00byte")
    assert failed.last_error == "bad\ufffdbyte"


# -- the page ---------------------------------------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "postgres.md"


# Its code runs with every other page's (tests/markdown_docs.py).


def test_the_page_describes_the_claim_the_store_runs() -> None:
    from engagequeue import _store_postgres

    claim = _store_postgres.PostgresTaskStore(POSTGRES_DSN)._claim_sql[2]
    assert "FOR UPDATE OF t SKIP LOCKED" in claim
    assert "FOR SHARE" in claim
    text = DOC.read_text()
    assert "FOR UPDATE SKIP LOCKED" in text
    assert "pg_advisory_xact_lock_shared" not in text


async def test_a_schema_of_the_previous_release_opens_with_every_post_and_event_kept(
    schemas: list[str],
) -> None:
    """Version 2 added task versions: a version-1 schema with posts in every status upgrades."""
    schemas.append(new_schema())
    s = f'"{schemas[0]}"'
    async with PostgresTaskStore(POSTGRES_DSN, schema=schemas[0]) as store:
        before = await populate_every_status(store)
    await sql(f"DROP TABLE {s}.recurrence_events, {s}.recurrences")
    await sql(f"ALTER TABLE {s}.tasks DROP COLUMN recurrence_id")
    await sql(f"ALTER TABLE {s}.tasks DROP COLUMN version")
    await sql(f"DELETE FROM {s}.schema_version WHERE version > 1")
    async with PostgresTaskStore(POSTGRES_DSN, schema=schemas[0]) as store:
        after = {i: await store.get(i) for i in before["tasks"]}
        assert after == {i: attrs.evolve(t, version=1) for i, t in before["tasks"].items()}
        for task_id, events in before["events"].items():
            assert [(e.id, e.kind, e.at, dict(e.detail)) for e in await store.events(task_id)] == [
                (e.id, e.kind, e.at, dict(e.detail)) for e in events
            ]
        pending = next(t for t in after.values() if t.status is TaskStatus.PENDING)
        assert (await store.cancel(pending.id, if_version=1)).version == 2
    rows = await sql(f"SELECT version FROM {s}.schema_version ORDER BY version")
    assert [r[0] for r in rows] == list(range(1, SCHEMA_VERSION + 1))


async def test_concurrent_completes_are_batched_and_each_gets_its_own_outcome(
    pg: PostgresTaskStore,
) -> None:
    """Completes that meet share one statement; a stale worker's call fails alone."""
    await pg.add_session("s")
    await pg.schedule_many([("s", f"g{i}", Payload.text(f"#{i}"), T0) for i in range(6)])
    claimed = await pg.claim_due(now=T0, limit=6, worker_id="w")
    assert len(claimed) == 6
    stale, unknown, *good = claimed
    outcomes = await asyncio.gather(
        pg.complete(stale.id, message_id="x", worker_id="someone-else"),
        pg.complete("no-such-task", worker_id="w"),
        *(pg.complete(t.id, message_id=f"m-{t.id}", worker_id="w") for t in good),
        pg.complete(good[0].id, worker_id="w"),  # the same task twice in one batch
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], engagequeue.TaskConflict)
    assert "someone-else" in str(outcomes[0])
    assert isinstance(outcomes[1], TaskNotFound)
    done = outcomes[2:-1]
    assert [t.id for t in done] == [t.id for t in good]  # type: ignore[union-attr]
    assert all(t.status is TaskStatus.COMPLETED and t.version == 3 for t in done)  # type: ignore[union-attr]
    assert isinstance(outcomes[-1], engagequeue.TaskConflict)
    # All of them were committed by one transaction: the same updated_at and one event each.
    assert len({t.updated_at for t in done}) == 1  # type: ignore[union-attr]
    for t in good:
        assert [e.kind for e in await pg.events(t.id)] == ["created", "claimed", "completed"]
        assert (await pg.events(t.id))[-1].detail == {"message_id": f"m-{t.id}"}
    assert (await pg.get(stale.id)).status is TaskStatus.PROCESSING
    assert (await pg.complete(stale.id, worker_id="w")).status is TaskStatus.COMPLETED
