# Copyright 2026 engagequeue developers. Licensed under the MIT license.
"""Retry policy as data: a frozen attrs value whose strategies are tenacity's.

The scheduler never sleeps through a backoff with a task in memory. After a failed
attempt it asks the policy two questions, "retry this error?" and "after how long?",
and records the answer durably with ``store.fail(task_id, error, retry_at=...)``. The
questions are answered by tenacity's own ``retry``, ``stop`` and ``wait`` strategies,
applied to a ``tenacity.RetryCallState`` that describes the attempt. The store enforces
the task's ``max_attempts``; the policy's ``stop`` can only stop sooner.

``set_testing(True)`` removes every backoff wait (a retry is due at once), like
``stamina.set_testing``: tests exercise the retry path without waiting or faking time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, TypeAlias

import attrs
import tenacity
from tenacity.retry import retry_base
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from ._errors import PermanentTransportError, SessionDisconnectedError, ValidationError

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["RetryDecision", "RetryPolicy", "is_testing", "set_testing"]

WaitStrategy: TypeAlias = wait_base | Callable[[tenacity.RetryCallState], float]
StopStrategy: TypeAlias = stop_base | Callable[[tenacity.RetryCallState], bool]
RetryStrategy: TypeAlias = retry_base | Callable[[tenacity.RetryCallState], bool]


class _TestingState:
    """Whether backoff waits are removed (process-wide, like stamina's testing mode)."""

    __slots__ = ("lock", "on")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.on = False


_STATE: Final = _TestingState()


class _Restore:
    """Returned by ``set_testing``: use it as a context manager to restore the old mode."""

    __slots__ = ("_previous",)

    def __init__(self, previous: bool) -> None:
        self._previous = previous

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with _STATE.lock:
            _STATE.on = self._previous


def set_testing(testing: bool) -> _Restore:
    """Turn testing mode on or off: while on, every retry is due at once, with no backoff.

    The number of attempts is unchanged (the task's ``max_attempts`` still applies), so a
    test sees exactly the retries production would make, without waiting for them.

    Can be used as a context manager that restores the previous mode on exit::

        with engagequeue.set_testing(True):
            ...

    Args:
        testing: ``True`` to remove backoff waits, ``False`` to restore them.
    """
    if not isinstance(testing, bool):
        raise ValidationError("testing must be True or False", field="testing")
    with _STATE.lock:
        previous, _STATE.on = _STATE.on, testing
    return _Restore(previous)


def is_testing() -> bool:
    """Whether testing mode (no backoff waits) is on; see ``set_testing``."""
    return _STATE.on


def _default_wait() -> wait_base:
    # 10 s, 20 s, 40 s... capped at 10 minutes, plus up to 10 s of random jitter so that
    # retries of many posts after a gateway outage do not arrive as one burst.
    return tenacity.wait_exponential(multiplier=10, max=600) + tenacity.wait_random(0, 10)


def _default_retry() -> retry_base:
    # Everything but a permanent failure is worth another attempt: transient errors,
    # timeouts and unexpected exceptions from a transport alike.
    return tenacity.retry_if_not_exception_type((PermanentTransportError, SessionDisconnectedError))


@attrs.frozen
class RetryDecision:
    """What the policy decided about one failed attempt.

    Attributes:
        retry: whether another attempt should be made (if the task has attempts left).
        delay: seconds to wait before that attempt (0 when ``retry`` is false).
    """

    retry: bool
    delay: float


_EXAMPLES: Final = {
    "wait": "tenacity.wait_fixed(5)",
    "stop": "tenacity.stop_after_attempt(3)",
    "retry": "tenacity.retry_if_exception_type(TransientTransportError)",
}


def _strategy(name: str) -> Callable[[object, object, object], None]:
    def check(_instance: object, _attribute: object, value: object) -> None:
        if not callable(value):
            raise ValidationError(
                f"{name} must be a tenacity {name} strategy (for example "
                f"{_EXAMPLES[name]}), got {value!r}",
                field=name,
            )

    return check


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How the scheduler retries a failed send: tenacity strategies, held as a value.

    Args:
        wait: a tenacity wait strategy giving the backoff before the next attempt from the
            attempt number (default: exponential from 10 s, doubling, capped at 10 min,
            plus up to 10 s of jitter).
        stop: a tenacity stop strategy that can give up before the task's ``max_attempts``
            (default ``tenacity.stop_never``: ``max_attempts`` alone decides). Its
            ``attempt_number`` counts this task's attempts including the failed one.
            Limit how late a post may leave with the scheduler's ``max_lateness``.
        retry: a tenacity retry predicate on the failed attempt's exception (default:
            every error except ``PermanentTransportError``).

    Example::

        RetryPolicy(
            wait=tenacity.wait_exponential_jitter(max=60),
            stop=tenacity.stop_after_attempt(5),
        )
    """

    wait: WaitStrategy = attrs.field(factory=_default_wait, validator=_strategy("wait"))
    stop: StopStrategy = attrs.field(default=tenacity.stop_never, validator=_strategy("stop"))
    retry: RetryStrategy = attrs.field(factory=_default_retry, validator=_strategy("retry"))

    def decide(
        self, exc: BaseException, attempt_number: int, lateness: float = 0.0
    ) -> RetryDecision:
        """Decide whether and when to retry after attempt ``attempt_number`` raised ``exc``.

        Args:
            exc: the exception the attempt raised.
            attempt_number: the failed attempt's number, from 1.
            lateness: seconds between the attempt's scheduled time and now; tenacity's
                ``seconds_since_start`` for time-based strategies.

        Returns:
            the decision; its ``delay`` is 0 in testing mode (see ``set_testing``).
        """
        state = tenacity.RetryCallState(
            retry_object=tenacity.AsyncRetrying(stop=self.stop, wait=self.wait, retry=self.retry),
            fn=None,
            args=(),
            kwargs={},
        )
        state.attempt_number = max(1, attempt_number)
        state.set_exception((type(exc), exc, exc.__traceback__))
        now = time.monotonic()
        state.outcome_timestamp = now
        state.start_time = now - max(0.0, lateness)
        if not self.retry(state) or self.stop(state):
            return RetryDecision(retry=False, delay=0.0)
        delay = 0.0 if _STATE.on else max(0.0, float(self.wait(state)))
        return RetryDecision(retry=True, delay=delay)
