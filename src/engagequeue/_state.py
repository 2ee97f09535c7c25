"""The task state machine, written once as data.

Every store builds its conditional updates from this table and the tests' model checks
the store against it. Pure data and functions, no I/O::

    schedule ──> pending ──claim──> processing ──complete──> completed
                  │  ^                  │
          cancel  │  └─retry / release ─┤ (retry_at with attempts left; disconnect;
                  v     / expire        │  stop; lease ended)
              cancelled                 └──fail / expire──> failed
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import attrs

from ._models import TaskStatus

__all__ = [
    "EVENT_KINDS",
    "FINAL_STATUSES",
    "RETRY_SQL",
    "TRANSITIONS",
    "Transition",
    "allowed_moves",
    "attempts_remain",
]

P, R, C, F, X = (
    TaskStatus.PENDING,
    TaskStatus.PROCESSING,
    TaskStatus.COMPLETED,
    TaskStatus.FAILED,
    TaskStatus.CANCELLED,
)


@attrs.frozen
class Transition:
    """One operation of the state machine: the status it needs, the statuses it can leave."""

    operation: str
    source: TaskStatus
    targets: frozenset[TaskStatus]
    event: str
    retry_event: str | None = None
    """The event recorded instead of ``event`` when the operation leaves the task pending
    although it could have failed it (a ``fail`` with ``retry_at``: ``retried``)."""

    def event_for(self, status: TaskStatus) -> str:
        """The kind of event that records this operation leaving a task in ``status``."""
        if status is P and self.retry_event is not None:
            return self.retry_event
        return self.event

    def status_sql(self, stays_pending: str = "") -> str:
        """The SQL assignment of ``status`` this operation makes.

        With two targets (pending or failed), ``stays_pending`` is the SQL condition under
        which the task goes back to pending.
        """
        if len(self.targets) == 1:
            return f"status = '{next(iter(self.targets)).value}'"
        if self.targets != {P, F} or not stays_pending:
            raise ValueError(f"{self.operation}: no single status and no condition")
        return f"status = CASE WHEN {stays_pending} THEN 'pending' ELSE 'failed' END"


TRANSITIONS: Final[Mapping[str, Transition]] = MappingProxyType(
    {
        t.operation: t
        for t in (
            Transition("edit", P, frozenset({P}), "edited"),
            Transition("cancel", P, frozenset({X}), "cancelled"),
            Transition("claim", P, frozenset({R}), "claimed"),
            Transition("complete", R, frozenset({C}), "completed"),
            # fail: back to pending when retry_at is given and attempts remain, else failed.
            Transition("fail", R, frozenset({P, F}), "failed", retry_event="retried"),
            # release: the session dropped or the scheduler stopped before the send.
            Transition("release", R, frozenset({P}), "released"),
            # expire: the lease ended (the worker died); back to pending or to failed.
            Transition("expire", R, frozenset({P, F}), "expired"),
        )
    }
)
"""Operation name -> the one status it applies to and the statuses it may leave the task in."""

FINAL_STATUSES: Final = frozenset({C, F, X})
"""Statuses no operation leaves."""

EVENT_KINDS: Final = frozenset(
    {
        "created",
        "edited",
        "claimed",
        "sending",
        "completed",
        "failed",
        "retried",
        "released",
        "expired",
        "cancelled",
    }
)
"""Every kind of ``TaskEvent`` a store writes."""


RETRY_SQL: Final = "attempts + 1 < max_attempts"
"""SQL for ``attempts_remain`` on a task row, before its ``attempts`` grows by one."""


def attempts_remain(attempts: int, max_attempts: int) -> bool:
    """Whether a task that has had ``attempts`` may be tried again after one more fails.

    The rule ``fail`` (with ``retry_at``) and ``expire`` (with ``on_expired="retry"``)
    follow; the stores apply it as ``RETRY_SQL``.
    """
    return attempts + 1 < max_attempts


def allowed_moves() -> frozenset[tuple[TaskStatus, TaskStatus]]:
    """Every (from, to) pair any operation can make."""
    return frozenset((t.source, target) for t in TRANSITIONS.values() for target in t.targets)
