"""The Python in docs/composer.md runs, against the fake Chat Completions server."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from fakes_openai import Reply, running_server

DOC = Path(__file__).resolve().parents[2] / "docs" / "composer.md"
SALE = "https://shop.example.com/spring-sale"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def test_the_doc_has_a_quick_start() -> None:
    assert python_blocks()


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_each_python_block_runs(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = python_blocks()[index]
    monkeypatch.chdir(tmp_path)
    with running_server() as server:
        server.script(then=Reply(f"*Soldes de printemps !* 🌸\n{SALE}"))
        code = code.replace("http://localhost:11434/v1", server.base_url)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"{DOC.name}[{index}]", "exec"), {"__name__": "__main__"})  # noqa: S102 - our own docs
    assert SALE in out.getvalue()
    assert (tmp_path / "posts.sqlite3").exists()
    assert len(server.requests) == 2
