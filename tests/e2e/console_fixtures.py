"""Fixtures of the console's browser tests: the real app under uvicorn, a headless Chromium.

The browser tests import them by name, so that they stay with the console's tests.

The browser is Debian's ``/usr/bin/chromium`` driven by Playwright's Python package with
``executable_path``; nothing ever downloads a browser. Without it the tests skip, saying how
to run them; in CI (``CI=true``) they fail instead.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from console_support import SESSION, ConsoleServer, refuse_one_group

from engagequeue import SQLiteTaskStore

CHROMIUM = os.environ.get("ENGAGEQUEUE_CHROMIUM", "/usr/bin/chromium")
HOW_TO = (
    "the console's browser tests need Debian's chromium and Playwright's Python package: "
    "apt-get install -y chromium && pip install -e '.[dev]'"
)


def _need(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; {HOW_TO} (CI never skips these)")
    pytest.skip(f"{reason}; {HOW_TO}")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The system Chromium, or a skip (a failure in CI) saying how to install it."""
    path = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not path:
        _need(f"no Chromium at {CHROMIUM}")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _need("Playwright is not installed")
    return str(path)


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    """Chromium for one test module: Playwright's sync API holds an event loop in this thread
    while it runs, which the asyncio tests of other modules must not find there."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def make_console(tmp_path: Path) -> Iterator[Callable[..., ConsoleServer]]:
    """Start console servers; ``wrap(app)`` may put something in front of the app."""
    from engagequeue.http import create_app

    started: list[tuple[ConsoleServer, SQLiteTaskStore]] = []

    def make(wrap: Callable[[Any], Any] | None = None) -> ConsoleServer:
        db_path = tmp_path / "console.sqlite3"
        store = SQLiteTaskStore(db_path)
        app = create_app(store, authorize=refuse_one_group, console=True)
        server = ConsoleServer(db_path, wrap(app) if wrap else app)
        server.start()
        started.append((server, store))
        server.behind_the_back(lambda s: s.add_session(SESSION))
        return server

    yield make
    for server, store in started:
        server.stop()
        with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's loop
            pool.submit(asyncio.run, store.close()).result()


@pytest.fixture
def console(make_console: Callable[..., ConsoleServer]) -> ConsoleServer:
    return make_console()


@contextmanager
def desktop_page(browser: Any, timezone_id: str) -> Iterator[Any]:
    """A wide page in a new context in ``timezone_id``; page errors fail the test."""
    context = browser.new_context(
        viewport={"width": 1440, "height": 900}, timezone_id=timezone_id, locale="en-GB"
    )
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.set_default_timeout(10_000)
    yield opened
    context.close()
    assert not errors, f"errors in the page: {errors}"


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page in Paris time, so local and UTC differ; page errors fail the test."""
    with desktop_page(browser, "Europe/Paris") as opened:
        yield opened
