"""The ``engagequeue`` command: the root group, its options, and the exit-status rules.

Exit status 0 on success; 2 on bad input (a usage error or a ``ValidationError``: one line
on stderr naming the option, nothing written); 1 on anything else (not found, conflict,
unreachable database, a missing optional extra). Never a traceback: every error is one
line on stderr.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeVar

import attrs
import click

from engagequeue import __version__
from engagequeue._connect import DEFAULT_DB, is_postgres, store_from_url
from engagequeue._errors import EngageQueueError, SessionNotFound, ValidationError

if TYPE_CHECKING:
    from engagequeue._abc import TaskStore

__all__ = ["BadInput", "CliError", "Config", "cli", "main", "run_with_store"]

_T = TypeVar("_T")

PROG: Final = "engagequeue"

# Python field names as ValidationError carries them, and the options users typed.
_OPTION_FOR_FIELD: Final = {
    "scheduled_at": "--at",
    "start": "--start",
    "end": "--end",
    "limit": "--limit",
    "offset": "--offset",
    "status": "--status",
    "session_id": "SESSION",
    "group_id": "GROUP",
    "task_id": "TASK_ID",
    "db": "--db",
    "dsn": "--db",
    "path": "--db",
    "schema": "--schema",
}


class CliError(click.ClickException):
    """An error the command reports in one line, with its exit status (1 by default)."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class BadInput(CliError):  # noqa: N818 - names what the user gave, not a failure of ours
    """Bad input: exit status 2, nothing written."""

    exit_code = 2


def bad_input(exc: ValidationError, options: dict[str, str] | None = None) -> BadInput:
    """Turn a ``ValidationError`` into a ``BadInput`` naming the option the user typed.

    ``options`` maps field names (``"content"``, ``"payload.media_url"``) to options
    (``"--text"``), for the fields only the calling command knows.
    """
    field = exc.field or ""
    names = {**_OPTION_FOR_FIELD, **(options or {})}
    option = names.get(field) or names.get(field.removeprefix("payload."))
    message = str(exc)
    if option is None or message.startswith(option):
        return BadInput(message)
    for spelling in (field, field.removeprefix("payload.")):
        if spelling and re.search(rf"(?<![\w.-]){re.escape(spelling)}(?![\w.])", message):
            # "payload.media_url must be ..." -> "--image must be ...": the name typed.
            return BadInput(
                re.sub(rf"(?<![\w.-]){re.escape(spelling)}(?![\w.])", option, message, count=1)
            )
    return BadInput(f"{option}: {message}")


@attrs.define
class Config:
    """The root options every command shares: which database, and how to print."""

    db: str
    schema: str | None

    def store(self, **options: Any) -> TaskStore:  # noqa: ANN401 - store constructor options
        """The store ``--db`` names, not opened yet."""
        try:
            return store_from_url(self.db, schema=self.schema, **options)
        except ValidationError as exc:
            raise bad_input(exc) from exc
        except ImportError as exc:
            raise CliError(str(exc)) from exc


def run_with_store(
    config: Config,
    action: Callable[[TaskStore], Awaitable[_T]],
    *,
    errors: dict[str, str] | None = None,
) -> _T:
    """Open the store, run ``action(store)`` in an event loop, close it; map errors to exits.

    ``errors`` maps ``ValidationError`` fields to the command's options, for messages.
    """
    store = config.store(**_cli_store_options(config.db))

    async def run() -> _T:
        try:
            await store.open()
        except Exception as exc:
            raise CliError(f"cannot open the database {_shown(config.db)}: {exc}") from exc
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except ValidationError as exc:
        raise bad_input(exc, errors) from exc
    except SessionNotFound as exc:
        raise CliError(
            f"no session {exc.session_id!r}; add it with: engagequeue sessions add SESSION"
        ) from exc
    except EngageQueueError as exc:
        raise CliError(str(exc)) from exc


def _cli_store_options(db: str) -> dict[str, Any]:
    # A command-line call should not hang for half a minute on a server that is down.
    return {"connect_timeout": 10.0, "retry_timeout": 5.0} if is_postgres(db) else {}


def _shown(db: str) -> str:
    """The database for a message: a DSN without its password."""
    if not is_postgres(db):
        return repr(db)
    head, sep, tail = db.partition("@")
    if not sep:
        return db
    scheme, _, credentials = head.partition("://")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{tail}" if ":" in credentials else db


def _version(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"{PROG} {__version__}")
        ctx.exit(0)


@click.group(
    name=PROG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--db",
    envvar="ENGAGEQUEUE_DB",
    default=DEFAULT_DB,
    show_default=True,
    show_envvar=True,
    metavar="PATH|DSN",
    help="A SQLite file, or a postgresql:// DSN.",
)
@click.option(
    "--schema",
    envvar="ENGAGEQUEUE_SCHEMA",
    default=None,
    show_envvar=True,
    help="The PostgreSQL schema holding the tables (default engagequeue). Ignored for SQLite "
    "when it comes from the environment.",
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_version,
    help="Print the version and exit.",
)
@click.pass_context
def cli(ctx: click.Context, db: str, schema: str | None) -> None:
    """Schedule, edit, send and audit WhatsApp group posts.

    Run 'engagequeue demo' to watch the queue at work; 'engagequeue COMMAND --help' tells
    more about each command.
    """
    if schema is not None and not is_postgres(db):
        source = ctx.get_parameter_source("schema")
        if source is not click.core.ParameterSource.ENVIRONMENT:
            raise BadInput(f"--schema: applies to a postgresql:// database only, not {db!r}")
        schema = None
    ctx.obj = Config(db=db, schema=schema)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"{PROG}: {' '.join(message.split())}", err=True)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return its exit status (0, 1 or 2)."""
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(levelname)s %(message)s")
    try:
        code = cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    except click.ClickException as exc:
        # UsageError and BadParameter have exit_code 2, CliError the code it carries.
        hint = ""
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        _fail(exc.format_message() + hint, exc.exit_code)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        _fail("interrupted", 130)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except ValidationError as exc:
        _fail(str(bad_input(exc).message), 2)
    except Exception as exc:  # noqa: BLE001 - the contract: one line, never a traceback
        _fail(f"{type(exc).__name__}: {exc}", 1)
    return code if isinstance(code, int) else 0


def register(*commands: click.Command) -> None:
    """Add commands to the root group (each command module calls this)."""
    for command in commands:
        cli.add_command(command)
