"""The public surface is exactly what we mean it to be, and stays light to import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import engagequeue

CONTRACT_NAMES = {
    "ComposedPost",
    "InMemoryTransport",
    "MessageTransport",
    "PostComposer",
    "Scheduler",
    "SendReceipt",
    "CompositionError",
    "EngageQueueError",
    "GroupProfile",
    "MediaType",
    "Page",
    "Payload",
    "PermanentTransportError",
    "PostgresTaskStore",
    "ProductLink",
    "Recurrence",
    "RecurrenceConflict",
    "RecurrenceNotFound",
    "RecurrenceStatus",
    "SQLiteTaskStore",
    "SessionDisconnectedError",
    "SessionNotFound",
    "Task",
    "TaskConflict",
    "TaskEvent",
    "TaskNotFound",
    "TaskStatus",
    "TaskStore",
    "TransientTransportError",
    "TransportError",
    "ValidationError",
}


INTENDED = CONTRACT_NAMES | {
    "ComposedPost",
    "ConsoleTransport",
    "InMemoryTransport",
    "ModelCallError",
    "NextDueSource",
    "OutcomeUnknownError",
    "PostComposer",
    "RecurringTaskStore",
    "RetryPolicy",
    "ScheduleItem",
    "Scheduler",
    "SendReceipt",
    "SendRecorder",
    "SentMessage",
    "SessionStatus",
    "SessionStatusSource",
    "TokenUsage",
    "VersionConflict",
    "WakeupSource",
    "current_task",
    "daily_rule",
    "is_testing",
    "monthly_rule",
    "occurrences",
    "set_testing",
    "weekly_rule",
}


def test_the_exported_names_are_exactly_the_intended_ones() -> None:
    assert set(engagequeue.__all__) == INTENDED


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert list(engagequeue.__all__) == sorted(engagequeue.__all__)
    for name in engagequeue.__all__:
        assert getattr(engagequeue, name) is not None


def test_every_contract_name_is_exported() -> None:
    assert set(engagequeue.__all__) >= CONTRACT_NAMES


def test_errors_have_the_contract_bases() -> None:
    assert issubclass(engagequeue.ValidationError, ValueError)
    assert issubclass(engagequeue.TaskNotFound, LookupError)
    assert issubclass(engagequeue.SessionNotFound, LookupError)
    assert issubclass(engagequeue.RecurrenceNotFound, LookupError)
    assert issubclass(engagequeue.RecurrenceNotFound, engagequeue.EngageQueueError)
    for name in (
        "ValidationError",
        "TaskNotFound",
        "SessionNotFound",
        "TaskConflict",
        "TransportError",
        "CompositionError",
    ):
        assert issubclass(getattr(engagequeue, name), engagequeue.EngageQueueError)
    for name in ("TransientTransportError", "PermanentTransportError", "SessionDisconnectedError"):
        assert issubclass(getattr(engagequeue, name), engagequeue.TransportError)


def fresh_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter that imports engagequeue from this checkout."""
    src = str(Path(engagequeue.__file__).resolve().parents[1])
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": src},
    )


def test_importing_the_package_loads_no_optional_backend() -> None:
    code = (
        "import sys, engagequeue; "
        "heavy = [m for m in ('psycopg', 'fastapi', 'openai', 'httpx', 'starlette', 'pytest') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = fresh_python(code)
    assert out.stdout.strip() == ""


def test_engagequeue_testing_exports_the_conformance_suite() -> None:
    import inspect

    from engagequeue import testing

    assert testing.__all__ == ["StoreFactory", "TaskStoreSuite"]
    suite = testing.TaskStoreSuite
    tests = [name for name in dir(suite) if name.startswith("test_")]
    assert len(tests) >= 50
    assert all(inspect.iscoroutinefunction(getattr(suite, name)) for name in tests)
    # Not collected by itself (pytest collects Test* classes): only a subclass runs it.
    assert not suite.__name__.startswith("Test")


def test_engagequeue_testing_without_pytest_says_which_extra_to_install() -> None:
    code = (
        "import sys; sys.modules['pytest_asyncio'] = None\n"
        "try:\n    import engagequeue.testing\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    out = fresh_python(code)
    assert "pytest_asyncio is missing" in out.stdout
    assert "pip install 'engagequeue[testing]'" in out.stdout
