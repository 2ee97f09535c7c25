"""Schemathesis against the app's own OpenAPI document: no 5xx, no response off its schema."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from engagequeue import Payload, SQLiteTaskStore
from engagequeue.http import create_app

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from schemathesis import Case

pytestmark = pytest.mark.slow

MAX_EXAMPLES = int(os.environ.get("ENGAGEQUEUE_FUZZ_EXAMPLES", "30"))
"""Examples per operation and mode; raise it for a deeper local run."""

GROUP = "120363000000000001@g.us"


async def seed(store: SQLiteTaskStore) -> list[str]:
    """A session with a pending text post, a pending image, a processing and a sent one."""
    await store.open()
    await store.add_session("s1")
    ids = []
    for payload, at in [
        (Payload.text("pending text"), "2999-01-01T00:00:00Z"),
        (Payload.image("https://cdn.example.com/a.png", "pending image"), "2999-01-02T00:00:00Z"),
        (Payload.text("being sent"), "2026-01-01T00:00:00Z"),
        (Payload.video("https://cdn.example.com/v.mp4"), "2026-01-02T00:00:00Z"),
    ]:
        ids.append((await store.schedule("s1", GROUP, payload, at)).id)
    [processing] = await store.claim_due()
    await store.complete(processing.id, message_id="wamid.1")
    await store.claim_due()  # the video, now processing
    return ids


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[SQLiteTaskStore, list[str]]]:
    store = SQLiteTaskStore(tmp_path / "fuzz.sqlite3")
    ids = asyncio.run(seed(store))
    try:
        yield store, ids
    finally:
        shutdown_lifespans()
        asyncio.run(store.close())


OPERATIONS = [
    ("POST", "/api/sessions/{session_id}/groups/{group_id}/engagement"),
    ("GET", "/api/sessions/{session_id}/groups/{group_id}/engagement/history"),
    ("GET", "/api/moderation/engagement/{task_id}"),
    ("PUT", "/api/moderation/engagement/{task_id}"),
    ("DELETE", "/api/moderation/engagement/{task_id}"),
    ("GET", "/api/moderation/engagement/{task_id}/events"),
    ("GET", "/api/sessions/{session_id}/groups/{group_id}/connection"),
    ("POST", "/api/sessions/{session_id}/groups/{group_id}/engagement/recurring"),
    ("GET", "/api/sessions/{session_id}/groups/{group_id}/engagement/recurring"),
    ("GET", "/api/moderation/engagement/recurring/{recurrence_id}"),
    ("PUT", "/api/moderation/engagement/recurring/{recurrence_id}"),
    ("DELETE", "/api/moderation/engagement/recurring/{recurrence_id}"),
    ("POST", "/api/moderation/engagement/recurring/{recurrence_id}/pause"),
    ("POST", "/api/moderation/engagement/recurring/{recurrence_id}/resume"),
    ("GET", "/api/moderation/engagement/recurring/{recurrence_id}/events"),
]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def steer(case: Case, ids: list[str]) -> None:
    """Point some generated cases at real data, so fuzzing reaches past the 404s."""
    params = case.path_parameters
    if params is None:
        return
    if "session_id" in params and len(str(params["session_id"])) % 2 == 0:
        params["session_id"] = "s1"
        params["group_id"] = GROUP
    if "task_id" in params:
        choice = len(str(params["task_id"])) % (len(ids) + 1)
        if choice < len(ids):
            params["task_id"] = ids[choice]


def test_the_openapi_document_lists_exactly_the_fuzzed_operations(seeded):
    store, _ = seeded
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(store))
    found = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    assert found == set(OPERATIONS)


# Negative data needs an input that can be wrong: a body, a bounded parameter or a query.
# The id reads, the cancel, pause and resume take any string, so only positive cases exist.
FUZZ = [
    pytest.param(method, path, mode, id=f"{method} {path} {mode}")
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE
    or (method in {"POST", "PUT"} and not path.endswith(("/pause", "/resume")))
    or path.endswith("/history")
]


@pytest.mark.parametrize(("method", "path", "mode"), FUZZ)
def test_the_api_never_errors_and_always_matches_its_own_schema(seeded, method, path, mode):
    store, ids = seeded
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(store))
    operation = schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def fuzz(case: Case) -> None:
        steer(case, ids)
        case.call_and_validate(checks=CHECKS)

    fuzz()
