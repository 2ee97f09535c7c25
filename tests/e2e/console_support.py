"""What the console's browser tests share: the app under uvicorn, ids, the authorize hook."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

from engagequeue import SQLiteTaskStore

SESSION = "s1"
GROUP = "120363000000000001@g.us"
REFUSED_GROUP = "120363000000000666@g.us"


class ConsoleServer:
    """The app (real SQLite file, ``console=True``) served by uvicorn on 127.0.0.1."""

    def __init__(self, db_path: Path, app: Any) -> None:
        import uvicorn

        self.db_path = db_path
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", ws="none", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            self.thread.join(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def url(self, session: str = SESSION, group: str = GROUP) -> str:
        return f"{self.base_url}/moderation/?session={quote(session)}&group={quote(group)}"

    def behind_the_back(self, action: Callable[[SQLiteTaskStore], Awaitable[Any]]) -> Any:
        """Run ``action`` on a second store object on the same file, as another process would.

        In a thread of its own: Playwright's sync API keeps an event loop in this one.
        """

        async def run() -> Any:
            async with SQLiteTaskStore(self.db_path) as other:
                return await action(other)

        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, run()).result()


def refuse_one_group(_request: Any, _action: str, _session_id: str, group_id: str) -> bool:
    """The authorize hook of the tests: every group but REFUSED_GROUP."""
    return group_id != REFUSED_GROUP


def open_console(page: Any, url: str) -> None:
    """Load the console and wait until its first requests are answered."""
    page.goto(url)
    page.wait_for_selector("body[data-loaded]")
