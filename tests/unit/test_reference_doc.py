"""docs/reference.md is what docs/gen_reference.py makes of the current docstrings."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_reference_page_is_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "docs/gen_reference.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = module.render()
    assert "### class `SQLiteTaskStore" in expected
    assert (ROOT / "docs/reference.md").read_text() == expected, (
        "docs/reference.md is stale: run python docs/gen_reference.py"
    )
