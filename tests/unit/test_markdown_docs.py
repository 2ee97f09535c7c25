"""The docs collector (tests/markdown_docs.py) runs pages as a reader would, and says why not."""

from __future__ import annotations

from pathlib import Path

import pytest

import markdown_docs
from markdown_docs import ROOT, SYBIL, Page, is_page

FENCE = "```"


def page_of(tmp_path: Path, *parts: str) -> Page:
    path = tmp_path / "page.md"
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    page = SYBIL.parse(path)
    assert isinstance(page, Page)
    return page


def block(code: str) -> str:
    return f"{FENCE}python\n{code}\n{FENCE}\n"


def run(page: Page) -> list[str]:
    """Evaluate every example; return "ok" / "skipped: reason" per example."""
    outcomes = []
    try:
        for example in page.examples():
            try:
                example.evaluate()
            except pytest.skip.Exception as exc:
                outcomes.append(f"skipped: {exc}")
            except Exception as exc:
                if type(exc).__name__ != "SkipTest":
                    raise
                outcomes.append(f"skipped: {exc}")
            else:
                outcomes.append("ok")
    finally:
        page.close()
    return outcomes


def test_blocks_of_a_page_share_one_namespace_in_order(tmp_path: Path) -> None:
    page = page_of(
        tmp_path,
        "# A page",
        block("greeting = 'hello'"),
        "Then:",
        block("words = [greeting, 'world']\nassert __name__ == '__main__'"),
    )
    assert run(page) == ["ok", "ok"]
    assert page.namespace["words"] == ["hello", "world"]


def test_top_level_await_runs_on_one_loop_per_page_and_asyncio_run_still_works(
    tmp_path: Path,
) -> None:
    page = page_of(
        tmp_path,
        block("import asyncio\nloop_a = asyncio.get_running_loop()\nawait asyncio.sleep(0)"),
        block("await asyncio.sleep(0)\nloop_b = asyncio.get_running_loop()"),
        block("async def main():\n    return 42\n\nanswer = asyncio.run(main())"),
    )
    assert run(page) == ["ok", "ok", "ok"]
    assert page.namespace["loop_a"] is page.namespace["loop_b"]
    assert page.namespace["answer"] == 42


def test_skip_next_leaves_out_exactly_the_next_block(tmp_path: Path) -> None:
    page = page_of(
        tmp_path,
        block("ran = ['first']"),
        "<!-- skip: next -->",
        block("raise RuntimeError('must not run')"),
        block("ran.append('third')"),
    )
    outcomes = run(page)
    assert page.namespace["ran"] == ["first", "third"]
    assert outcomes == ["ok", "ok", "skipped: left out by <!-- skip: next --> on the page", "ok"]


def test_skip_start_and_end_leave_out_a_range(tmp_path: Path) -> None:
    page = page_of(
        tmp_path,
        block("ran = ['first']"),
        "<!-- skip: start -->",
        block("raise RuntimeError('must not run')"),
        block("raise RuntimeError('nor this')"),
        "<!-- skip: end -->",
        block("ran.append('last')"),
    )
    run(page)
    assert page.namespace["ran"] == ["first", "last"]


def test_a_skip_reason_is_reported(tmp_path: Path) -> None:
    page = page_of(
        tmp_path,
        '<!-- skip: next "needs a real WhatsApp account" -->',
        block("raise RuntimeError('must not run')"),
    )
    assert "skipped: needs a real WhatsApp account" in run(page)


def test_a_failing_block_fails_at_its_line_in_the_page(tmp_path: Path) -> None:
    page = page_of(tmp_path, "# Title", "", "Text.", "", block("x = 1\nassert x == 2, 'wrong'"))
    with pytest.raises(AssertionError, match="wrong") as caught:
        run(page)
    frames = [(entry.path, entry.lineno + 1) for entry in caught.traceback]
    assert (tmp_path / "page.md", 7) in [(Path(p), line) for p, line in frames]


def test_blocks_write_into_a_temporary_directory_not_the_checkout(tmp_path: Path) -> None:
    before = Path.cwd()
    page = page_of(
        tmp_path,
        block("from pathlib import Path\nPath('posts.sqlite3').write_text('x')\nhere = Path.cwd()"),
    )
    examples = list(page.examples())
    examples[0].evaluate()
    here = page.namespace["here"]
    assert (here / "posts.sqlite3").exists()
    assert here not in (ROOT, before)
    assert Path.cwd() == before
    page.close()
    assert not here.exists()


@pytest.mark.parametrize(("ci", "outcome"), [("", "skip"), ("true", "fail")])
def test_a_postgres_block_without_a_server_skips_with_a_reason_and_fails_in_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ci: str, outcome: str
) -> None:
    # Port 9 on loopback (discard) has no PostgreSQL: nothing leaves the machine.
    monkeypatch.setattr(markdown_docs, "POSTGRES_DSN", "postgresql://postgres@127.0.0.1:9/test")
    monkeypatch.setenv("CI", ci)
    markdown_docs._postgres_problem.cache_clear()
    try:
        page = page_of(
            tmp_path,
            block("from engagequeue import PostgresTaskStore\nreached = True"),
        )
        if outcome == "skip":
            [result] = run(page)
            assert result.startswith("skipped: no PostgreSQL at postgresql://postgres@127.0.0.1:9")
            assert "ENGAGEQUEUE_TEST_DSN" in result
        else:
            with pytest.raises(pytest.fail.Exception, match="CI must run"):
                run(page)
        assert "reached" not in page.namespace
    finally:
        markdown_docs._postgres_problem.cache_clear()


def test_every_page_with_python_is_collected() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    with_python = [p for p in pages if f"{FENCE}python" in p.read_text(encoding="utf-8")]
    relative = {p.relative_to(ROOT).as_posix() for p in with_python}
    # The pages no per-page extractor used to run are among them.
    assert {"docs/delivery.md", "docs/gateways/waha.md", "docs/gateways/evolution.md"} <= relative
    for path in with_python:
        assert is_page(path)
        assert SYBIL.should_parse(path)
        assert list(SYBIL.parse(path).examples()), path
    assert not is_page(ROOT / "CHANGELOG.md")
    assert not is_page(ROOT / "benchmarks" / "README.md")


def test_every_page_with_an_environment_exists() -> None:
    # The rewrites themselves are checked when a page starts (Page.start): a rewrite whose
    # address left the page fails that page's first block.
    for relative in markdown_docs.PAGES:
        assert (ROOT / relative).exists(), f"PAGES names {relative}, which is gone"
