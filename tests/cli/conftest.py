"""Fixtures of the command-line tests: a real SQLite file or PostgreSQL schema per test.

``target`` is parametrised over both engines: SQLite, a file under tmp_path; PostgreSQL, a
fresh schema of the test server (dropped afterwards). Without a PostgreSQL server the
postgres cases skip with a reason saying how to run them, except under CI=true, where they
fail.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from clitools import POSTGRES_DSN, Target, drop_schema, require_postgres


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """A database that does not exist yet, of each engine."""
    if request.param == "sqlite":
        yield Target("sqlite", str(tmp_path / "cli.sqlite3"), None, tmp_path)
        return
    require_postgres()
    schema = f"eq_cli_{uuid.uuid4().hex[:12]}"
    try:
        yield Target("postgres", POSTGRES_DSN, schema, tmp_path)
    finally:
        drop_schema(schema)
