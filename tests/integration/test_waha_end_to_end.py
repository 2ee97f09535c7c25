"""End to end: Scheduler -> WahaTransport -> fake WAHA on 127.0.0.1, with the session
dropping mid-run. Every post must still arrive exactly once, in order within its group."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from engagequeue import Payload, Scheduler, SQLiteTaskStore, Task, TaskStatus
from engagequeue.transports import (
    SessionEventTarget,
    WahaTransport,
    WebhookSignatureError,
    handle_waha_webhook,
    stable_message_id,
)
from fakes.gateway import Delivered, wait_for
from fakes.http import HttpServer, Request, Response, loopback_resolver
from fakes.waha import FakeWaha, connection_closed_500

KEY = "webhook-secret"
GROUPS = [f"12036300000000000{n}@g.us" for n in range(3)]
POSTS = 15


def webhook_receiver(target: SessionEventTarget) -> HttpServer:
    async def handle(request: Request) -> Response:
        try:
            await handle_waha_webhook(request.body, request.headers, target, hmac_key=KEY)
        except WebhookSignatureError:
            return Response(401)
        return Response(204)

    return HttpServer(handle)


async def schedule_posts(store: SQLiteTaskStore) -> list[Task]:
    await store.add_session("main")
    start = datetime.now(UTC) - timedelta(seconds=10)
    return await store.schedule_many(
        (
            "main",
            GROUPS[n % len(GROUPS)],
            Payload.text(f"post {n:02d}"),
            start + timedelta(milliseconds=n),
        )
        for n in range(POSTS)
    )


async def all_completed(store: SQLiteTaskStore, tasks: list[Task]) -> list[Task]:
    async def done() -> list[Task]:
        return [await store.get(t.id) for t in tasks]

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        current = await done()
        if all(t.status is TaskStatus.COMPLETED for t in current):
            return current
        assert loop.time() < deadline, [(t.id, t.status, t.last_error) for t in current]
        await asyncio.sleep(0.02)


def assert_exactly_once_in_order(waha: FakeWaha, tasks: list[Task], final: list[Task]) -> None:
    texts = [d.body["text"] for d in waha.delivered]
    assert Counter(texts) == Counter(f"post {n:02d}" for n in range(POSTS))
    by_group: dict[str, list[str]] = defaultdict(list)
    for delivered in waha.delivered:
        by_group[delivered.chat_id].append(delivered.body["text"])
    for group in GROUPS:
        expected = [t.payload.content for t in tasks if t.group_id == group]
        assert by_group[group] == expected, f"{group} posts out of order"
    delivered_ids = {d.body["text"]: d.message_id for d in waha.delivered}
    for task in final:
        # The stable id went to WAHA and came back as the receipt's message id.
        assert task.message_id == stable_message_id(task.id)
        assert delivered_ids[task.payload.content or ""] == task.message_id
    assert waha.violations == []


async def completed_count(store: SQLiteTaskStore, tasks: list[Task]) -> int:
    current = [await store.get(t.id) for t in tasks]
    return sum(t.status is TaskStatus.COMPLETED for t in current)


async def wait_completed(store: SQLiteTaskStore, tasks: list[Task], count: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while await completed_count(store, tasks) < count:
        assert loop.time() < deadline, "the scheduler did not finish the first posts"
        await asyncio.sleep(0.01)


async def test_posts_arrive_exactly_once_when_the_webhook_reports_the_session_down_mid_run(
    tmp_path: Path,
) -> None:
    """Five posts go out; the next sends hang in WAHA while the phone goes away; WAHA
    answers them 422 and its signed webhook tells the scheduler; the session comes back."""
    async with (
        SQLiteTaskStore(tmp_path / "e2e.sqlite3") as store,
        FakeWaha(engine="NOWEB", hmac_key=KEY) as waha,
        WahaTransport(
            waha.url,
            allow_private_media=True,
            resolver=loopback_resolver,
            api_key="test-key",
            message_ids=True,
            timeout=2.0,
        ) as transport,
    ):
        waha.add_session("main")
        tasks = await schedule_posts(store)
        scheduler = Scheduler(store, transport, poll_interval=0.05, concurrency=3)

        def hold_after_five(delivered: Delivered) -> None:
            if len(waha.delivered) == 5:
                waha.hold()

        waha.on_delivered.append(hold_after_five)
        async with webhook_receiver(scheduler) as hooks:
            waha.webhook_url = f"{hooks.url}/hooks/waha"
            async with scheduler:
                await wait_completed(store, tasks, 5)
                await wait_for(lambda: waha.held > 0)  # sends in flight, not accepted
                await waha.set_status("main", "STOPPED")  # the webhook, mid-run
                assert waha.webhook_answers == [204]
                waha.release()  # the held sends meet the stopped session: 422
                await asyncio.sleep(0.4)  # eight poll intervals: nothing may go out
                assert len(waha.delivered) == 5
                current = [await store.get(t.id) for t in tasks]
                assert sum(t.status is TaskStatus.PENDING for t in current) == POSTS - 5
                sends_while_down = len(waha.sends())
                await asyncio.sleep(0.2)
                assert len(waha.sends()) == sends_while_down, "the scheduler kept sending"

                await waha.set_status("main", "WORKING")
                final = await all_completed(store, tasks)
        assert waha.webhook_answers == [204, 204]
    assert_exactly_once_in_order(waha, tasks, final)
    # A dropped session is not a failed attempt: every post took exactly one attempt.
    assert {t.attempts for t in final} == {1}


async def test_posts_arrive_once_when_a_send_meets_connection_closed_and_the_scheduler_probes(
    tmp_path: Path,
) -> None:
    """No webhook here: the engine answers "Connection Closed"; the scheduler marks the
    session down and asks ``session_status`` until WAHA reports it WORKING again."""
    async with (
        SQLiteTaskStore(tmp_path / "e2e.sqlite3") as store,
        FakeWaha(engine="NOWEB") as waha,
        WahaTransport(
            waha.url,
            allow_private_media=True,
            resolver=loopback_resolver,
            api_key="test-key",
            message_ids=True,
            timeout=2.0,
        ) as transport,
    ):
        waha.add_session("main")
        tasks = await schedule_posts(store)

        def hold_after_four(delivered: Delivered) -> None:
            if len(waha.delivered) == 4:
                waha.hold()

        def connection_lost() -> None:
            waha.sessions["main"] = "STARTING"

        waha.on_delivered.append(hold_after_four)
        scheduler = Scheduler(store, transport, poll_interval=0.05, concurrency=3)
        async with scheduler:
            await wait_completed(store, tasks, 4)
            await wait_for(lambda: waha.held > 0)
            waha.answer_next(500, connection_closed_500(), then=connection_lost)
            waha.release()
            await wait_for(lambda: waha.sessions["main"] == "STARTING")
            await asyncio.sleep(0.3)
            assert len(waha.delivered) == 4
            assert any(r.path == "/api/sessions/main" for r in waha.requests), "no probe"
            await waha.set_status("main", "WORKING")
            final = await all_completed(store, tasks)
    assert_exactly_once_in_order(waha, tasks, final)
    assert {t.attempts for t in final} == {1}
