"""The store algorithm's engine-neutral parts: conditions, refusals, event details, logs.

Derived from the state table in ``_state``; both engines build their conditional updates
and their events from here. Pure functions, no I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from ._errors import TaskConflict, TaskNotFound, VersionConflict
from ._models import Task, TaskStatus
from ._state import TRANSITIONS
from ._store_rows import STATUSES
from ._times import isoformat

logger: Final = logging.getLogger("engagequeue")


def conditional_where(source: str, mark: str, *, worker_id: bool, version: bool) -> str:
    """The WHERE clause of a conditional update of one task in ``source`` status.

    Optionally also: still claimed by the given worker, at the expected version.
    ``mark`` is the engine's parameter marker; parameters follow in the order task id,
    worker id, version.
    """
    where = f"id = {mark} AND status = '{source}'"
    if worker_id:
        where += f" AND worker_id = {mark}"
    if version:
        where += f" AND version = {mark}"
    return where


def refusal(
    task_id: str,
    operation: str,
    found: Sequence[Any] | None,
    *,
    worker_id: str | None = None,
    version: int | None = None,
) -> Exception:
    """Why a conditional update matched no row: the error to raise.

    ``found`` is the task's ``(status, worker_id, version)`` read after the update, or
    ``None`` when the task does not exist. A version mismatch comes first (the caller's
    view is stale, whatever the status), then the status, then the claim holder.
    """
    if found is None:
        return TaskNotFound(task_id)
    status, holder, current = STATUSES[found[0]], found[1], found[2]
    source = TRANSITIONS[operation].source
    if version is not None and current != version:
        return VersionConflict(task_id, status, operation, version, current)
    if status is not source or worker_id is None or holder == worker_id:
        return TaskConflict(task_id, status, operation, source.value)
    return TaskConflict(
        task_id,
        status,
        operation,
        source.value,
        reason=(
            f"it is claimed by worker {holder!r}, not {worker_id!r} "
            f"(the lease of {worker_id!r} ended and the task was claimed again)"
        ),
    )


def sending_detail(task: Task, worker_id: str | None) -> dict[str, Any]:
    """Check that ``mark_sending`` may record the send of ``task``; return the event detail.

    The task must be processing and, when ``worker_id`` is given, claimed by that worker.
    """
    if task.status is not TaskStatus.PROCESSING:
        raise TaskConflict(task.id, task.status, "mark_sending", "processing")
    if worker_id is not None and task.worker_id != worker_id:
        raise TaskConflict(
            task.id,
            task.status,
            "mark_sending",
            "processing",
            reason=(
                f"it is claimed by worker {task.worker_id!r}, not {worker_id!r} "
                f"(the lease of {worker_id!r} ended and the task was claimed again)"
            ),
        )
    return {"worker_id": task.worker_id, "attempt": task.attempts + 1}


def log_event(
    kind: str, task_id: str, session_id: str, group_id: str, status: str, detail: Mapping[str, Any]
) -> None:
    """Log a task event through the ``engagequeue`` logger, with its ids as ``extra``."""
    level = logging.WARNING if kind in {"failed", "expired"} else logging.INFO
    if not logger.isEnabledFor(level):
        return
    logger.log(
        level,
        "task %s %s (session=%s group=%s status=%s)%s",
        task_id,
        kind,
        session_id,
        group_id,
        status,
        f" {dict(detail)}" if detail else "",
        extra={
            "task_id": task_id,
            "session_id": session_id,
            "group_id": group_id,
            "status": status,
            "event": kind,
        },
    )


def message_detail(message_id: str | None) -> dict[str, Any]:
    """The detail of a ``completed`` event."""
    return {} if message_id is None else {"message_id": message_id}


def fail_detail(task: Task, reason: str) -> dict[str, Any]:
    """The detail of the event that records a ``fail``: with ``retry_at`` when it retries."""
    if task.status is TaskStatus.PENDING:
        return {"error": reason, "retry_at": isoformat(task.scheduled_at)}
    return {"error": reason}


class Event:
    """An event to record: its task (as the change left it), kind and detail."""

    __slots__ = ("detail", "kind", "task")

    def __init__(self, task: Task, kind: str, detail: Mapping[str, Any]) -> None:
        self.task = task
        self.kind = kind
        self.detail = detail


def log_events(events: Iterable[Event]) -> None:
    """Log each event once its transaction committed."""
    for e in events:
        t = e.task
        log_event(e.kind, t.id, t.session_id, t.group_id, t.status.value, e.detail)
