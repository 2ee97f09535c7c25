"""Bad input exits 2 with one line naming what is wrong, and writes nothing.

Each case runs twice: on a database that does not exist yet (it must still not exist, so
nothing was created or migrated) and on one holding posts (it must be byte-for-byte the
same rows).
"""

from __future__ import annotations

import json

import pytest
from clitools import Target, one_line_error

TEXT = "{text}"  # replaced by the id of a pending text post
IMAGE = "{image}"  # replaced by the id of a pending image post

CASES = [
    # (arguments, what the message must name)
    (("schedule", "bot", "g@g.us", "--text", "hi"), "--at"),
    (("schedule", "bot", "g@g.us", "--text", "hi", "--at", "tomorrow"), "--at"),
    (("schedule", "bot", "g@g.us", "--text", "hi", "--at", "2030-01-01T09:00:00"), "--at"),
    (("schedule", "bot", "g@g.us", "--text", "hi", "--at", "+5 weeks"), "--at"),
    (("schedule", "bot", "g@g.us", "--at", "now"), "--text"),
    (
        (
            "schedule",
            "bot",
            "g@g.us",
            "--text",
            "a",
            "--audio",
            "https://x.io/a.ogg",
            "--at",
            "now",
        ),
        "--audio",
    ),
    (("schedule", "bot", "g@g.us", "--text", "   ", "--at", "now"), "--text"),
    (("schedule", "bot", "g@g.us", "--text", "x" * 4097, "--at", "now"), "--text"),
    (("schedule", "bot", "g@g.us", "--image", "ftp://example.com/a.jpg", "--at", "now"), "--image"),
    (
        ("schedule", "bot", "g@g.us", "--video", "https://u:p@example.com/v.mp4", "--at", "now"),
        "--video",
    ),
    (
        (
            "schedule",
            "bot",
            "g@g.us",
            "--image",
            "https://example.com/a.jpg",
            "--caption",
            "c" * 1025,
            "--at",
            "now",
        ),
        "--caption",
    ),
    (("schedule", "bot", "g@g.us", "--text", "hi", "--caption", "c", "--at", "now"), "--caption"),
    (("schedule", "", "g@g.us", "--text", "hi", "--at", "now"), "SESSION"),
    (("schedule", "bot", " ", "--text", "hi", "--at", "now"), "GROUP"),
    (
        ("schedule", "bot", "g@g.us", "--text", "hi", "--at", "now", "--max-attempts", "0"),
        "--max-attempts",
    ),
    (("edit", TEXT), "--text, --caption, --at"),
    (("edit", TEXT, "--at", "noon"), "--at"),
    (("history", "bot", "g@g.us", "--limit", "0"), "--limit"),
    (("history", "bot", "g@g.us", "--limit", "501"), "--limit"),
    (("history", "bot", "g@g.us", "--offset", "-1"), "--offset"),
    (("history", "bot", "g@g.us", "--status", "sent"), "--status"),
    (("history", "bot", "g@g.us", "--start", "last week"), "--start"),
    (("history", "bot", "g@g.us", "--end", "2030-02-30"), "--end"),
    (("sessions", "add", ""), "SESSION"),
    (("sessions", "rename", "bot"), "rename"),
    (("show",), "TASK_ID"),
    (("frobnicate",), "frobnicate"),
    (("show", TEXT, "--colour"), "--colour"),
    (("worker", "--transport", "pigeon"), "--transport"),
    (("worker", "--transport", "waha"), "--gateway-url"),
    (("worker", "--transport", "console", "--concurrency", "0"), "--concurrency"),
    (("worker", "--transport", "console", "--poll-interval", "0"), "--poll-interval"),
    (("serve",), "--waha-hmac-key"),
    (("serve", "--no-webhooks", "--insecure-webhooks"), "--no-webhooks"),
]
# Only meaningful once the posts exist: the option does not fit the post it edits.
EXISTING_ONLY = [
    (("edit", TEXT, "--caption", "c"), "--caption"),
    (("edit", IMAGE, "--text", "t"), "--text"),
    (("edit", TEXT, "--text", ""), "--text"),
    (("edit", IMAGE, "--caption", "c" * 1025), "--caption"),
]


def _ids(case: tuple[tuple[str, ...], str]) -> str:
    return " ".join(a if len(a) < 20 else a[:8] + "..." for a in case[0])[:60] or "-"


def _fill(target: Target) -> dict[str, str]:
    target.ok("sessions", "add", "bot")
    text = json.loads(
        target.ok("schedule", "bot", "g@g.us", "--text", "t", "--at", "+1h", "--json")
    )
    image = json.loads(
        target.ok(
            "schedule",
            "bot",
            "g@g.us",
            "--image",
            "https://example.com/a.jpg",
            "--at",
            "+2h",
            "--json",
        )
    )
    return {"{text}": text["id"], "{image}": image["id"]}


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_bad_input_on_a_fresh_database_exits_2_and_creates_nothing(
    target: Target, case: tuple[tuple[str, ...], str]
) -> None:
    args, named = case
    args = tuple(a.replace(TEXT, "661a000000000000000000000000a") for a in args)
    done = target.run(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    one_line_error(done, named)
    assert done.stdout == ""
    assert target.snapshot() is None


@pytest.mark.parametrize("case", CASES + EXISTING_ONLY, ids=_ids)
def test_bad_input_on_a_database_with_posts_exits_2_and_changes_nothing(
    target: Target, case: tuple[tuple[str, ...], str]
) -> None:
    ids = _fill(target)
    before = target.snapshot()
    args, named = case
    for placeholder, task_id in ids.items():
        args = tuple(a.replace(placeholder, task_id) for a in args)
    done = target.run(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    one_line_error(done, named)
    assert target.snapshot() == before


def test_schema_with_a_sqlite_file_is_bad_input(tmp_path) -> None:
    target = Target("sqlite", str(tmp_path / "x.sqlite3"), "eq", tmp_path)
    done = target.run("sessions", "list")
    assert done.returncode == 2
    one_line_error(done, "--schema")
    assert target.snapshot() is None
