"""One way to name a store: a SQLite path or a ``postgresql://`` DSN, as the CLI takes it.

Shared by the ``engagequeue`` command and ``engagequeue.sync.connect``, so a database named
on the command line and in a Django setting mean the same store.
"""

from __future__ import annotations

import os
from typing import Any, Final

from ._abc import TaskStore
from ._errors import ValidationError
from ._store_sqlite import SQLiteTaskStore

__all__ = ["DEFAULT_DB", "DEFAULT_SCHEMA", "is_postgres", "store_from_url"]

DEFAULT_DB: Final = "engagequeue.sqlite3"
"""The database the command line uses when neither ``--db`` nor ``ENGAGEQUEUE_DB`` is set."""

DEFAULT_SCHEMA: Final = "engagequeue"
"""``PostgresTaskStore``'s default schema."""

_POSTGRES_PREFIXES: Final = ("postgresql://", "postgres://")


def is_postgres(db: str) -> bool:
    """Whether ``db`` names a PostgreSQL database (a ``postgresql://`` or ``postgres://`` URL)."""
    return db.lower().startswith(_POSTGRES_PREFIXES)


def store_from_url(
    db: str | os.PathLike[str],
    *,
    schema: str | None = None,
    **options: Any,  # noqa: ANN401 - the chosen store's own keyword options
) -> TaskStore:
    """Build (without opening) the store ``db`` names.

    Args:
        db: a SQLite file path, or a ``postgresql://`` DSN.
        schema: the PostgreSQL schema (default ``engagequeue``); refused for SQLite.
        options: passed on to the store's constructor (``durability``, ``connect_timeout``...).

    Raises:
        ValidationError: a blank ``db``, or a schema given with a SQLite path.
        ImportError: a DSN while psycopg is not installed (the message names the extra).
    """
    name = os.fspath(db)
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(
            "the database must be a SQLite path or a postgresql:// DSN", field="db"
        )
    if is_postgres(name):
        from ._store_postgres import PostgresTaskStore  # noqa: PLC0415 - psycopg only when used

        return PostgresTaskStore(name, schema=schema or DEFAULT_SCHEMA, **options)
    if schema is not None:
        raise ValidationError(
            f"a schema applies to PostgreSQL only, not to the SQLite file {name!r}", field="schema"
        )
    return SQLiteTaskStore(name, **options)
