# Copyright 2026 engagequeue developers. Licensed under the MIT license.
"""InMemoryTransport (the public test fake) and ConsoleTransport."""

from __future__ import annotations

import asyncio
import io
import time
from datetime import UTC, datetime, timedelta

import attrs
import pytest

from engagequeue import (
    ConsoleTransport,
    InMemoryTransport,
    MessageTransport,
    Payload,
    PermanentTransportError,
    Scheduler,
    SendReceipt,
    SentMessage,
    SessionDisconnectedError,
    SessionStatus,
    SQLiteTaskStore,
    TransientTransportError,
    ValidationError,
)


async def test_is_a_message_transport_and_records_each_send_as_a_frozen_value():
    transport = InMemoryTransport()
    assert isinstance(transport, MessageTransport)
    receipt = await transport.send("bot", "team@g.us", Payload.text("hello"))
    second = await transport.send("bot", "other@g.us", Payload.image("https://x.test/a.jpg"))

    assert isinstance(receipt, SendReceipt)
    [first, last] = transport.sent
    assert isinstance(first, SentMessage)
    assert (first.session_id, first.group_id, first.payload) == (
        "bot",
        "team@g.us",
        Payload.text("hello"),
    )
    assert first.message_id == receipt.message_id != second.message_id == last.message_id
    assert first.sent_at.tzinfo is not None
    assert first.sent_at.utcoffset() == timedelta(0)
    assert first.task_id is None  # sent outside a Scheduler
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        first.group_id = "x"  # type: ignore[misc]
    assert transport.calls == 2


async def test_sent_at_comes_from_the_injected_clock():
    instant = datetime(2030, 1, 1, 12, tzinfo=UTC)
    transport = InMemoryTransport(clock=lambda: instant)
    await transport.send("bot", "g@g.us", Payload.text("x"))
    assert transport.sent[0].sent_at == instant


async def test_disconnected_session_raises_and_records_nothing_until_reconnected():
    transport = InMemoryTransport()
    transport.disconnect("bot")
    assert not transport.is_connected("bot")
    assert await transport.session_status("bot") is SessionStatus.DISCONNECTED
    with pytest.raises(SessionDisconnectedError, match="bot"):
        await transport.send("bot", "g@g.us", Payload.text("x"))
    await transport.send("other", "g@g.us", Payload.text("other sessions still send"))
    assert [m.session_id for m in transport.sent] == ["other"]

    transport.connect("bot")
    assert await transport.session_status("bot") is SessionStatus.CONNECTED
    await transport.send("bot", "g@g.us", Payload.text("x"))
    assert [m.session_id for m in transport.sent] == ["other", "bot"]


async def test_a_session_dropping_during_a_slow_send_fails_that_send():
    transport = InMemoryTransport(delay=0.2)
    send = asyncio.create_task(transport.send("bot", "g@g.us", Payload.text("x")))
    await asyncio.sleep(0.05)
    transport.disconnect("bot")
    with pytest.raises(SessionDisconnectedError):
        await send
    assert transport.sent == []


async def test_fail_next_raises_queued_failures_in_order_then_sends():
    transport = InMemoryTransport()
    transport.fail_next(TransientTransportError("rate limited"), times=2)
    transport.fail_next(PermanentTransportError)
    assert transport.pending_failures == 3
    with pytest.raises(TransientTransportError, match="rate limited"):
        await transport.send("bot", "g@g.us", Payload.text("x"))
    with pytest.raises(TransientTransportError, match="rate limited"):
        await transport.send("bot", "g@g.us", Payload.text("x"))
    with pytest.raises(PermanentTransportError, match="fail_next"):
        await transport.send("bot", "g@g.us", Payload.text("x"))
    await transport.send("bot", "g@g.us", Payload.text("x"))
    assert len(transport.sent) == 1
    assert transport.calls == 4
    assert transport.pending_failures == 0


@pytest.mark.parametrize(
    ("exc", "times", "field"), [("boom", 1, "exc"), (RuntimeError, 0, "times")]
)
def test_fail_next_refuses_bad_arguments(exc, times, field):
    with pytest.raises(ValidationError) as info:
        InMemoryTransport().fail_next(exc, times=times)
    assert info.value.field == field


def test_negative_delay_is_refused():
    with pytest.raises(ValidationError) as info:
        InMemoryTransport(delay=-1)
    assert info.value.field == "delay"


async def test_delay_makes_each_send_take_that_long():
    transport = InMemoryTransport(delay=timedelta(milliseconds=100))
    started = time.monotonic()
    await transport.send("bot", "g@g.us", Payload.text("x"))
    assert time.monotonic() - started >= 0.095


async def test_wait_for_sends_returns_once_enough_posts_were_sent():
    transport = InMemoryTransport(delay=0.02)

    async def send_three():
        for i in range(3):
            await transport.send("bot", f"g{i}@g.us", Payload.text("x"))

    sender = asyncio.create_task(send_three())
    sent = await transport.wait_for_sends(3, timeout=5)
    assert [m.group_id for m in sent] == ["g0@g.us", "g1@g.us", "g2@g.us"]
    await sender


async def test_wait_for_sends_times_out_saying_how_many_arrived():
    transport = InMemoryTransport()
    await transport.send("bot", "g@g.us", Payload.text("x"))
    with pytest.raises(TimeoutError, match="1 of 2 sends"):
        await transport.wait_for_sends(2, timeout=0.05)


async def test_sent_to_filters_by_session_and_group_and_clear_resets():
    transport = InMemoryTransport()
    for session, group in (("a", "g1"), ("a", "g2"), ("b", "g1")):
        await transport.send(session, group, Payload.text(f"{session}/{group}"))
    assert [m.payload.content for m in transport.sent_to("a")] == ["a/g1", "a/g2"]
    assert [m.payload.content for m in transport.sent_to(group_id="g1")] == ["a/g1", "b/g1"]
    assert [m.payload.content for m in transport.sent_to("b", "g1")] == ["b/g1"]
    transport.disconnect("a")
    transport.fail_next(RuntimeError)
    transport.clear()
    assert transport.sent == []
    assert transport.is_connected("a")
    assert transport.pending_failures == 0


async def test_under_a_scheduler_each_send_records_its_task_and_attempt(tmp_path):
    async with SQLiteTaskStore(tmp_path / "s.sqlite3") as store:
        await store.add_session("bot")
        task = await store.schedule(
            "bot", "g@g.us", Payload.text("x"), datetime.now(UTC) - timedelta(seconds=1)
        )
        transport = InMemoryTransport()
        assert await Scheduler(store, transport).run_once() == 1
        [sent] = transport.sent
        assert sent.task_id == task.id
        assert sent.attempt == 1
        assert (await store.get(task.id)).message_id == sent.message_id


async def test_console_transport_prints_one_line_per_post():
    out = io.StringIO()
    instant = datetime(2030, 1, 1, 9, 30, 5, 123000, tzinfo=UTC)
    transport = ConsoleTransport(out, clock=lambda: instant)
    assert isinstance(transport, MessageTransport)
    first = await transport.send("bot", "team@g.us", Payload.text("Good morning"))
    second = await transport.send(
        "bot", "team@g.us", Payload.image("https://cdn.test/a.jpg", caption="New in")
    )
    assert first.message_id != second.message_id
    assert out.getvalue().splitlines() == [
        "09:30:05.123 bot -> team@g.us [text] Good morning",
        "09:30:05.123 bot -> team@g.us [image] https://cdn.test/a.jpg | New in",
    ]


async def test_console_transport_defaults_to_stdout(capsys):
    await ConsoleTransport().send("bot", "g@g.us", Payload.audio("https://cdn.test/a.ogg"))
    assert "bot -> g@g.us [audio] https://cdn.test/a.ogg" in capsys.readouterr().out
