"""The task being dispatched, for transports that want it (stable message ids, logging)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._models import Task

__all__ = ["current_task"]

_CURRENT_TASK: ContextVar[Task | None] = ContextVar("engagequeue_current_task", default=None)


def current_task() -> Task | None:
    """Return the task a ``Scheduler`` is sending right now in this context, or ``None``.

    A transport can read it inside ``send`` to derive a stable, retry-safe message id from
    ``task.id`` and ``task.attempts``.
    """
    return _CURRENT_TASK.get()
