"""Fixtures shared by every test tier."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engagequeue import SQLiteTaskStore, TaskStore

POSTGRES_DSN = os.environ.get(
    "ENGAGEQUEUE_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh SQLite file path."""
    return tmp_path / "engagequeue.sqlite3"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TaskStore]:
    """An open, empty store of each backend: a real SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        async with SQLiteTaskStore(tmp_path / "store.sqlite3") as sqlite_store:
            yield sqlite_store
        return
    from engagequeue import PostgresTaskStore

    schema = f"eq_test_{uuid.uuid4().hex[:12]}"
    pg_store = PostgresTaskStore(POSTGRES_DSN, schema=schema)
    async with pg_store:
        try:
            yield pg_store
        finally:
            await pg_store.drop_schema()
