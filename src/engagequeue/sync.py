"""A blocking facade over any ``TaskStore``, for Django views, Flask, scripts and notebooks.

``SyncTaskStore`` runs the async store on one event loop in a thread of its own and hands
each call over to it: the same methods as the store, with the same arguments, results and
errors, without ``await``. It is safe to call from many threads at once (the calls meet in
that one loop, as coroutines of one async program would), and it never starts an event
loop per call, so the store keeps its connections, pool and caches between calls::

    from engagequeue import Payload
    from engagequeue.sync import connect

    with connect("engagequeue.sqlite3") as store:  # or a postgresql:// DSN
        store.add_session("bot")
        task = store.schedule("bot", "1203@g.us", Payload.text("Hello"), "2030-01-01T09:00:00Z")

The methods are made from the ``TaskStore`` protocol, so a method added there is here
too; other coroutine methods of the wrapped store (``drop_schema``...) are passed through
as well. For exact static types use ``call``: ``store.call(TaskStore.get, task_id)`` is
typed as returning a ``Task``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, Final, ParamSpec, Self, TypeVar

from ._abc import TaskStore
from ._connect import store_from_url
from ._errors import EngageQueueError

if TYPE_CHECKING:
    import os

__all__ = ["SyncTaskStore", "connect"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

_LIFE_CYCLE: Final = frozenset({"open", "close", "__aenter__", "__aexit__"})


def protocol_coroutines(protocol: type) -> list[str]:
    """The public coroutine methods a protocol declares (life-cycle methods excluded)."""
    return sorted(
        name
        for name, member in vars(protocol).items()
        if inspect.iscoroutinefunction(member)
        and not name.startswith("_")
        and name not in _LIFE_CYCLE
    )


class SyncTaskStore:
    """Blocking access to ``store``: every coroutine method becomes a plain method.

    Args:
        store: any ``TaskStore`` (opened here, in the facade's loop, if ``open`` is true).
        open_store: open the store now (else it must be open already). ``close()``
            closes it in any case.
        timeout: seconds a call may take before ``TimeoutError`` (``None``: no limit).
            The call itself goes on in the loop; its result is dropped.

    Use it as a context manager, or call ``close()``: it closes the store, then stops the
    loop and its thread.
    """

    def __init__(
        self, store: TaskStore, *, open_store: bool = True, timeout: float | None = None
    ) -> None:
        self._store = store
        self._timeout = timeout
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"engagequeue-sync-{id(self):x}", daemon=True
        )
        self._thread.start()
        self._closed = False
        if open_store:
            try:
                self._run(store.open())
            except BaseException:
                self._stop_loop()
                raise

    @property
    def store(self) -> TaskStore:
        """The wrapped async store (use it only from the facade's own loop)."""
        return self._store

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<SyncTaskStore {state} {self._store!r}>"

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise EngageQueueError(
                "a SyncTaskStore cannot be called from its own event loop (a wake-up "
                "callback?); use the async store there"
            )
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError:  # the loop is closed
            coro.close()
            raise EngageQueueError("the SyncTaskStore is closed") from None
        try:
            return future.result(self._timeout)
        except BaseException:
            future.cancel()  # a timeout or Ctrl-C: do not leave the call running unowned
            raise

    def call(
        self,
        method: Callable[Concatenate[TaskStore, _P], Awaitable[_T]],
        /,
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """Run ``method`` (a ``TaskStore`` method, unbound) on the store; typed exactly.

        ``store.call(TaskStore.history, "bot", "1203@g.us", limit=10)`` returns a ``Page``.
        """
        if self._closed:
            raise EngageQueueError("the SyncTaskStore is closed")
        bound = getattr(self._store, method.__name__)

        async def run() -> _T:
            result: _T = await bound(*args, **kwargs)
            return result

        return self._run(run())

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - whatever the store offers
        # Only for names the protocol does not declare (those are real methods below).
        if name.startswith("_"):
            raise AttributeError(name)
        attr = getattr(self._store, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        return functools.partial(_blocking_call, self, name)

    def close(self) -> None:
        """Close the store, then stop the loop and its thread. Idempotent, thread-safe."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._run(self._store.close())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _blocking_call(facade: SyncTaskStore, name: str, /, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
    if facade.closed:
        raise EngageQueueError("the SyncTaskStore is closed")
    method = getattr(facade.store, name)
    return facade._run(method(*args, **kwargs))  # noqa: SLF001 - the facade's own helper


def _make_method(name: str) -> Callable[..., Any]:
    declared = getattr(TaskStore, name)
    signature = inspect.signature(declared)

    def method(self: SyncTaskStore, /, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        return _blocking_call(self, name, *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = declared.__doc__
    # The protocol's own signature, with its return type un-awaited, for help() and IDEs.
    method.__signature__ = signature  # type: ignore[attr-defined]
    return method


for _name in protocol_coroutines(TaskStore):
    setattr(SyncTaskStore, _name, _make_method(_name))
del _name


def connect(
    db: str | os.PathLike[str],
    *,
    schema: str | None = None,
    timeout: float | None = None,
    **options: Any,  # noqa: ANN401 - the store's own keyword options
) -> SyncTaskStore:
    """Open the store ``db`` names (a SQLite path or a ``postgresql://`` DSN), blocking.

    ``schema`` and ``options`` go to the store (see ``engagequeue``'s ``--db``); ``timeout``
    to ``SyncTaskStore``.
    """
    return SyncTaskStore(store_from_url(db, schema=schema, **options), timeout=timeout)
