"""Both built-in stores are ``RecurringTaskStore``s, with the protocol's very signatures.

``isinstance`` on a runtime-checkable protocol only looks at the names; comparing each
method's signature with the protocol's also catches a renamed keyword or a changed default.
No store is opened: a PostgreSQL store is built without connecting.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from engagequeue import PostgresTaskStore, RecurringTaskStore, SQLiteTaskStore, TaskStore
from store_support import POSTGRES_DSN

CONTRACT_METHODS = {
    "add_recurrence",
    "get_recurrence",
    "recurrences",
    "edit_recurrence",
    "pause_recurrence",
    "resume_recurrence",
    "end_recurrence",
    "recurrence_events",
}


def _members(protocol: type) -> set[str]:
    return {
        name
        for name, value in vars(protocol).items()
        if not name.startswith("_") and inspect.iscoroutinefunction(value)
    }


def _parameters(function: object) -> list[tuple[str, object, object, object]]:
    """Each parameter's name, kind, default and annotation (as written), then the return's."""
    signature = inspect.signature(function)  # type: ignore[arg-type]
    params = [(p.name, p.kind, p.default, p.annotation) for p in signature.parameters.values()]
    return [*params, ("return", None, None, signature.return_annotation)]


def test_the_protocol_has_exactly_the_contracts_recurring_methods() -> None:
    assert _members(RecurringTaskStore) == CONTRACT_METHODS
    assert not CONTRACT_METHODS & _members(TaskStore)
    for name in CONTRACT_METHODS:
        assert getattr(RecurringTaskStore, name).__doc__, f"{name} has no docstring"


@pytest.mark.parametrize("store_class", [SQLiteTaskStore, PostgresTaskStore])
def test_both_stores_satisfy_it_with_the_same_signatures(store_class: type, tmp_path: Path) -> None:
    store = (
        SQLiteTaskStore(tmp_path / "never-opened.sqlite3")
        if store_class is SQLiteTaskStore
        else PostgresTaskStore(POSTGRES_DSN, schema="eq_never_opened")
    )
    assert isinstance(store, RecurringTaskStore)
    assert isinstance(store, TaskStore)
    for name in CONTRACT_METHODS:
        method = getattr(store_class, name)
        assert inspect.iscoroutinefunction(method), name
        assert _parameters(method) == _parameters(getattr(RecurringTaskStore, name)), name


def test_an_object_without_the_recurring_methods_is_not_one() -> None:
    class OnlyAdds:
        async def add_recurrence(self) -> None: ...

    assert not isinstance(OnlyAdds(), RecurringTaskStore)
