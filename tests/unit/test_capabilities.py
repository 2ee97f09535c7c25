"""Both stores and every transport of ours offer the capability protocols the Scheduler asks for."""

from __future__ import annotations

from pathlib import Path

from engagequeue import (
    InMemoryTransport,
    MessageTransport,
    NextDueSource,
    PostgresTaskStore,
    Payload,
    SendReceipt,
    SendRecorder,
    SessionStatusSource,
    SQLiteTaskStore,
    TaskStore,
    WakeupSource,
)
from engagequeue.transports import EvolutionTransport, WahaTransport


def test_both_stores_offer_every_store_capability(tmp_path: Path) -> None:
    stores = [
        SQLiteTaskStore(tmp_path / "q.sqlite3"),
        PostgresTaskStore("postgresql://postgres@127.0.0.1:5432/test"),  # never opened
    ]
    for store in stores:
        assert isinstance(store, TaskStore)
        assert isinstance(store, WakeupSource)
        assert isinstance(store, NextDueSource)
        assert isinstance(store, SendRecorder)


def test_the_gateway_transports_report_session_status() -> None:
    transports = [
        InMemoryTransport(),
        WahaTransport("http://127.0.0.1:9", api_key="k"),
        EvolutionTransport("http://127.0.0.1:9", api_key="k"),
    ]
    for transport in transports:
        assert isinstance(transport, SessionStatusSource)


def test_a_transport_of_the_original_contract_offers_no_status() -> None:
    class SendOnly:
        async def send(self, session_id: str, group_id: str, payload: Payload) -> SendReceipt:
            return SendReceipt(message_id="m")

    assert isinstance(SendOnly(), MessageTransport)
    assert not isinstance(SendOnly(), SessionStatusSource)
