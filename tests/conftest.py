"""Fixtures shared by every test tier."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engagequeue import SQLiteTaskStore, TaskStore
from store_support import POSTGRES_DSN, StoreFactory


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
async def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StoreFactory]:
    """Open stores of one backend with given options; all share one database and are closed after.

    SQLite: one real file under tmp_path. PostgreSQL: one fresh schema, dropped afterwards.
    """
    opened: list[Any] = []
    schema = f"eq_test_{uuid.uuid4().hex[:12]}"

    async def factory(**options: Any) -> Any:
        if request.param == "sqlite":
            new: Any = SQLiteTaskStore(tmp_path / "store.sqlite3", **options)
        else:
            from engagequeue import PostgresTaskStore

            new = PostgresTaskStore(POSTGRES_DSN, schema=schema, **options)
        await new.open()
        opened.append(new)
        return new

    factory.backend = request.param  # type: ignore[attr-defined]
    yield factory
    for opened_store in reversed(opened):
        if request.param == "postgres" and opened_store is opened[0]:
            await opened_store.drop_schema()
        await opened_store.close()


@pytest.fixture
async def store(store_factory: StoreFactory) -> TaskStore:
    """An open, empty store of each backend."""
    opened: TaskStore = await store_factory()
    return opened
