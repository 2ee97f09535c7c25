"""What a worker counts: outcomes, lag, claims and sends in flight, store errors.

``Observed`` wraps the worker's store and transport without changing what they do: every
store coroutine is passed through (signatures included, so the ``Scheduler`` sees the same
optional capabilities), and its result or error is counted. The counts feed the status
line, and a Prometheus endpoint when ``prometheus-client`` is installed (extra
``engagequeue[metrics]``).
"""

from __future__ import annotations

import functools
import inspect
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from engagequeue._context import current_task
from engagequeue._errors import SessionNotFound, TaskConflict, TaskNotFound, ValidationError
from engagequeue._models import Task, TaskStatus

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from engagequeue._abc import MessageTransport, SendReceipt
    from engagequeue._models import Payload

__all__ = ["LAG_BUCKETS", "Observed", "Prometheus", "WorkerStats"]

LAG_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""Dispatch lag histogram buckets, in seconds (a post's send start minus its time)."""

# Errors that say something about the call, not about the store's health.
_NOT_STORE_ERRORS: Final = (TaskConflict, TaskNotFound, SessionNotFound, ValidationError)


class WorkerStats:
    """Counts since the worker started, and the hooks that feed an optional exporter."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.claims = 0
        self.sends_in_flight = 0
        self.store_errors: Counter[str] = Counter()
        self.exporter: Prometheus | None = None

    def outcome(self, task: Task, kind: str) -> None:
        """Record how an attempt ended: completed, failed, retried, expired or released."""
        if kind == "failed":
            if task.status is TaskStatus.PENDING:
                kind = "retried"
            elif (task.last_error or "").startswith("expired"):
                kind = "expired"
        self.outcomes[kind] += 1
        if self.exporter is not None:
            self.exporter.posts.labels(outcome=kind).inc()

    def claimed(self, tasks: list[Task]) -> None:
        """Record a claim."""
        self.claims += len(tasks)
        if self.exporter is not None:
            self.exporter.claims.inc(len(tasks))

    def store_error(self, operation: str) -> None:
        """Record a store call that failed for a reason of the store's own."""
        self.store_errors[operation] += 1
        if self.exporter is not None:
            self.exporter.store_errors.labels(operation=operation).inc()

    def send_started(self, lag: float | None) -> None:
        """Record a send that starts ``lag`` seconds after its post's time."""
        self.sends_in_flight += 1
        if self.exporter is not None:
            self.exporter.sends_in_flight.inc()
            if lag is not None:
                self.exporter.lag.observe(max(lag, 0.0))

    def send_ended(self) -> None:
        """Record a send that returned or raised."""
        self.sends_in_flight -= 1
        if self.exporter is not None:
            self.exporter.sends_in_flight.dec()


_OUTCOME_OF: Final[Mapping[str, str]] = {
    "complete": "completed",
    "fail": "failed",
    "release": "released",
}


class Observed:
    """A store or transport as it was, with its results and errors counted in ``stats``."""

    def __init__(self, inner: Any, stats: WorkerStats) -> None:  # noqa: ANN401 - any store
        self._inner = inner
        self._stats = stats

    def __repr__(self) -> str:
        return f"Observed({self._inner!r})"

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - whatever the wrapped object has
        attr = getattr(self._inner, name)
        if name.startswith("_") or not inspect.iscoroutinefunction(attr):
            return attr
        wrapped = self._wrap(name, attr)
        self.__dict__[name] = wrapped  # looked up once
        return wrapped

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        stats = self._stats
        outcome = _OUTCOME_OF.get(name)

        @functools.wraps(method)  # keeps the signature the Scheduler inspects
        async def call(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
            try:
                result = await method(*args, **kwargs)
            except _NOT_STORE_ERRORS:
                raise
            except Exception:
                stats.store_error(name)
                raise
            if outcome is not None and isinstance(result, Task):
                stats.outcome(result, outcome)
            elif name == "claim_due" and isinstance(result, list):
                stats.claimed(result)
            return result

        return call


class ObservedTransport:
    """A transport whose sends in flight and dispatch lag are counted."""

    def __init__(self, inner: MessageTransport, stats: WorkerStats) -> None:
        self._inner = inner
        self._stats = stats

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - session_status and the like
        return getattr(self._inner, name)

    async def send(self, session_id: str, group_id: str, payload: Payload) -> SendReceipt:
        """Send through the wrapped transport, counting it."""
        task = current_task()
        lag = None if task is None else (datetime.now(UTC) - task.scheduled_at).total_seconds()
        self._stats.send_started(lag)
        try:
            return await self._inner.send(session_id, group_id, payload)
        finally:
            self._stats.send_ended()


class Prometheus:
    """The worker's Prometheus series, on a registry of their own, served over HTTP.

    Raises ``ImportError`` naming the extra when ``prometheus-client`` is missing.
    """

    def __init__(self, claims_in_flight: Callable[[], float]) -> None:
        try:
            import prometheus_client as prom  # noqa: PLC0415 - optional extra
        except ImportError as exc:
            raise ImportError(
                "--metrics-port needs prometheus-client: pip install 'engagequeue[metrics]'"
            ) from exc
        self._prom = prom
        self.registry = prom.CollectorRegistry()
        r = self.registry
        self.posts = prom.Counter(
            "engagequeue_posts",
            "Send attempts by outcome: completed, failed, retried, expired, released.",
            ["outcome"],
            registry=r,
        )
        self.lag = prom.Histogram(
            "engagequeue_dispatch_lag_seconds",
            "How long after its scheduled time each send started.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.pending = prom.Gauge(
            "engagequeue_pending_posts", "Pending posts, by session.", ["session"], registry=r
        )
        self.oldest_due = prom.Gauge(
            "engagequeue_oldest_due_seconds",
            "How long the oldest due pending post has been waiting (0 when none is due).",
            registry=r,
        )
        self.claims = prom.Counter("engagequeue_claims", "Posts this worker claimed.", registry=r)
        claims_gauge = prom.Gauge(
            "engagequeue_claims_in_flight",
            "Posts this worker holds (claimed, waiting or sending).",
            registry=r,
        )
        claims_gauge.set_function(claims_in_flight)
        self.sends_in_flight = prom.Gauge(
            "engagequeue_sends_in_flight", "Sends under way at the gateway.", registry=r
        )
        self.store_errors = prom.Counter(
            "engagequeue_store_errors",
            "Store calls that failed for a reason of the store's own, by operation.",
            ["operation"],
            registry=r,
        )
        self.server: Any = None
        self._sessions: set[str] = set()

    def serve(self, host: str, port: int) -> int:
        """Serve ``/metrics`` on ``host:port`` from a background thread; return the port."""
        server, _thread = self._prom.start_http_server(port, addr=host, registry=self.registry)
        self.server = server
        return int(server.server_port)

    def set_pending(self, pending: Mapping[str, int], oldest_due: datetime | None) -> None:
        """Update the pending gauges; sessions that have no pending post any more show 0."""
        for session in self._sessions - set(pending):
            self.pending.labels(session=session).set(0)
        for session, count in pending.items():
            self.pending.labels(session=session).set(count)
        self._sessions |= set(pending)
        waited = 0.0 if oldest_due is None else (datetime.now(UTC) - oldest_due).total_seconds()
        self.oldest_due.set(max(waited, 0.0))

    def close(self) -> None:
        """Stop serving."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
