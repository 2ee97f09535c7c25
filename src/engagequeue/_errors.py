"""The errors engagequeue raises on purpose: one root, split by cause and by who is at fault."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._models import TaskStatus
    from ._recurrence import RecurrenceStatus

__all__ = [
    "CompositionError",
    "EngageQueueError",
    "OutcomeUnknownError",
    "PermanentTransportError",
    "RecurrenceConflict",
    "RecurrenceNotFound",
    "SessionDisconnectedError",
    "SessionNotFound",
    "TaskConflict",
    "TaskNotFound",
    "TransientTransportError",
    "TransportError",
    "ValidationError",
    "VersionConflict",
]


class EngageQueueError(Exception):
    """Base of every error the package raises on purpose."""


class ValidationError(EngageQueueError, ValueError):
    """Bad input: nothing was written.

    ``field`` names the offending input where there is one (``"payload.media_url"``,
    ``"scheduled_at"``, ``"limit"``...), so adapters can point at it.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class TaskNotFound(EngageQueueError, LookupError):  # noqa: N818 - contract name
    """No task has this id."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"no task with id {task_id!r}")
        self.task_id = task_id


class SessionNotFound(EngageQueueError, LookupError):  # noqa: N818 - contract name
    """No session has this id; add it with ``add_session`` first."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"no session with id {session_id!r}; add it with add_session() first")
        self.session_id = session_id


class TaskConflict(EngageQueueError):  # noqa: N818 - contract name
    """The task is not in a state that allows the operation.

    ``status`` holds the task's current status, ``operation`` what was refused.
    """

    def __init__(
        self,
        task_id: str,
        status: TaskStatus,
        operation: str,
        allowed: str,
        *,
        reason: str | None = None,
    ) -> None:
        super().__init__(
            f"cannot {operation} task {task_id!r}: "
            + (reason or f"it is {status.value}, and {operation} needs a {allowed} task")
        )
        self.task_id = task_id
        self.status = status
        self.operation = operation


class VersionConflict(TaskConflict):
    """The task changed since the version the caller read (an ``if_version`` mismatch).

    A ``TaskConflict`` (``status`` is the task's current status) that also carries the
    ``version`` the caller expected and the task's current ``current_version``, so an
    adapter can tell "someone else changed it" (HTTP 412) from "it is not pending" (409).
    """

    def __init__(
        self, task_id: str, status: TaskStatus, operation: str, expected: int, current: int
    ) -> None:
        super().__init__(
            task_id,
            status,
            operation,
            "pending",
            reason=f"it is at version {current}, not the expected version {expected}",
        )
        self.version = expected
        self.current_version = current


class OutcomeUnknownError(EngageQueueError):
    """A write's connection broke while it committed: it may or may not have been applied.

    Raised by ``PostgresTaskStore`` for writes that are not safe to repeat (claims,
    completions, edits...); check with ``get()`` or ``events()``.
    """


class TransportError(EngageQueueError):
    """A message transport could not send a post."""


class TransientTransportError(TransportError):
    """A passing failure (rate limit, 5xx, timeout): retry later."""


class PermanentTransportError(TransportError):
    """A failure that retrying will not fix (bad key, unknown chat): fail now."""


class SessionDisconnectedError(TransportError):
    """The WhatsApp session dropped: the post waits for it to reconnect."""


class CompositionError(EngageQueueError):
    """The model could not write a post that follows the rules within its attempts.

    ``violations`` lists what the last answer broke.
    """

    def __init__(self, message: str, violations: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.violations = violations


class RecurrenceNotFound(EngageQueueError, LookupError):  # noqa: N818 - contract name
    """No recurrence has this id."""

    def __init__(self, recurrence_id: str) -> None:
        super().__init__(f"no recurrence with id {recurrence_id!r}")
        self.recurrence_id = recurrence_id


class RecurrenceConflict(EngageQueueError):  # noqa: N818 - named like TaskConflict
    """The recurrence is not in a state that allows the operation (it has ended).

    ``status`` holds its current ``RecurrenceStatus``, ``operation`` what was refused.
    """

    def __init__(self, recurrence_id: str, status: RecurrenceStatus, operation: str) -> None:
        super().__init__(f"cannot {operation} recurrence {recurrence_id!r}: it is {status.value}")
        self.recurrence_id = recurrence_id
        self.status = status
        self.operation = operation
