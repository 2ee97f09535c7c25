"""Every admin command as a subprocess, on a real SQLite file and the real PostgreSQL."""

from __future__ import annotations

import json

import httpx
from clitools import Target, lines, one_line_error, serve

TASK_KEYS = {
    "id",
    "sessionId",
    "groupId",
    "mediaType",
    "content",
    "mediaUrl",
    "scheduledAt",
    "status",
    "attempts",
    "maxAttempts",
    "lastError",
    "createdAt",
    "updatedAt",
}


def schedule(target: Target, *args: str) -> dict:
    out = target.ok("schedule", "bot", "news@g.us", *args, "--json")
    task = json.loads(out)
    assert set(task) >= TASK_KEYS
    return task


def test_sessions_add_list_connect_disconnect_delete(target: Target) -> None:
    assert target.ok("sessions", "add", "bot") == "session bot added\n"
    assert target.ok("sessions", "add", "bot") == "session bot added\n"  # idempotent
    target.ok("sessions", "add", "other")
    table = lines(target.ok("sessions", "list"))
    assert table[0].split() == ["SESSION", "STATE", "PENDING", "ADDED", "(UTC)"]
    assert [row.split()[:3] for row in table[1:]] == [
        ["bot", "connected", "0"],
        ["other", "connected", "0"],
    ]
    schedule(target, "--text", "hello", "--at", "+1h")
    listed = json.loads(target.ok("sessions", "list", "--json"))
    assert [(s["id"], s["connected"], s["pending"]) for s in listed] == [
        ("bot", True, 1),
        ("other", True, 0),
    ]
    assert listed[0]["createdAt"].endswith("Z")

    out = target.ok("sessions", "disconnect", "bot")
    assert out == "session bot disconnected; 0 post(s) back to pending\n"
    assert json.loads(target.ok("sessions", "list", "--json"))[0]["connected"] is False
    assert target.ok("sessions", "connect", "bot") == "session bot connected\n"
    assert json.loads(target.ok("sessions", "list", "--json"))[0]["connected"] is True

    assert "deleted" in target.ok("sessions", "delete", "bot")
    assert [s["id"] for s in json.loads(target.ok("sessions", "list", "--json"))] == ["other"]
    gone = target.run("sessions", "delete", "bot")
    assert gone.returncode == 1
    one_line_error(gone, "'bot'")


def test_unknown_session_is_exit_1_naming_it(target: Target) -> None:
    target.ok("sessions", "add", "bot")
    for args in (
        ("sessions", "connect", "ghost"),
        ("schedule", "ghost", "g@g.us", "--text", "hi", "--at", "now"),
    ):
        done = target.run(*args)
        assert done.returncode == 1, done
        one_line_error(done, "ghost", "engagequeue sessions add")


def test_schedule_every_media_type_and_show_it(target: Target) -> None:
    target.ok("sessions", "add", "bot")
    text = schedule(target, "--text", "Sale today", "--at", "2030-03-01T10:30:00+01:00")
    assert (text["mediaType"], text["content"], text["mediaUrl"]) == ("text", "Sale today", None)
    assert text["scheduledAt"] == "2030-03-01T09:30:00.000000Z"
    assert (text["status"], text["attempts"], text["maxAttempts"]) == ("pending", 0, 3)
    image = schedule(
        target,
        "--image",
        "https://example.com/a.jpg",
        "--caption",
        "New",
        "--at",
        "+1d",
        "--max-attempts",
        "5",
    )
    assert (image["mediaType"], image["mediaUrl"], image["content"]) == (
        "image",
        "https://example.com/a.jpg",
        "New",
    )
    assert image["maxAttempts"] == 5
    video = schedule(target, "--video", "https://example.com/v.mp4", "--at", "+2h")
    assert (video["mediaType"], video["content"]) == ("video", None)
    audio = schedule(target, "--audio", "https://example.com/v.ogg", "--at", "+90s")
    assert audio["mediaType"] == "audio"

    out = target.ok("schedule", "bot", "news@g.us", "--text", "plain", "--at", "+1m")
    assert out.startswith("scheduled ")
    shown = target.ok("show", text["id"])
    fields = dict(line.split(None, 1) if " " in line else (line, "") for line in shown.splitlines())
    assert shown.splitlines()[0].split() == ["id", text["id"]]
    assert "Sale today" in shown
    assert "2030-03-01 09:30:00Z" in shown
    assert fields["status"].strip() == "pending"
    assert json.loads(target.ok("show", text["id"], "--json")) == text
    assert json.loads(target.ok("show", image["id"], "--json")) == image


def test_edit_then_cancel_then_conflicts(target: Target) -> None:
    target.ok("sessions", "add", "bot")
    task = schedule(target, "--text", "typo herre", "--at", "+1h")
    edited = json.loads(target.ok("edit", task["id"], "--text", "typo here", "--json"))
    assert edited["content"] == "typo here"
    assert edited["scheduledAt"] == task["scheduledAt"]
    moved = json.loads(target.ok("edit", task["id"], "--at", "2031-01-01T00:00:00Z", "--json"))
    assert (moved["content"], moved["scheduledAt"]) == ("typo here", "2031-01-01T00:00:00.000000Z")
    image = schedule(
        target, "--image", "https://example.com/a.jpg", "--caption", "x", "--at", "+1h"
    )
    captioned = json.loads(target.ok("edit", image["id"], "--caption", "better", "--json"))
    assert (captioned["content"], captioned["mediaUrl"]) == ("better", image["mediaUrl"])
    uncaptioned = json.loads(target.ok("edit", image["id"], "--caption", "", "--json"))
    assert uncaptioned["content"] is None

    out = target.ok("cancel", task["id"])
    assert out.startswith(f"cancelled {task['id']}\n")
    assert "status      cancelled" in out.splitlines()
    for args in (("cancel", task["id"]), ("edit", task["id"], "--text", "late")):
        done = target.run(*args)
        assert done.returncode == 1, done
        one_line_error(done, task["id"], "cancelled")
    assert json.loads(target.ok("show", task["id"], "--json"))["content"] == "typo here"

    kinds = [e["kind"] for e in json.loads(target.ok("events", task["id"], "--json"))]
    assert kinds == ["created", "edited", "edited", "cancelled"]
    table = lines(target.ok("events", task["id"]))
    assert table[0].split() == ["AT", "(UTC)", "EVENT", "DETAIL"]
    assert [row.split()[2] for row in table[1:]] == kinds


def test_unknown_task_is_exit_1(target: Target) -> None:
    for command in ("show", "events", "cancel"):
        done = target.run(command, "no-such-task")
        assert done.returncode == 1, done
        one_line_error(done, "no-such-task")
    done = target.run("edit", "no-such-task", "--text", "x")
    assert done.returncode == 1
    one_line_error(done, "no-such-task")


def test_history_filters_and_pages(target: Target) -> None:
    target.ok("sessions", "add", "bot")
    ids = [
        schedule(target, "--text", f"post {day}", "--at", f"2030-03-0{day}T09:00:00Z")["id"]
        for day in (1, 2, 3, 4)
    ]
    target.ok("cancel", ids[1])
    page = json.loads(target.ok("history", "bot", "news@g.us", "--json"))
    assert set(page) == {"items", "total", "limit", "offset"}
    assert [t["id"] for t in page["items"]] == ids
    assert (page["total"], page["limit"], page["offset"]) == (4, 50, 0)

    pending = json.loads(target.ok("history", "bot", "news@g.us", "--status", "pending", "--json"))
    assert [t["id"] for t in pending["items"]] == [ids[0], ids[2], ids[3]]
    both = json.loads(
        target.ok(
            "history",
            "bot",
            "news@g.us",
            "--status",
            "pending,cancelled",
            "--limit",
            "2",
            "--offset",
            "1",
            "--json",
        )
    )
    assert ([t["id"] for t in both["items"]], both["total"]) == (ids[1:3], 4)
    days = json.loads(
        target.ok(
            "history", "bot", "news@g.us", "--start", "2030-03-02", "--end", "2030-03-03", "--json"
        )
    )
    assert [t["id"] for t in days["items"]] == ids[1:3]  # a bare end date covers that day

    table = target.ok("history", "bot", "news@g.us", "--limit", "3")
    rows = lines(table)
    assert rows[0].split()[:3] == ["ID", "SCHEDULED", "(UTC)"]
    assert [r.split()[0] for r in rows[1:4]] == ids[:3]
    assert rows[-1] == "posts 1-3 of 4; next page: --offset 3"
    assert "no posts match" in target.ok("history", "bot", "other@g.us")


def test_json_is_exactly_the_http_apis(target: Target) -> None:
    target.ok("sessions", "add", "bot")
    task = schedule(target, "--image", "https://example.com/a.jpg", "--caption", "c", "--at", "+1h")
    target.ok("edit", task["id"], "--caption", "d")
    server, base = serve(target, "--no-webhooks")
    try:
        api = f"{base}/api/moderation/engagement/{task['id']}"
        assert json.loads(target.ok("show", task["id"], "--json")) == httpx.get(api).json()
        assert (
            json.loads(target.ok("events", task["id"], "--json"))
            == httpx.get(f"{api}/events").json()
        )
        history = f"{base}/api/sessions/bot/groups/news@g.us/engagement/history"
        assert (
            json.loads(target.ok("history", "bot", "news@g.us", "--limit", "5", "--json"))
            == httpx.get(history, params={"limit": 5}).json()
        )
        assert server.terminate() == 0, server.stderr()
    finally:
        server.close()


def test_migrate_then_health(target: Target) -> None:
    done = target.run("health")
    assert done.returncode == 1
    one_line_error(done, "unhealthy")
    assert target.snapshot() is None  # health never creates anything
    assert "is ready" in target.ok("migrate")
    assert target.ok("health").startswith("ok: schema version ")


def test_environment_variables_name_the_database(target: Target) -> None:
    env = {"ENGAGEQUEUE_DB": target.db}
    if target.schema:
        env["ENGAGEQUEUE_SCHEMA"] = target.schema
    done = target.run("sessions", "add", "from-env", env=env, db=False)
    assert done.returncode == 0, done.stderr
    assert "from-env" in target.ok("sessions", "list")


def test_an_unreachable_postgresql_is_exit_1_in_one_line(target: Target) -> None:
    done = target.run(
        "--db", "postgresql://postgres@127.0.0.1:1/test", "sessions", "list", db=False
    )
    assert done.returncode == 1
    one_line_error(done, "cannot open the database", "127.0.0.1")
