"""The code in README.md and docs/extending.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["README.md", "docs/extending.md"]
BLOCKS = [
    (page, i, code)
    for page in PAGES
    for i, code in enumerate(
        re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), flags=re.DOTALL)
    )
]


def test_the_pages_have_code_to_run() -> None:
    assert {page for page, _, _ in BLOCKS} == set(PAGES)


@pytest.mark.parametrize(("page", "index", "code"), BLOCKS, ids=[f"{p}-{i}" for p, i, _ in BLOCKS])
def test_snippet_runs(
    page: str,
    index: int,
    code: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"{page}#{index}", "exec"), {"__name__": "__main__"})  # noqa: S102
    if page == "README.md":
        lines = capsys.readouterr().out.strip().splitlines()
        assert lines[0].endswith(
            "shop-bot -> 120363021234567890@g.us [image] https://example.com/a.jpg | Hello!"
        )
        assert lines[1] == "1 ['created', 'edited', 'claimed', 'sending', 'completed']"
