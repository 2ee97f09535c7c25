# Copyright 2026 engagequeue developers. Licensed under the MIT license.
"""A scheduler process for the crash test: sends every due post, logging each send to a file.

Usage: python dispatch_worker.py DB_PATH SEND_LOG GROUPS

Each accepted send appends ``<task id>\\n`` to SEND_LOG with one ``os.write`` on an
``O_APPEND`` descriptor before ``send`` returns, so the line survives a SIGKILL of this
process (the kernel has it). The process exits 0 once no task of the GROUPS groups of
session ``bot`` is pending or processing.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta

from engagequeue import InMemoryTransport, Payload, Scheduler, SendReceipt, SQLiteTaskStore
from engagequeue import current_task as running_task


class FileLoggingTransport(InMemoryTransport):
    """An InMemoryTransport that also appends each accepted send's task id to a file."""

    def __init__(self, path: str) -> None:
        super().__init__(delay=0.002)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    async def send(self, session_id: str, group_id: str, payload: Payload) -> SendReceipt:
        receipt = await super().send(session_id, group_id, payload)
        task = running_task()
        assert task is not None
        os.write(self._fd, f"{task.id}\n".encode())
        return receipt


async def unfinished(store: SQLiteTaskStore, groups: int) -> int:
    total = 0
    for g in range(groups):
        page = await store.history("bot", f"g{g}@g.us", status=["pending", "processing"], limit=1)
        total += page.total
    return total


async def main(db_path: str, send_log: str, groups: int) -> None:
    transport = FileLoggingTransport(send_log)
    async with (
        SQLiteTaskStore(db_path) as store,
        Scheduler(
            store,
            transport,
            poll_interval=0.25,
            concurrency=8,
            send_timeout=1.0,
            lease=timedelta(seconds=2),
        ),
    ):
        while await unfinished(store, groups):
            await asyncio.sleep(0.2)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
