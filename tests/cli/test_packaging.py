"""Packaging: the console script, ``python -m engagequeue``, --version, the demo, the extras."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from clitools import POSTGRES_DSN, command, one_line_error

import engagequeue

# Runs the command line in a fresh interpreter after making some imports fail (as when an
# extra is not installed) and every outgoing connection raise (so "no network" is checked).
WRAPPER = """
import socket, sys
blocked = sys.argv[1].split(",") if sys.argv[1] else []
for name in blocked:
    sys.modules[name] = None  # import raises ImportError, as when it is not installed
def no_network(*args, **kwargs):
    raise OSError("the network was used: " + repr(args))
socket.socket.connect = no_network
socket.socket.connect_ex = no_network
socket.create_connection = no_network
from engagequeue.cli import main
sys.exit(main(sys.argv[2:]))
"""


def run(*args: str, cwd: Path, blocked: str = "", env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-c", WRAPPER, blocked, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        env=env,
        check=False,
    )


def test_the_console_script_and_python_m_print_the_version(tmp_path: Path) -> None:
    assert Path(command()[0]).name == "engagequeue", "the console script is not installed"
    for argv in (command(), [sys.executable, "-m", "engagequeue"]):
        done = subprocess.run(
            [*argv, "--version"], capture_output=True, text=True, cwd=tmp_path, check=False
        )
        assert (done.returncode, done.stdout, done.stderr) == (
            0,
            f"engagequeue {engagequeue.__version__}\n",
            "",
        )
    assert list(tmp_path.iterdir()) == []


def test_the_entry_point_and_click_as_a_core_dependency() -> None:
    scripts = {ep.name: ep.value for ep in metadata.entry_points(group="console_scripts")}
    assert scripts["engagequeue"] == "engagequeue.cli:main"
    core = [r for r in metadata.requires("engagequeue") or [] if "extra ==" not in r]
    assert any(re.match(r"click\b", r) for r in core), core
    extras = metadata.metadata("engagequeue").get_all("Provides-Extra") or []
    assert "metrics" in extras
    http = [r for r in metadata.requires("engagequeue") or [] if re.search(r"extra == .http.", r)]
    assert any(r.startswith("uvicorn") for r in http)


def test_demo_tells_the_story_without_network_and_leaves_nothing_behind(tmp_path: Path) -> None:
    env = {"ENGAGEQUEUE_DB": str(tmp_path / "mine.sqlite3"), "PATH": "/usr/bin:/bin"}
    done = run("demo", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "the network was used" not in done.stderr + done.stdout
    out = done.stdout
    sends = re.findall(r"^\d\d:\d\d:\d\d\.\d{3} demo-bot -> (\S+) \[(\w+)\]", out, re.MULTILINE)
    assert sends == [
        ("news@g.us", "text"),
        ("gallery@g.us", "image"),
        ("news@g.us", "text"),
        ("gallery@g.us", "video"),
    ]
    assert "edit accepted" in out
    assert re.search(r"edit refused \(TaskConflict, status completed\)", out)
    assert "Reminder: the sale ends Sunday at midnight." in out.split("7. ")[1]  # the edit
    history = out.split("7. ")[1].split("8. ")[0]
    assert len(re.findall(r"\bcompleted\b", history)) == 4
    assert "posts 1-2 of 2" in history
    assert re.search(r"Done in \d+\.\d s", out)
    assert list(tmp_path.iterdir()) == []  # not even the --db file


@pytest.mark.parametrize(
    ("blocked", "args", "extra"),
    [
        ("psycopg", ("--db", POSTGRES_DSN, "sessions", "list"), "engagequeue[postgres]"),
        ("psycopg", ("--db", POSTGRES_DSN, "health"), "engagequeue[postgres]"),
        ("fastapi", ("serve", "--no-webhooks"), "engagequeue[http]"),
        ("uvicorn", ("serve", "--no-webhooks"), "engagequeue[http]"),
        (
            "httpx",
            ("worker", "--transport", "waha", "--gateway-url", "http://127.0.0.1:9"),
            "engagequeue[gateways]",
        ),
        (
            "prometheus_client",
            ("worker", "--transport", "console", "--metrics-port", "0"),
            "engagequeue[metrics]",
        ),
    ],
)
def test_a_command_needing_a_missing_extra_names_it_and_exits_1(
    tmp_path: Path, blocked: str, args: tuple[str, ...], extra: str
) -> None:
    done = run(*args, cwd=tmp_path, blocked=blocked)
    assert done.returncode == 1, (done.stdout, done.stderr)
    one_line_error(done, extra)
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_help_lists_the_contracts_commands(tmp_path: Path) -> None:
    done = subprocess.run(
        [*command(), "--help"], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert done.returncode == 0
    for name in (
        "demo",
        "sessions",
        "schedule",
        "edit",
        "cancel",
        "show",
        "events",
        "history",
        "worker",
        "serve",
        "health",
    ):
        assert re.search(rf"^  {name}\b", done.stdout, re.MULTILINE), name
