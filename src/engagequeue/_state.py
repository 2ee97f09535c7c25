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

__all__ = ["EVENT_KINDS", "FINAL_STATUSES", "TRANSITIONS", "Transition", "allowed_moves"]

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


TRANSITIONS: Final[Mapping[str, Transition]] = MappingProxyType(
    {
        t.operation: t
        for t in (
            Transition("edit", P, frozenset({P}), "edited"),
            Transition("cancel", P, frozenset({X}), "cancelled"),
            Transition("claim", P, frozenset({R}), "claimed"),
            Transition("complete", R, frozenset({C}), "completed"),
            # fail: back to pending when retry_at is given and attempts remain, else failed.
            Transition("fail", R, frozenset({P, F}), "failed"),
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


def allowed_moves() -> frozenset[tuple[TaskStatus, TaskStatus]]:
    """Every (from, to) pair any operation can make."""
    return frozenset((t.source, target) for t in TRANSITIONS.values() for target in t.targets)
