"""``engagequeue serve``: the moderation HTTP API and the gateways' webhooks, under uvicorn.

With ``engagequeue worker`` on the same database this is the reference deployment: the
web process writes, the worker sends (see docs/cli.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import TYPE_CHECKING, Any, Final

import click

from ._app import BadInput, CliError, Config, register
from ._worker import configure_logging, log_options

if TYPE_CHECKING:
    from collections.abc import Iterator

    from engagequeue._abc import TaskStore

__all__ = ["serve"]

logger: Final = logging.getLogger("engagequeue.serve")

_NEEDS_HTTP: Final = "serve needs FastAPI and uvicorn: pip install 'engagequeue[http]'"


def app_options() -> dict[str, Any]:
    """Keyword options for ``create_app``: the one place to switch its features on.

    When ``create_app`` takes ``console=True`` (the moderation console), it goes here.
    """
    return {}


def build_app(
    store: TaskStore,
    *,
    waha_hmac_key: str | None,
    evolution_api_key: str | None,
    insecure_webhooks: bool,
    webhooks: bool,
) -> Any:  # noqa: ANN401 - a fastapi.FastAPI; fastapi is an optional extra
    """The HTTP app: ``create_app(store)`` plus the webhook receivers."""
    from engagequeue.http import create_app, create_webhook_router  # noqa: PLC0415 - extra

    app = create_app(store, **app_options())
    if webhooks:
        app.include_router(
            create_webhook_router(
                store,
                waha_hmac_key=waha_hmac_key,
                evolution_api_key=evolution_api_key,
                insecure_no_auth=insecure_webhooks,
                prefix="/webhooks",
            )
        )
    return app


def _check_webhook_options(
    waha_hmac_key: str | None,
    evolution_api_key: str | None,
    insecure: bool,
    no_webhooks: bool,
) -> None:
    keyed = bool(waha_hmac_key) or bool(evolution_api_key)
    if no_webhooks and (keyed or insecure):
        raise BadInput("--no-webhooks: cannot go with webhook keys or --insecure-webhooks")
    if not (keyed or insecure or no_webhooks):
        raise BadInput(
            "--waha-hmac-key / --evolution-api-key: the webhook receivers need a key "
            "(or ENGAGEQUEUE_WAHA_HMAC_KEY / ENGAGEQUEUE_EVOLUTION_API_KEY); "
            "--insecure-webhooks accepts unsigned ones, --no-webhooks mounts none"
        )


def _server_class(base: type[Any]) -> type[Any]:
    """The uvicorn Server, stopping on SIGINT/SIGTERM through the event loop's handlers.

    uvicorn re-raises the signal it caught once it has shut down, so the process would die
    of it (exit -15) instead of exiting 0 after its graceful stop, as the contract says.
    """

    class Server(base):  # type: ignore[misc]
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.handle_exit, sig, None)
            try:
                yield
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)

    return Server


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="ENGAGEQUEUE_HOST",
    show_envvar=True,
    help="The address to listen on (0.0.0.0 in a container).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    envvar="ENGAGEQUEUE_PORT",
    show_envvar=True,
)
@click.option(
    "--waha-hmac-key",
    envvar="ENGAGEQUEUE_WAHA_HMAC_KEY",
    show_envvar=True,
    metavar="KEY",
    help="Mount POST /webhooks/waha, checking WAHA's HMAC signature.",
)
@click.option(
    "--evolution-api-key",
    envvar="ENGAGEQUEUE_EVOLUTION_API_KEY",
    show_envvar=True,
    metavar="KEY",
    help="Mount POST /webhooks/evolution, checking this API key.",
)
@click.option(
    "--insecure-webhooks",
    is_flag=True,
    envvar="ENGAGEQUEUE_INSECURE_WEBHOOKS",
    show_envvar=True,
    help="Mount both webhook routes and accept requests without a signature or key "
    "for the gateways that have none configured: only behind a trusted network.",
)
@click.option(
    "--no-webhooks",
    is_flag=True,
    envvar="ENGAGEQUEUE_NO_WEBHOOKS",
    show_envvar=True,
    help="Serve the API only, without webhook routes.",
)
@log_options
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    waha_hmac_key: str | None,
    evolution_api_key: str | None,
    insecure_webhooks: bool,
    no_webhooks: bool,
    log_format: str,
    log_level: str,
) -> None:
    """Serve the moderation HTTP API (and the gateways' webhooks) until SIGINT or SIGTERM.

    The API is open to anyone who can reach it: keep it on 127.0.0.1 or behind a proxy
    that authenticates.
    """
    config = ctx.find_object(Config)
    assert config is not None  # noqa: S101 - the root group sets it
    _check_webhook_options(waha_hmac_key, evolution_api_key, insecure_webhooks, no_webhooks)
    try:
        import uvicorn  # noqa: PLC0415 - optional extra

        import engagequeue.http  # noqa: F401, PLC0415 - fails here without FastAPI
    except ImportError as exc:
        raise CliError(_NEEDS_HTTP) from exc
    configure_logging(log_format, log_level)
    store = config.store()
    app = build_app(
        store,
        waha_hmac_key=waha_hmac_key,
        evolution_api_key=evolution_api_key,
        insecure_webhooks=insecure_webhooks,
        webhooks=not no_webhooks,
    )
    if insecure_webhooks:
        logger.warning("webhook routes accept unsigned requests (--insecure-webhooks)")
    server = _server_class(uvicorn.Server)(
        uvicorn.Config(app, host=host, port=port, log_config=None, lifespan="on")
    )

    async def run() -> None:
        try:
            # Opened before uvicorn starts (the app's own open is then a no-op), so an
            # unreachable database is one line and exit 1, not a lifespan traceback.
            try:
                await store.open()
            except Exception as exc:
                raise CliError(f"cannot open the database: {exc}") from exc
            await server.serve()
        finally:
            await store.close()

    try:
        asyncio.run(run())
    except SystemExit as exc:  # uvicorn exits 1 when it cannot bind or start up
        if exc.code not in (0, None):
            raise CliError(
                f"the server could not start on {host}:{port} (see the log above)"
            ) from None
    if not server.started:
        raise CliError(f"the server could not start on {host}:{port} (see the log above)")


register(serve)
