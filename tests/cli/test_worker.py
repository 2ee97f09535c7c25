"""``engagequeue worker`` as a subprocess: graceful SIGTERM, status lines, JSON logs, metrics."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from clitools import Process, Target, command, free_port
from prometheus_client.parser import text_string_to_metric_families

from engagequeue import Payload, TaskStatus
from engagequeue.sync import SyncTaskStore, connect

SENT = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} (\S+) -> (\S+) \[text\] (.*)$")
GROUPS = [f"g{n}@g.us" for n in range(4)]


def open_sync(target: Target) -> SyncTaskStore:
    return connect(target.db, schema=target.schema)


def sent_texts(output: str) -> list[str]:
    return [m[3] for line in output.splitlines() if (m := SENT.match(line))]


def statuses(store: SyncTaskStore) -> Counter[str]:
    counts: Counter[str] = Counter()
    for group in GROUPS:
        for task in store.history("bot", group, limit=500).items:
            counts[task.status.value] += 1
    return counts


def test_sigterm_mid_run_exits_0_loses_nothing_and_sends_nothing_twice(target: Target) -> None:
    posts = 40
    with open_sync(target) as store:
        store.add_session("bot")
        start = datetime.now(UTC) + timedelta(seconds=1)
        tasks = store.schedule_many(
            ("bot", GROUPS[n % 4], Payload.text(f"post {n:02d}"), start + timedelta(seconds=n / 10))
            for n in range(posts)
        )
    expected = Counter(t.payload.content for t in tasks)

    first = Process(target, "worker", "--transport", "console", "--status-interval", "0.5")
    try:
        first.wait_for(lambda p: len(sent_texts(p.stdout())) >= 8, what="8 posts sent")
        assert first.terminate() == 0, first.stderr()
        sent_before = sent_texts(first.stdout())
        log = first.stderr()
    finally:
        first.close()
    assert "SIGTERM received: stopping" in log
    assert re.search(r"status: sent \d+, failed 0, retried 0, pending \d+, lag [\d.]+ s", log)
    assert "Traceback" not in log
    assert len(sent_before) < posts, "the stop came too late to be mid-run"

    with open_sync(target) as store:
        after_stop = statuses(store)
        # Every post is either sent (exactly the ones printed) or still pending: none is
        # left processing, none failed, none vanished.
        assert after_stop == Counter(completed=len(sent_before), pending=posts - len(sent_before))
        done = {
            t.payload.content
            for g in GROUPS
            for t in store.history("bot", g, status="completed", limit=500).items
        }
        assert done == set(sent_before)

    second = Process(target, "worker", "--transport", "console", "--poll-interval", "0.5")
    try:
        second.wait_for(
            lambda p: len(sent_texts(p.stdout())) >= posts - len(sent_before),
            what="the rest of the posts sent",
        )
        assert second.terminate() == 0, second.stderr()
        sent_after = sent_texts(second.stdout())
    finally:
        second.close()
    assert Counter(sent_before + sent_after) == expected  # each post exactly once
    with open_sync(target) as store:
        assert statuses(store) == Counter(completed=posts)
        for group in GROUPS:
            order = [t.payload.content for t in store.history("bot", group, limit=500).items]
            printed = [text for text in sent_before + sent_after if text in order]
            assert printed == order, "a group's posts left out of order"


async def test_a_send_under_way_at_sigterm_finishes_before_the_worker_exits(
    target: Target,
) -> None:
    from fakes.waha import FakeWaha

    with open_sync(target) as store:
        store.add_session("main")
        now = datetime.now(UTC)
        tasks = [
            store.schedule("main", f"1203630000000000{n}@g.us", Payload.text(f"held {n}"), now)
            for n in range(3)
        ]
    async with FakeWaha(api_key="test-key") as waha:
        waha.add_session("main")
        waha.hold()
        env = {**os.environ}
        env.pop("ENGAGEQUEUE_DB", None)
        proc = await asyncio.create_subprocess_exec(
            *command(),
            *target.db_args,
            "worker",
            "--transport",
            "waha",
            "--gateway-url",
            waha.url,
            "--api-key",
            "test-key",
            "--stop-timeout",
            "20",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=target.cwd,
        )
        try:
            async with asyncio.timeout(30):
                while waha.held < 3:
                    assert proc.returncode is None
                    await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            assert proc.returncode is None, "the worker quit while sends were under way"
            waha.release()
            async with asyncio.timeout(30):
                _, err = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, err.decode()
        delivered = Counter(d.body["text"] for d in waha.delivered)
    assert delivered == Counter(f"held {n}" for n in range(3))
    with open_sync(target) as store:
        assert [store.get(t.id).status for t in tasks] == [TaskStatus.COMPLETED] * 3


def test_metrics_endpoint_serves_the_series_in_prometheus_text_format(target: Target) -> None:
    with open_sync(target) as store:
        store.add_session("bot")
        store.add_session("quiet")
        now = datetime.now(UTC)
        sent = store.schedule("bot", "g0@g.us", Payload.text("now"), now)
        store.schedule("bot", "g1@g.us", Payload.text("later"), now + timedelta(hours=1))
        store.schedule("quiet", "g1@g.us", Payload.text("later too"), now + timedelta(hours=2))
    port = free_port()
    worker = Process(
        target,
        "worker",
        "--transport",
        "console",
        "--metrics-port",
        str(port),
        "--log-format",
        "json",
        "--status-interval",
        "0.3",
    )
    try:
        worker.wait_for(lambda p: "[text] now" in p.stdout(), what="the due post sent")
        worker.wait_for(lambda p: '"status: sent 1' in p.stderr(), what="a status line")
        answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert worker.terminate() == 0, worker.stderr()
        log = worker.stderr()
    finally:
        worker.close()
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    assert {
        "engagequeue_posts",
        "engagequeue_dispatch_lag_seconds",
        "engagequeue_pending_posts",
        "engagequeue_claims",
        "engagequeue_claims_in_flight",
        "engagequeue_sends_in_flight",
        "engagequeue_store_errors",
    } <= set(families)

    def samples(name: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in families[name].samples}

    assert (
        samples("engagequeue_posts")[("engagequeue_posts_total", (("outcome", "completed"),))] == 1
    )
    assert families["engagequeue_dispatch_lag_seconds"].type == "histogram"
    lag = samples("engagequeue_dispatch_lag_seconds")
    assert lag[("engagequeue_dispatch_lag_seconds_count", ())] == 1
    assert lag[("engagequeue_dispatch_lag_seconds_bucket", (("le", "+Inf"),))] == 1
    pending = samples("engagequeue_pending_posts")
    assert pending[("engagequeue_pending_posts", (("session", "bot"),))] == 1
    assert pending[("engagequeue_pending_posts", (("session", "quiet"),))] == 1
    assert samples("engagequeue_claims")[("engagequeue_claims_total", ())] == 1
    assert samples("engagequeue_claims_in_flight")[("engagequeue_claims_in_flight", ())] == 0
    assert samples("engagequeue_sends_in_flight")[("engagequeue_sends_in_flight", ())] == 0
    assert families["engagequeue_store_errors"].type == "counter"

    records = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert any(r["message"].startswith(f"task {sent.id} completed") for r in records)
    assert any(r["logger"] == "engagequeue.worker" and "SIGTERM" in r["message"] for r in records)


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_an_idle_worker_stops_at_once_on_either_signal(target: Target, signame: str) -> None:
    worker = Process(target, "worker", "--transport", "console")
    try:
        worker.wait_for(lambda p: "started: transport console" in p.stderr(), what="start")
        worker.proc.send_signal(getattr(signal, signame))
        assert worker.proc.wait(30) == 0, worker.stderr()
        assert f"{signame} received" in worker.stderr()
    finally:
        worker.close()
