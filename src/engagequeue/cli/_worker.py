"""``engagequeue worker``: the Scheduler as a long-running process.

Configured by flags or ``ENGAGEQUEUE_*`` variables; logs as text or JSON lines on stderr;
a status line every ``--status-interval`` seconds; an optional Prometheus endpoint. On
SIGINT or SIGTERM it stops claiming, lets the sends under way finish (or, after
``--stop-timeout``, returns them to pending), and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, cast

import attrs
import click

from engagequeue._errors import EngageQueueError, ValidationError
from engagequeue._scheduler import Scheduler
from engagequeue._transport_memory import ConsoleTransport

from ._app import BadInput, CliError, Config, bad_input, register
from ._inspect import Inspector
from ._metrics import Observed, ObservedTransport, Prometheus, WorkerStats

if TYPE_CHECKING:
    from collections.abc import Callable

    from engagequeue._abc import MessageTransport, TaskStore

__all__ = ["JsonFormatter", "configure_logging", "log_options", "worker"]

logger: Final = logging.getLogger("engagequeue.worker")

_GATEWAYS: Final = ("waha", "evolution")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, and the error if any."""

    def format(self, record: logging.LogRecord) -> str:
        """Format ``record`` as one line of JSON."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(log_format: str, level: str) -> None:
    """Send engagequeue's logs to stderr, as text lines or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def log_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The ``--log-format`` and ``--log-level`` options of the long-running commands."""
    command = click.option(
        "--log-level",
        type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
        default="info",
        show_default=True,
        envvar="ENGAGEQUEUE_LOG_LEVEL",
        show_envvar=True,
    )(command)
    return click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        envvar="ENGAGEQUEUE_LOG_FORMAT",
        show_envvar=True,
        help="Log lines as text, or as JSON objects.",
    )(command)


@attrs.frozen
class WorkerOptions:
    """The worker's settings, as the flags and variables gave them."""

    transport: str
    gateway_url: str | None
    api_key: str | None
    poll_interval: float
    concurrency: int
    min_send_gap: float
    max_lateness: float | None
    stop_timeout: float
    status_interval: float
    metrics_host: str
    metrics_port: int | None


def build_transport(options: WorkerOptions) -> MessageTransport:
    """The transport ``--transport`` names (gateways need ``--gateway-url`` and httpx)."""
    if options.transport == "console":
        return ConsoleTransport()
    if not options.gateway_url:
        raise BadInput(f"--gateway-url: required with --transport {options.transport}")
    try:
        from engagequeue import transports  # noqa: PLC0415 - httpx only when used

        cls = (
            transports.WahaTransport
            if options.transport == "waha"
            else transports.EvolutionTransport
        )
    except ImportError as exc:
        raise CliError(
            f"--transport {options.transport} needs httpx: pip install 'engagequeue[gateways]'"
        ) from exc
    try:
        return cast("MessageTransport", cls(options.gateway_url, api_key=options.api_key))
    except ValidationError as exc:
        raise bad_input(exc, {"base_url": "--gateway-url", "api_key": "--api-key"}) from None


def build_scheduler(
    store: TaskStore, transport: MessageTransport, options: WorkerOptions
) -> Scheduler:
    """The Scheduler with the worker's settings (bad values: ``BadInput``)."""
    try:
        return Scheduler(
            store,
            transport,
            poll_interval=options.poll_interval,
            concurrency=options.concurrency,
            min_send_gap=options.min_send_gap,
            max_lateness=options.max_lateness,
            stop_timeout=options.stop_timeout,
        )
    except ValidationError as exc:
        names = {
            "poll_interval": "--poll-interval",
            "concurrency": "--concurrency",
            "min_send_gap": "--min-send-gap",
            "max_lateness": "--max-lateness",
            "stop_timeout": "--stop-timeout",
        }
        raise bad_input(exc, names) from None


class Worker:
    """One worker process: the scheduler, its status line, metrics, and the stop signals."""

    def __init__(self, config: Config, options: WorkerOptions) -> None:
        self.config = config
        self.options = options
        self.stats = WorkerStats()
        self.store = config.store()
        self.transport = build_transport(options)
        # The Scheduler sees the store and transport through counting wrappers; it asks
        # them for the same methods and signatures as the originals.
        observed_store = cast("TaskStore", Observed(self.store, self.stats))
        observed_transport = cast("MessageTransport", ObservedTransport(self.transport, self.stats))
        self.scheduler = build_scheduler(observed_store, observed_transport, options)
        self.exporter: Prometheus | None = None
        if options.metrics_port is not None:
            try:
                self.exporter = Prometheus(lambda: self.scheduler.in_flight)
            except ImportError as exc:
                raise CliError(str(exc)) from exc
            self.stats.exporter = self.exporter
        self.inspector = Inspector(config.db, config.schema)
        self._stop = asyncio.Event()
        self._started = datetime.now(UTC)

    def request_stop(self, signame: str) -> None:
        """Begin the graceful stop (a signal handler)."""
        if self._stop.is_set():
            logger.info("%s again: already stopping, sends under way are finishing", signame)
            return
        logger.info("%s received: stopping (sends under way finish or go back to pending)", signame)
        self._stop.set()

    async def status_line(self) -> str:
        """sent, failed, pending and lag, as the status line and the final line show them."""
        now = datetime.now(UTC)
        try:
            queue = await self.inspector.queue(now)
        except EngageQueueError as exc:
            self.stats.store_error("status")
            return f"status: the database did not answer: {exc}"
        if self.exporter is not None:
            self.exporter.set_pending(queue.pending, queue.oldest_due)
        lag = 0.0 if queue.oldest_due is None else max((now - queue.oldest_due).total_seconds(), 0)
        out = self.stats.outcomes
        return (
            f"status: sent {out['completed']}, failed {out['failed'] + out['expired']}, "
            f"retried {out['retried']}, pending {sum(queue.pending.values())}, "
            f"lag {lag:.1f} s, in flight {self.scheduler.in_flight}"
        )

    async def _report(self) -> None:
        interval = self.options.status_interval
        # Metrics want fresher pending counts than the status line does.
        refresh = min(interval, 15.0) if self.exporter is not None else interval
        ticks_per_line = max(round(interval / refresh), 1)
        tick = 0
        while True:
            await asyncio.sleep(refresh)
            tick += 1
            line = await self.status_line()
            if tick % ticks_per_line == 0:
                logger.info("%s", line)

    async def run(self) -> None:
        """Run until SIGINT/SIGTERM, then stop gracefully."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        try:
            await self.store.open()
        except Exception as exc:
            raise CliError(f"cannot open the database: {exc}") from exc
        try:
            async with contextlib.AsyncExitStack() as stack:
                stack.push_async_callback(self.store.close)
                stack.push_async_callback(self.inspector.close)
                aclose = getattr(self.transport, "aclose", None)
                if callable(aclose):
                    stack.push_async_callback(aclose)
                if self.exporter is not None:
                    port = self.exporter.serve(
                        self.options.metrics_host, self.options.metrics_port or 0
                    )
                    stack.callback(self.exporter.close)
                    logger.info("metrics on http://%s:%d/metrics", self.options.metrics_host, port)
                    await self.status_line()  # the pending gauges are filled from the start
                await self.scheduler.start()
                logger.info(
                    "worker %s started: transport %s, poll every %s s, concurrency %d",
                    self.scheduler.worker_id,
                    self.options.transport,
                    self.options.poll_interval,
                    self.options.concurrency,
                )
                reporter = asyncio.create_task(self._report(), name="engagequeue-status")
                try:
                    await self._stop.wait()
                finally:
                    reporter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reporter
                    await self.scheduler.stop()
                logger.info("stopped; %s", await self.status_line())
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


def _seconds_option(
    name: str, env: str, default: float | None, text: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        name,
        type=click.FloatRange(min=0, min_open=True),
        default=default,
        envvar=env,
        show_envvar=True,
        show_default=default is not None,
        help=text,
    )


@click.command()
@click.option(
    "--transport",
    type=click.Choice(["console", *_GATEWAYS]),
    required=True,
    envvar="ENGAGEQUEUE_TRANSPORT",
    show_envvar=True,
    help="console prints each post; waha and evolution send through that gateway.",
)
@click.option(
    "--gateway-url",
    envvar="ENGAGEQUEUE_GATEWAY_URL",
    show_envvar=True,
    metavar="URL",
    help="The gateway's base URL (waha, evolution).",
)
@click.option(
    "--api-key",
    envvar="ENGAGEQUEUE_API_KEY",
    show_envvar=True,
    metavar="KEY",
    help="The gateway's API key.",
)
@_seconds_option(
    "--poll-interval",
    "ENGAGEQUEUE_POLL_INTERVAL",
    30.0,
    "Longest sleep between two looks at the database; changes made elsewhere wake it sooner.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    envvar="ENGAGEQUEUE_CONCURRENCY",
    show_envvar=True,
    help="Posts held at once (one group's posts always leave one at a time).",
)
@click.option(
    "--min-send-gap",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    envvar="ENGAGEQUEUE_MIN_SEND_GAP",
    show_envvar=True,
    help="Least seconds between two sends of one session (gateways ban bursts).",
)
@_seconds_option(
    "--max-lateness",
    "ENGAGEQUEUE_MAX_LATENESS",
    None,
    "Fail a post (expired) instead of sending it more than this many seconds late.",
)
@click.option(
    "--stop-timeout",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    envvar="ENGAGEQUEUE_STOP_TIMEOUT",
    show_envvar=True,
    help="Seconds a stop lets sends under way finish before returning them to pending.",
)
@_seconds_option(
    "--status-interval",
    "ENGAGEQUEUE_STATUS_INTERVAL",
    60.0,
    "Seconds between two status lines (sent, failed, pending, lag).",
)
@log_options
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    envvar="ENGAGEQUEUE_METRICS_PORT",
    show_envvar=True,
    help="Serve Prometheus metrics on this port (needs engagequeue[metrics]).",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    envvar="ENGAGEQUEUE_METRICS_HOST",
    show_envvar=True,
    help="The address the metrics endpoint listens on (0.0.0.0 in a container).",
)
@click.pass_context
def worker(ctx: click.Context, /, **values: Any) -> None:  # noqa: ANN401
    """Send due posts until SIGINT or SIGTERM, then stop gracefully and exit 0."""
    config = ctx.find_object(Config)
    assert config is not None  # noqa: S101 - the root group sets it
    options = WorkerOptions(
        **{k: v for k, v in values.items() if k not in {"log_format", "log_level"}}
    )
    configure_logging(values["log_format"], values["log_level"])
    runner = Worker(config, options)  # every option checked before the database is opened
    try:
        asyncio.run(runner.run())
    except ValidationError as exc:
        raise bad_input(exc) from None


register(worker)
