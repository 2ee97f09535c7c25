"""Wake-up callbacks, the part of the store that tells Schedulers a post may be due."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Final

logger: Final = logging.getLogger("engagequeue")

__all__ = ["WakeupMixin"]


class WakeupMixin:
    """Wake-up callbacks: a store calls them after a schedule, an edit or a reconnect.

    Engines extend it to other processes and hosts: ``_listen_changed`` starts or stops
    listening for other store objects' changes when callbacks come and go (those changes
    then run ``_wake_local``), and ``_announce`` tells the other store objects after a
    commit made through this one.
    """

    _wakeups: list[Callable[[], None]]

    def add_wakeup(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after each schedule, edit or reconnect committed on this database.

        Made through this store object or, once the store is open and a callback is added
        from a running event loop, through any other store object on the same SQLite file
        or PostgreSQL schema, in any process.
        """
        self._wakeups.append(callback)
        self._listen_changed()

    def remove_wakeup(self, callback: Callable[[], None]) -> None:
        """Stop calling ``callback``; no error if it was never added."""
        with contextlib.suppress(ValueError):
            self._wakeups.remove(callback)
        self._listen_changed()

    def _listen_changed(self) -> None:
        """Start or stop listening to other store objects (engines override)."""

    def _announce(self) -> None:
        """Tell other store objects that this one committed a wake-worthy change."""

    def _wake(self) -> None:
        self._wake_local()
        self._announce()

    def _wake_local(self) -> None:
        for callback in tuple(self._wakeups):
            try:
                callback()
            except Exception:
                logger.exception("engagequeue wake-up callback failed")
