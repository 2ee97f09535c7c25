"""The one collector for the Python in README.md and docs/**/*.md (Sybil under pytest).

Every ```` ```python ```` block of a page is one test item; the blocks of a page run in order,
in one namespace, as a reader pastes them into one ``python -m asyncio`` session:

- a block may ``await`` at top level (it then runs on the page's own event loop), and a
  block calling ``asyncio.run`` works as in a script;
- each block runs with a fresh temporary directory of the page as its working directory,
  so the files a page writes (``posts.sqlite3``...) never land in the checkout;
- ``<!-- skip: next -->`` on the line before a block leaves that block out (Sybil's skip
  directive; ``<!-- skip: next "why" -->`` gives a reason, ``skip: start``/``end`` a range);
- a block that uses PostgreSQL (``PostgresTaskStore`` or a ``postgresql://`` DSN) runs
  against ``ENGAGEQUEUE_TEST_DSN``; without a reachable server it is skipped with a reason,
  and with ``CI=true`` it fails instead.

Some pages talk to a gateway or a model server. Their ``PAGES`` entry starts the repo's fake
on 127.0.0.1 for the page and rewrites the address the reader sees (``http://localhost:3000``)
to the fake's, nothing else; a rewrite whose text is no longer on the page is an error, so
the table cannot go stale silently. An entry may add checks, run as one more item after the
page's last block, against the namespace the blocks built and what they printed.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import functools
import importlib.util
import inspect
import io
import os
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sybil import Document, Example, Region, Sybil
from sybil.evaluators.python import pad
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_DSN = os.environ.get("ENGAGEQUEUE_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/test")
DOCUMENTED_DSN = "postgresql://postgres@127.0.0.1:5432/test"
POSTGRES_MARKERS = ("PostgresTaskStore", "postgresql://")


def load_docs_script(name: str) -> ModuleType:
    """Import one of the scripts under docs/ (gen_reference.py...) by file name."""
    spec = importlib.util.spec_from_file_location(Path(name).stem, ROOT / "docs" / name)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def is_page(path: Path) -> bool:
    """README.md at the root and every Markdown file under docs/."""
    try:
        relative = path.resolve().relative_to(ROOT)
    except ValueError:
        return False
    return path.suffix == ".md" and (
        relative == Path("README.md") or relative.parts[0] == "docs"
    )


# -- what a page needs around it ------------------------------------------------------------


@dataclass
class PageEnv:
    """What one page runs against: address rewrites, and checks after its last block."""

    rewrites: dict[str, str] = field(default_factory=dict)
    checks: list[Callable[[Page], None]] = field(default_factory=list)
    """Run in order as the page's last item, after every block ran."""


EnvFactory = Callable[[contextlib.ExitStack], PageEnv]


def _background_loop(stack: contextlib.ExitStack) -> asyncio.AbstractEventLoop:
    """An event loop in a daemon thread for fakes that must answer while a block runs."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="docs-fakes", daemon=True)
    thread.start()

    def stop() -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()

    stack.callback(stop)
    return loop


def _serve(stack: contextlib.ExitStack, fake: Any) -> Any:
    """Enter an async-context-manager fake on a background loop until the page is done."""
    loop = _background_loop(stack)
    asyncio.run_coroutine_threadsafe(fake.__aenter__(), loop).result(timeout=10)
    stack.callback(
        lambda: asyncio.run_coroutine_threadsafe(fake.__aexit__(None, None, None), loop).result(
            timeout=10
        )
    )
    return fake


async def _post(app: Any, path: str, body: bytes, headers: dict[str, str]) -> Any:
    import httpx

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://docs.test"
    ) as http:
        return await http.post(path, content=body, headers=headers)


def _test_post_reached_the_group(fake: Any, session: str) -> Callable[[Page], None]:
    """The gateway pages' "Check the connection" block: one text, delivered, id printed."""

    def the_test_post_reached_the_group(page: Page) -> None:
        assert [(d.session, d.chat_id, d.body["text"]) for d in fake.delivered] == [
            (session, "120363012345678901@g.us", "engagequeue is connected")
        ]
        assert f"sent: {fake.delivered[0].message_id}" in page.output.getvalue()
        assert fake.violations == []

    return the_test_post_reached_the_group


def _readme(stack: contextlib.ExitStack) -> PageEnv:
    def prints_the_post_and_its_history(page: Page) -> None:
        # "Use it": the edited post is what leaves, and its history tells the whole story.
        lines = page.output.getvalue().splitlines()
        sent = " shop-bot -> 120363021234567890@g.us [image] https://example.com/a.jpg | Hello!"
        assert [line for line in lines if line.endswith(sent)], lines
        assert "1 ['created', 'edited', 'claimed', 'sending', 'completed']" in lines, lines

    return PageEnv(checks=[prints_the_post_and_its_history])


def _composer(stack: contextlib.ExitStack) -> PageEnv:
    from fakes_openai import Reply, running_server

    sale = "https://shop.example.com/spring-sale"
    server = stack.enter_context(running_server())
    server.script(then=Reply(f"*Soldes de printemps !* 🌸\n{sale}"))

    def composed_scheduled_and_printed(page: Page) -> None:
        assert sale in page.output.getvalue()
        assert (page.workdir / "posts.sqlite3").exists()
        assert len(server.requests) == 2  # compose, then compose_and_schedule

    return PageEnv(
        rewrites={"http://localhost:11434/v1": server.base_url},
        checks=[composed_scheduled_and_printed],
    )


def _waha(stack: contextlib.ExitStack) -> PageEnv:
    from fakes.waha import FakeWaha

    waha = _serve(stack, FakeWaha(api_key="your-WAHA_API_KEY", engine="NOWEB"))
    waha.add_session("default")

    def the_webhook_refuses_an_unsigned_request(page: Page) -> None:
        body = b'{"event": "session.status", "session": "default", "payload": {}}'
        answer = page.run(
            _post(page.namespace["app"], "/hooks/waha", body, {"content-type": "application/json"})
        )
        assert answer.status_code == 401, answer.text

    return PageEnv(
        rewrites={"http://localhost:3000": waha.url},
        checks=[
            _test_post_reached_the_group(waha, "default"),
            the_webhook_refuses_an_unsigned_request,
        ],
    )


def _evolution(stack: contextlib.ExitStack) -> PageEnv:
    from fakes.evolution import FakeEvolution

    evolution = _serve(stack, FakeEvolution(api_key="your-AUTHENTICATION_API_KEY"))
    evolution.add_instance("shop")

    def the_webhook_refuses_a_request_without_the_key(page: Page) -> None:
        body = (
            b'{"event": "connection.update", "instance": "shop",'
            b' "data": {"instance": "shop", "state": "close"}, "apikey": "wrong"}'
        )
        answer = page.run(
            _post(
                page.namespace["app"],
                "/hooks/evolution",
                body,
                {"content-type": "application/json"},
            )
        )
        assert answer.status_code == 401, answer.text

    return PageEnv(
        rewrites={"http://localhost:8080": evolution.url},
        checks=[
            _test_post_reached_the_group(evolution, "shop"),
            the_webhook_refuses_a_request_without_the_key,
        ],
    )


def _http(stack: contextlib.ExitStack) -> PageEnv:
    group = "120363000000000001@g.us"

    async def mounted(page: Page) -> None:
        import httpx

        app = page.namespace["app"]
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
        ):
            assert (await http.get("/health")).json() == {"status": "ok"}
            base = f"/api/sessions/shop-session/groups/{group}/engagement"
            anonymous = await http.get(f"{base}/history")
            assert anonymous.status_code == 401
            assert anonymous.json()["error"] == "unauthorized"
            alice = {"Authorization": "Bearer token-of-alice"}
            created = await http.post(
                base,
                json={"mediaType": "text", "content": "Hi", "scheduledAt": "2999-01-01T00:00:00Z"},
                headers=alice,
            )
            assert created.status_code == 201
            other = await http.get(
                "/api/sessions/shop-session/groups/999@g.us/engagement/history", headers=alice
            )
            assert other.status_code == 403
            history = await http.get(
                f"{base}/history?startDate=2999-01-01&endDate=2999-01-01", headers=alice
            )
            assert history.json()["total"] == 1

    async def standalone(page: Page) -> None:
        import httpx

        app = page.namespace["standalone"]
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
        ):
            assert (await http.get("/openapi.json")).status_code == 200
            missing = await http.get("/nowhere")
            assert missing.json() == {"error": "not_found", "message": "Not Found"}
        await page.namespace["standalone_store"].close()

    def the_mounted_router_authenticates_and_scopes(page: Page) -> None:
        page.run(mounted(page))

    def the_standalone_app_serves_its_openapi_document(page: Page) -> None:
        page.run(standalone(page))

    return PageEnv(
        checks=[
            the_mounted_router_authenticates_and_scopes,
            the_standalone_app_serves_its_openapi_document,
        ]
    )


def _postgres(stack: contextlib.ExitStack) -> PageEnv:
    schema = f"eq_docs_{uuid.uuid4().hex[:12]}"
    stack.callback(_drop_schema, schema)
    return PageEnv(rewrites={'"engagequeue_demo"': repr(schema)})


PAGES: dict[str, EnvFactory] = {
    "README.md": _readme,
    "docs/composer.md": _composer,
    "docs/gateways/waha.md": _waha,
    "docs/gateways/evolution.md": _evolution,
    "docs/http.md": _http,
    "docs/postgres.md": _postgres,
}
"""Page (relative to the repository root) -> what it runs against. Other pages need nothing."""


# -- PostgreSQL: skip with a reason on a laptop, fail in CI ---------------------------------


@functools.cache
def _postgres_problem() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed: pip install -e '.[dev]'"
    try:
        with psycopg.connect(POSTGRES_DSN, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"no PostgreSQL at {POSTGRES_DSN} ({type(exc).__name__})"


def require_postgres() -> None:
    """Skip (or, with CI=true, fail) the current test when PostgreSQL is not reachable."""
    problem = _postgres_problem()
    if problem is None:
        return
    how = (
        "start PostgreSQL on 127.0.0.1:5432 (trust auth, database 'test') or set "
        "ENGAGEQUEUE_TEST_DSN; CI runs these"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{problem}: CI must run the PostgreSQL blocks of the docs")
    pytest.skip(f"{problem}: {how}")


def _drop_schema(schema: str) -> None:
    if _postgres_problem() is not None:
        return
    import psycopg

    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# -- the page and its evaluation ------------------------------------------------------------


class _Tee(io.TextIOBase):
    """Print to pytest's capture (shown on failure) and keep a copy for the page's checks."""

    def __init__(self, *targets: Any) -> None:
        self.targets = targets

    def write(self, text: str) -> int:
        for target in self.targets:
            target.write(text)
        return len(text)

    def flush(self) -> None:
        for target in self.targets:
            target.flush()


class Page(Document):
    """A Markdown page whose examples share a namespace, a working directory and a loop."""

    def __init__(self, text: str, path: str) -> None:
        super().__init__(text, path)
        resolved = Path(path).resolve()
        self.relative = (
            resolved.relative_to(ROOT).as_posix() if resolved.is_relative_to(ROOT) else str(resolved)
        )
        self.namespace["__name__"] = "__main__"
        self.output = io.StringIO()
        self._stack: contextlib.ExitStack | None = None
        self._env: PageEnv | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.workdir = ROOT
        self.skipped_postgres = False
        _OPEN_PAGES[id(self.namespace)] = self

    @classmethod
    def parse(cls, path: str, *parsers: Any, encoding: str = "utf-8") -> Page:
        page = super().parse(path, *parsers, encoding=encoding)
        assert isinstance(page, Page)
        if page.relative in PAGES:
            # The page's checks: one more item, after the last block, at the end of the page.
            page.add(Region(page.end, page.end, "checks", _check))
        return page

    def start(self) -> PageEnv:
        """Start what the page runs against, once, on its first block."""
        if self._env is None:
            self._stack = contextlib.ExitStack()
            self.workdir = Path(
                self._stack.enter_context(tempfile.TemporaryDirectory(prefix="eq-docs-"))
            )
            factory = PAGES.get(self.relative)
            self._env = factory(self._stack) if factory is not None else PageEnv()
            code = "\n".join(
                str(region.parsed) for _, region in self.regions if _is_python(region)
            )
            for old in self._env.rewrites:
                assert old in code, f"{self.relative}: the address to rewrite {old!r} is gone"
        return self._env

    def run(self, awaitable: Any) -> Any:
        """Run a coroutine on the page's own event loop (the loop of top-level ``await``)."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(awaitable)

    def close(self) -> None:
        """Stop what the page ran against; its temporary directory goes too."""
        _OPEN_PAGES.pop(id(self.namespace), None)
        if self._loop is not None:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()
            self._loop = None
        if self._stack is not None:
            self._stack.close()
            self._stack = None
        self._env = None


def _is_python(region: Region) -> bool:
    return isinstance(region.parsed, str) and region.evaluator is _evaluate_block


def _evaluate_block(example: Example) -> None:
    __tracebackhide__ = True
    page = example.document
    assert isinstance(page, Page)
    env = page.start()
    source = str(example.parsed)
    for old, new in env.rewrites.items():
        source = source.replace(old, new)
    if any(marker in source for marker in POSTGRES_MARKERS):
        page.skipped_postgres = _postgres_problem() is not None
        require_postgres()
        source = source.replace(DOCUMENTED_DSN, POSTGRES_DSN)
    code = compile(
        pad(source, example.line + example.parsed.line_offset),
        example.path,
        "exec",
        flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
        dont_inherit=True,
    )
    with contextlib.chdir(page.workdir), contextlib.redirect_stdout(_Tee(sys.stdout, page.output)):
        if code.co_flags & inspect.CO_COROUTINE:
            page.run(eval(code, example.namespace))  # noqa: S307 - our own docs
        else:
            exec(code, example.namespace)  # noqa: S102 - our own docs
    example.namespace.pop("__builtins__", None)


def _check(example: Example) -> None:
    page = example.document
    assert isinstance(page, Page)
    if page.skipped_postgres:
        require_postgres()  # their checks skip (or fail in CI) with them
    env = page.start()
    with contextlib.chdir(page.workdir):
        for check in env.checks:
            check(page)


class _PythonBlocks(PythonCodeBlockParser):
    """Sybil's parser of ```python blocks (and ``>>>`` sessions), blocks run by ours."""

    def __init__(self) -> None:
        super().__init__()
        self.codeblock_parser = CodeBlockParser("python", _evaluate_block)


class _Skip(SkipParser):
    """Sybil's ``<!-- skip: next -->``; a skip without a reason is reported as a skip too."""

    def __call__(self, document: Document) -> Iterator[Region]:
        for region in super().__call__(document):
            action, reason = region.parsed
            if action in {"next", "start"} and not reason:
                region.parsed = (action, repr(f"left out by <!-- skip: {action} --> on the page"))
            yield region


def _teardown(namespace: dict[str, Any]) -> None:
    page = _OPEN_PAGES.pop(id(namespace), None)
    if page is not None:
        page.close()


_OPEN_PAGES: dict[int, Page] = {}
"""Pages being run, by namespace: Sybil's teardown hands over only the namespace."""


SYBIL = Sybil(
    parsers=[_PythonBlocks(), _Skip()],
    patterns=["*.md"],
    path=str(ROOT),
    teardown=_teardown,
    document_types={".md": Page},
)

_sybil_collect = SYBIL.pytest()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Any:
    """The hook the root conftest.py exports: collect README.md and docs/**/*.md only."""
    if is_page(file_path):
        return _sybil_collect(file_path, parent)
    return None


def run_page(relative: str) -> Page:
    """Parse a page with the collector's parsers and run its examples in order, outside pytest.

    For tests of the collector itself. Close the returned page when done.
    """
    page = SYBIL.parse(ROOT / relative)
    assert isinstance(page, Page)
    for example in page.examples():
        example.evaluate()
    return page
