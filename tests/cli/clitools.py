"""Helpers of the command-line tests: run ``engagequeue`` as a subprocess, look into its database."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# As in tests/conftest.py (not importable from here: both modules are named conftest).
POSTGRES_DSN = os.environ.get("ENGAGEQUEUE_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/test")
BIN = Path(sys.executable).with_name("engagequeue")


def command() -> list[str]:
    """The installed console script, or ``python -m engagequeue`` when it is not installed."""
    return [str(BIN)] if BIN.exists() else [sys.executable, "-m", "engagequeue"]


def require_postgres() -> None:
    """Skip (fail under CI=true) when the test PostgreSQL server does not answer."""
    try:
        import psycopg

        psycopg.connect(POSTGRES_DSN, connect_timeout=3).close()
    except Exception as exc:
        message = (
            f"PostgreSQL at {POSTGRES_DSN} is not reachable ({type(exc).__name__}); start it, "
            "or set ENGAGEQUEUE_TEST_DSN, to run the postgres tests"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@dataclass
class Target:
    """One database the command runs against, and how to look into it."""

    engine: str
    db: str
    schema: str | None
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def db_args(self) -> list[str]:
        args = ["--db", self.db]
        if self.schema is not None:
            args += ["--schema", self.schema]
        return args

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60, db: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``engagequeue [--db ...] ARGS`` and return it finished (stdout, stderr, code)."""
        full = {**os.environ, **self.env, **(env or {})}
        if db:
            full.pop("ENGAGEQUEUE_DB", None)
        argv = [*command(), *(self.db_args if db else []), *args]
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full,
            cwd=self.cwd,
            check=False,
        )

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        assert done.stderr == "", done.stderr
        return done.stdout

    def snapshot(self) -> Any:
        """Everything the database holds, or None when it does not exist at all."""
        if self.engine == "sqlite":
            path = Path(self.db)
            if not path.exists():
                return None
            conn = sqlite3.connect(path)
            try:
                return list(conn.iterdump())
            finally:
                conn.close()
        import psycopg

        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                    "ORDER BY table_name",
                    (self.schema,),
                )
            ]
            exists = conn.execute(
                "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (self.schema,)
            ).fetchone()
            if not exists:
                return None
            return {
                t: sorted(
                    map(repr, conn.execute(f'SELECT * FROM "{self.schema}"."{t}"').fetchall())
                )
                for t in tables
            }


def one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Assert stderr is one line starting 'engagequeue:', without a traceback, naming needles."""
    err = done.stderr
    assert "Traceback" not in err, err
    assert err.endswith("\n"), repr(err)
    assert err.count("\n") == 1, repr(err)
    assert err.startswith("engagequeue: "), err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def lines(text: str) -> Sequence[str]:
    return [line for line in text.splitlines() if line.strip()]


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """A long-running ``engagequeue`` subprocess (worker, serve) whose output is collected."""

    def __init__(self, target: Target, *args: str, env: dict[str, str] | None = None) -> None:
        import tempfile

        # The child writes through its own O_APPEND descriptors and the parent reads each
        # file afresh by path: a shared descriptor would share its offset, so a read's
        # seek(0) would make the child's next write overwrite earlier output.
        self._dir = tempfile.TemporaryDirectory()
        self._out_path = Path(self._dir.name, "stdout")
        self._err_path = Path(self._dir.name, "stderr")
        full = {**os.environ, **target.env, **(env or {})}
        full.pop("ENGAGEQUEUE_DB", None)
        with self._out_path.open("a") as out, self._err_path.open("a") as err:
            self.proc = subprocess.Popen(
                [*command(), *target.db_args, *args],
                stdout=out,
                stderr=err,
                text=True,
                env=full,
                cwd=target.cwd,
            )

    def stdout(self) -> str:
        return self._out_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self._err_path.read_text(errors="replace")

    def wait_for(self, predicate: Any, timeout: float = 30.0, what: str = "output") -> None:
        """Poll until ``predicate(self)`` is true; fail with the output if the process ends."""
        import time

        deadline = time.monotonic() + timeout
        while not predicate(self):
            if self.proc.poll() is not None:
                pytest.fail(
                    f"the process ended ({self.proc.returncode}) before {what}:\n"
                    f"{self.stdout()}\n{self.stderr()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {timeout} s:\n{self.stdout()}\n{self.stderr()}")
            time.sleep(0.05)

    def terminate(self, timeout: float = 60.0) -> int:
        """Send SIGTERM and wait for the exit status."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._dir.cleanup()


def serve(target: Target, *args: str) -> tuple[Process, str]:
    """Start ``engagequeue serve`` on a free port; return it and its base URL once it answers."""
    import httpx

    port = free_port()
    server = Process(target, "serve", "--port", str(port), *args)
    base = f"http://127.0.0.1:{port}"

    def answers(_: Process) -> bool:
        try:
            httpx.get(f"{base}/openapi.json", timeout=1.0)
        except httpx.TransportError:
            return False
        return True

    server.wait_for(answers, what="the server answering")
    return server, base
