"""PostComposer, synchronous parts: argument checks, payloads, and a property over any answers.

The property drives the real openai client, on its own event loop thread, against the fake
Chat Completions server, with answers Hypothesis makes up.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engagequeue import (
    ComposedPost,
    CompositionError,
    GroupProfile,
    MediaType,
    ModelCallError,
    Payload,
    PostComposer,
    ProductLink,
    ValidationError,
)
from fakes_openai import FakeChatServer, Reply, running_server
from link_oracle import LINKS, SALE, SHOES, answers, assert_follows_link_rules

API_KEY = "sk-test-property"
PROFILE = GroupProfile(
    name="Trail Runners Lyon",
    language="fr",
    links=(ProductLink(SALE, "Spring sale"), ProductLink(SHOES, "Trail shoes")),
)
NO_LINKS = GroupProfile(name="Book club")


@pytest.fixture(scope="module")
def server() -> Iterator[FakeChatServer]:
    with running_server() as fake:
        yield fake


def feedback_of(server: FakeChatServer, request: int) -> str:
    messages = server.requests[request].messages
    assert messages[-1]["role"] == "user"
    return str(messages[-1]["content"])


def test_a_synchronous_client_is_refused_with_a_clear_error(server: FakeChatServer) -> None:
    with (
        openai.OpenAI(base_url=server.base_url, api_key=API_KEY) as sync_client,
        pytest.raises(TypeError, match="AsyncOpenAI"),
    ):
        PostComposer(sync_client, "m")  # type: ignore[arg-type]


def test_to_payload_makes_a_text_message_or_a_caption() -> None:
    post = ComposedPost(text=f"Hi {SALE}", links=(SALE,), attempts=1, repaired=False, model="m")
    assert post.to_payload() == Payload.text(f"Hi {SALE}")
    with pytest.raises(ValidationError, match="media_url"):
        post.to_payload("https://cdn.example.com/a.jpg")
    caption = ComposedPost(
        text="c", links=(), attempts=1, repaired=False, model="m", media_type=MediaType.VIDEO
    )
    assert caption.to_payload("https://cdn.example.com/a.mp4") == Payload.video(
        "https://cdn.example.com/a.mp4", caption="c"
    )
    with pytest.raises(ValidationError, match="media_url"):
        caption.to_payload()


# --------------------------------------------------------------------------- property


@pytest.fixture(scope="module")
def background_client(
    server: FakeChatServer,
) -> Iterator[tuple[asyncio.AbstractEventLoop, openai.AsyncOpenAI]]:
    """One client on its own event loop thread, shared by every Hypothesis example."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def make() -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)

    client = asyncio.run_coroutine_threadsafe(make(), loop).result()
    try:
        yield loop, client
    finally:
        asyncio.run_coroutine_threadsafe(client.close(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    script=st.lists(answers, min_size=1, max_size=3),
    on_failure=st.sampled_from(["repair", "raise"]),
    media_type=st.sampled_from([MediaType.TEXT, MediaType.IMAGE]),
    with_links=st.booleans(),
)
def test_whatever_the_model_answers_the_post_follows_the_link_rules(
    server: FakeChatServer,
    background_client: tuple[asyncio.AbstractEventLoop, openai.AsyncOpenAI],
    script: list[str],
    on_failure: str,
    media_type: MediaType,
    with_links: bool,
) -> None:
    loop, client = background_client
    profile = PROFILE if with_links else NO_LINKS
    links = LINKS if with_links else ()
    limit = 4096 if media_type is MediaType.TEXT else 1024
    server.script(*(Reply(answer) for answer in script), then=Reply(script[-1]))
    composer = PostComposer(client, "m", max_attempts=3, on_failure=on_failure)  # type: ignore[arg-type]

    async def run() -> ComposedPost | CompositionError:
        try:
            return await composer.compose(profile, "promo", media_type=media_type)
        except CompositionError as exc:
            return exc

    result = asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=60)
    if isinstance(result, CompositionError):
        assert not isinstance(result, ModelCallError)
        assert result.violations
        assert len(server.requests) == 3
        if on_failure == "repair":
            assert "no usable text" in str(result)
        return
    assert_follows_link_rules(result.text, links, limit)
    assert result.links == tuple(link for link in links if link in result.text)
    assert 1 <= result.attempts <= 3
    assert len(server.requests) == result.attempts
    assert result.repaired == bool(result.violations)
    if result.repaired:
        assert result.attempts == 3
        assert on_failure == "repair"
    if result.attempts > 1:
        assert "breaks these rules" in feedback_of(server, 1)


# --------------------------------------------------------------------------- optional extra

SRC = Path(__file__).resolve().parents[2] / "src"


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


def test_importing_engagequeue_does_not_import_openai() -> None:
    result = run_python(
        "import sys, engagequeue\n"
        "assert engagequeue.PostComposer and engagequeue.ComposedPost\n"
        "import engagequeue.compose\n"
        "print(sorted(m for m in ('openai', 'httpx', 'httpx2') if m in sys.modules))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_without_openai_the_composer_names_the_extra_to_install() -> None:
    result = run_python(
        "import sys\n"
        "sys.modules['openai'] = None  # as if it were not installed\n"
        "import engagequeue\n"
        "try:\n"
        "    engagequeue.PostComposer(object(), 'm')\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'engagequeue[ai]'" in result.stdout
