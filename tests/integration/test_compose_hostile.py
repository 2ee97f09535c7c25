"""The composer against hostile model answers, over real HTTP with the real openai client.

Whatever a model answers (disguised foreign links, NUL, lone surrogates, over-long text), a
composed post carries only the profile's links (at least one when the group has any), or
composing raises ``CompositionError``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import openai
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engagequeue import (
    ComposedPost,
    CompositionError,
    GroupProfile,
    ModelCallError,
    PostComposer,
    ProductLink,
)
from engagequeue._links import check_post, links_in
from fakes_openai import FakeChatServer, Reply, running_server
from link_oracle import SALE, SHOES, assert_follows_link_rules, hostile_answers

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROFILE = GroupProfile(
    name="Trail Runners Lyon",
    links=(ProductLink(SALE, "Spring sale"), ProductLink(SHOES, "Trail shoes")),
)
NO_LINKS = GroupProfile(name="Book club")


@pytest.fixture(scope="module")
def server() -> Iterator[FakeChatServer]:
    with running_server() as fake:
        yield fake


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(server: FakeChatServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=server.base_url, api_key="sk-test-hostile", max_retries=0, timeout=10
    ) as c:
        yield c


async def compose_or_error(
    composer: PostComposer, profile: GroupProfile
) -> ComposedPost | CompositionError:
    try:
        return await composer.compose(profile, "promo")
    except CompositionError as exc:
        return exc


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    script=st.lists(hostile_answers().map(lambda a: a.text), min_size=1, max_size=3),
    on_failure=st.sampled_from(["repair", "raise"]),
    with_links=st.booleans(),
)
async def test_a_composed_post_carries_only_the_profile_s_links(
    server: FakeChatServer,
    client: openai.AsyncOpenAI,
    script: list[str],
    on_failure: str,
    with_links: bool,
) -> None:
    profile = PROFILE if with_links else NO_LINKS
    links = tuple(link.url for link in profile.links)
    server.script(*(Reply(answer) for answer in script), then=Reply(script[-1]))
    composer = PostComposer(client, "m", max_attempts=3, on_failure=on_failure)  # type: ignore[arg-type]
    post = await compose_or_error(composer, profile)
    if isinstance(post, CompositionError):
        assert not isinstance(post, ModelCallError)
        assert post.violations
        return
    assert check_post(post.text, links, 4096) == ()
    assert_follows_link_rules(post.text, links, 4096)
    assert post.links == links_in(post.text, links)
    if links:
        assert post.links
    # every answer hides a foreign link, so none complies: the post is the repaired last one
    assert (post.repaired, post.attempts, len(server.requests)) == (True, 3, 3)
    assert on_failure == "repair"
