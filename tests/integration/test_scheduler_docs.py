# Copyright 2026 engagequeue developers. Licensed under the MIT license.
"""The code in docs/testing.md runs and its assertions hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_testing_page_has_code_to_run():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_testing_page_snippet_runs(code):
    exec(compile(code, str(DOC), "exec"), {"__name__": "docs_testing"})  # noqa: S102 - our own docs
