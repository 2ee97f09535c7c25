"""What the tests of an application or of a third store need from engagequeue.

``TaskStoreSuite`` is the store conformance suite engagequeue runs on its own stores: subclass
it with a ``store_factory`` fixture to run it on yours (docs/extending.md). It needs pytest and
pytest-asyncio: ``pip install 'engagequeue[testing]'``. ``import engagequeue`` never imports
this module, so applications that do not use it do not need pytest.
"""

from __future__ import annotations

try:
    from engagequeue.testing._store_suite import StoreFactory, TaskStoreSuite
except ModuleNotFoundError as exc:  # pragma: no cover - exercised in a subprocess
    if exc.name not in {"pytest", "pytest_asyncio", "_pytest"}:
        raise
    raise ImportError(
        f"engagequeue.testing needs pytest and pytest-asyncio ({exc.name} is missing): "
        "pip install 'engagequeue[testing]'"
    ) from exc

__all__ = ["StoreFactory", "TaskStoreSuite"]
