"""docs/reference.md is what docs/gen_reference.py makes of the current docstrings."""

from __future__ import annotations

from pathlib import Path

from markdown_docs import load_docs_script

ROOT = Path(__file__).resolve().parents[2]


def test_reference_page_is_up_to_date() -> None:
    expected = load_docs_script("gen_reference.py").render()
    assert "### class `SQLiteTaskStore" in expected
    assert (ROOT / "docs/reference.md").read_text() == expected, (
        "docs/reference.md is stale: run python docs/gen_reference.py"
    )
