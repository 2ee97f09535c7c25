"""Every script in examples/ is run, as a user runs it, by some test of the suite.

The runs themselves live beside what they check (test_quickstart.py, test_gateway_examples.py,
test_compose_example.py, tests/integration/test_http_example.py): each starts the script in
a subprocess, against the fake gateways or model server on 127.0.0.1 where it needs one.
This guard fails when a new example arrives without such a test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def runners() -> dict[Path, str]:
    """Test files that start a subprocess (sys.executable), with their text."""
    files = {}
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        if path.resolve() == Path(__file__).resolve():
            continue
        text = path.read_text(encoding="utf-8")
        if "sys.executable" in text:
            files[path] = text
    return files


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_the_example_is_run_by_a_test(example: Path) -> None:
    names = (f'"{example.name}"', f"examples.{example.stem}:")  # a path part, a module
    running = [
        path.relative_to(ROOT).as_posix()
        for path, text in runners().items()
        if any(name in text for name in names)
    ]
    assert running, (
        f"examples/{example.name} is run by no test: add one that starts it with "
        "sys.executable against the fakes on 127.0.0.1 (see tests/e2e/test_gateway_examples.py)"
    )
