"""engagequeue: schedule, edit, send and audit engagement posts into WhatsApp groups.

Posts leave on time, exactly once under normal operation, in order within a group, and
every change is recorded. ``import engagequeue`` needs only the core dependencies;
PostgreSQL, FastAPI and OpenAI support load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._abc import (
    MessageTransport,
    NextDueSource,
    RecurringTaskStore,
    ScheduleItem,
    SendReceipt,
    SendRecorder,
    SessionStatus,
    SessionStatusSource,
    TaskStore,
    WakeupSource,
)
from ._context import current_task
from ._errors import (
    CompositionError,
    EngageQueueError,
    OutcomeUnknownError,
    PermanentTransportError,
    RecurrenceConflict,
    RecurrenceNotFound,
    SessionDisconnectedError,
    SessionNotFound,
    TaskConflict,
    TaskNotFound,
    TransientTransportError,
    TransportError,
    ValidationError,
    VersionConflict,
)
from ._models import (
    GroupProfile,
    MediaType,
    Page,
    Payload,
    ProductLink,
    Task,
    TaskEvent,
    TaskStatus,
)
from ._recurrence import (
    Recurrence,
    RecurrenceStatus,
    daily_rule,
    monthly_rule,
    occurrences,
    weekly_rule,
)
from ._retry import RetryPolicy, is_testing, set_testing
from ._scheduler import Scheduler
from ._store_sqlite import SQLiteTaskStore
from ._transport_memory import ConsoleTransport, InMemoryTransport, SentMessage
from .compose import ComposedPost, ModelCallError, PostComposer, TokenUsage

if TYPE_CHECKING:
    from ._store_postgres import PostgresTaskStore

__all__ = [
    "ComposedPost",
    "CompositionError",
    "ConsoleTransport",
    "EngageQueueError",
    "GroupProfile",
    "InMemoryTransport",
    "MediaType",
    "MessageTransport",
    "ModelCallError",
    "NextDueSource",
    "OutcomeUnknownError",
    "Page",
    "Payload",
    "PermanentTransportError",
    "PostComposer",
    "PostgresTaskStore",
    "ProductLink",
    "Recurrence",
    "RecurrenceConflict",
    "RecurrenceNotFound",
    "RecurrenceStatus",
    "RecurringTaskStore",
    "RetryPolicy",
    "SQLiteTaskStore",
    "ScheduleItem",
    "Scheduler",
    "SendReceipt",
    "SendRecorder",
    "SentMessage",
    "SessionDisconnectedError",
    "SessionNotFound",
    "SessionStatus",
    "SessionStatusSource",
    "Task",
    "TaskConflict",
    "TaskEvent",
    "TaskNotFound",
    "TaskStatus",
    "TaskStore",
    "TokenUsage",
    "TransientTransportError",
    "TransportError",
    "ValidationError",
    "VersionConflict",
    "WakeupSource",
    "current_task",
    "daily_rule",
    "is_testing",
    "monthly_rule",
    "occurrences",
    "set_testing",
    "weekly_rule",
]

__version__ = "0.1.0.dev0"


def __getattr__(name: str) -> Any:  # noqa: ANN401 - module attribute hook
    """Load the optional backends on first use, so ``import engagequeue`` stays light."""
    if name == "PostgresTaskStore":
        from ._store_postgres import PostgresTaskStore  # noqa: PLC0415 - lazy on purpose

        return PostgresTaskStore
    raise AttributeError(f"module 'engagequeue' has no attribute {name!r}")
