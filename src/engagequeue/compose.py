"""Compose WhatsApp posts with a chat model, with product links that always work.

``PostComposer`` asks any OpenAI-compatible server (OpenAI, Ollama, vLLM, LM Studio...)
for a post through the Chat Completions API, then checks the answer in code: every
URL-like token is found, only the group's profile links are accepted (written exactly as
the profile gives them), at least one of them must be there, each must stand bare, and
the length must fit WhatsApp. A violating answer goes back to the model with the
violations listed; when the attempts run out the last answer is repaired (or
``CompositionError`` is raised, with ``on_failure="raise"``).

Needs the optional extra ``engagequeue[ai]`` (the ``openai`` package), imported only
when a ``PostComposer`` is created.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

from ._detail import clean_text
from ._errors import CompositionError, ValidationError
from ._links import canonicalise as _canonicalise
from ._links import check_post, links_in, repair_post
from ._models import GroupProfile, MediaType, Payload, Task, check_identifier, check_url
from ._prompt import ChatMessage, build_messages, feedback_message, length_limit
from ._times import parse_instant

if TYPE_CHECKING:
    import openai

    from ._abc import TaskStore

__all__ = [
    "ComposedPost",
    "CompositionError",
    "ModelCallError",
    "PostComposer",
    "TokenUsage",
    "schedule_post",
]

logger = logging.getLogger("engagequeue.compose")

OnFailure = Literal["repair", "raise"]
MAX_BRIEF_LENGTH: Final = 8192
"""The longest brief accepted, in characters."""
_MAX_MODEL_NAME: Final = 200
_MAX_VIOLATION: Final = 500
_THINKING: Final = re.compile(r"^\s*<think>.*?(?:</think>|\Z)", re.DOTALL)


class ModelCallError(CompositionError):
    """The model server could not be reached or refused the call, after the SDK's own retries.

    The ``openai`` exception is the ``__cause__``. ``retryable`` says whether trying again
    later may help (timeouts, connection errors, 408, 409, 429 and 5xx answers); ``attempts``
    counts the model calls made before it, this one included.
    """

    def __init__(self, message: str, *, retryable: bool, attempts: int) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.attempts = attempts


@attrs.frozen
class TokenUsage:
    """Tokens spent on a composition, summed over its model calls (as the server reports them)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        if not isinstance(other, TokenUsage):
            return NotImplemented
        return TokenUsage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
        )


@attrs.frozen
class ComposedPost:
    """A post written by a model and checked in code.

    Attributes:
        text: The post, which follows every link rule: when the profile has links it
            contains at least one of them, written exactly, and no other URL; every link
            stands bare; it fits WhatsApp's limit for ``media_type``.
        links: The profile link URLs that ``text`` contains, in profile order.
        attempts: Model calls made (content retries, not the SDK's network retries).
        repaired: Whether the last answer broke a rule and was repaired in code.
        model: The model that answered, as the server names it.
        media_type: What the text is for: a text message, or an image or video caption.
        usage: Tokens spent over all attempts.
        violations: What the last answer broke before it was repaired (empty otherwise).
    """

    text: str
    links: tuple[str, ...]
    attempts: int
    repaired: bool
    model: str
    media_type: MediaType = MediaType.TEXT
    usage: TokenUsage = TokenUsage()
    violations: tuple[str, ...] = ()

    def to_payload(self, media_url: str | None = None) -> Payload:
        """The post as a ``Payload``: a text message, or the caption of ``media_url``.

        Raises:
            ValidationError: ``media_url`` is missing for an image or video post, given
                for a text post, or not an absolute http(s) URL.
        """
        if self.media_type is MediaType.TEXT:
            if media_url is not None:
                raise ValidationError(
                    "media_url is not allowed for a text post; compose with "
                    "media_type=MediaType.IMAGE or VIDEO to attach media",
                    field="media_url",
                )
            return Payload.text(self.text)
        if media_url is None:
            raise ValidationError(
                f"a {self.media_type.value} post needs a media_url", field="media_url"
            )
        return Payload(self.media_type, content=self.text, media_url=media_url)

    def audit_detail(self) -> dict[str, Any]:
        """What the ``created`` event of the scheduled task records about this post."""
        # The model name and violations quote the server's answer: untrusted text.
        return {
            "ai": True,
            "model": clean_text(self.model, limit=_MAX_MODEL_NAME),
            "attempts": self.attempts,
            "repaired": self.repaired,
            "links": list(self.links),
            "violations": [clean_text(v, limit=_MAX_VIOLATION) for v in self.violations],
        }


def _import_openai() -> Any:  # noqa: ANN401 - the module, typed at the call site
    try:
        import openai  # noqa: PLC0415 - optional extra, imported on first use
    except ImportError as exc:
        raise ImportError(
            "PostComposer needs the openai package: install the extra with "
            "`pip install 'engagequeue[ai]'`"
        ) from exc
    return openai


def _check_media_type(value: object) -> MediaType:
    try:
        media_type = MediaType(value) if isinstance(value, str) else None
    except ValueError:
        media_type = None
    if media_type is None:
        raise ValidationError(
            f"media_type must be text, image or video; got {value!r}", field="media_type"
        )
    if media_type is MediaType.AUDIO:
        raise ValidationError(
            "an audio post carries no text, so there is nothing to compose", field="media_type"
        )
    return media_type


def _check_profile(profile: object) -> GroupProfile:
    if not isinstance(profile, GroupProfile):
        raise ValidationError(
            f"profile must be a GroupProfile, not {type(profile).__name__}", field="profile"
        )
    for name in ("name", "description", "tone", "language"):
        if not isinstance(getattr(profile, name), str):
            raise ValidationError(f"profile.{name} must be a string", field=f"profile.{name}")
    for index, link in enumerate(profile.links):
        if not isinstance(link.title, str):
            raise ValidationError(
                f"profile.links[{index}].title must be a string", field="profile.links"
            )
    return profile


def _check_brief(brief: object) -> str:
    if not isinstance(brief, str):
        raise ValidationError(f"brief must be a string, not {type(brief).__name__}", field="brief")
    if len(brief) > MAX_BRIEF_LENGTH:
        raise ValidationError(
            f"brief is {len(brief)} characters long; the limit is {MAX_BRIEF_LENGTH}",
            field="brief",
        )
    return brief


def _short(items: tuple[str, ...], limit: int = 200) -> str:
    return "; ".join(item if len(item) <= limit else item[: limit - 1] + "…" for item in items)


class PostComposer:
    """Writes posts for a group with a chat model, and guarantees their links work.

    Args:
        client: An ``openai.AsyncOpenAI`` client, for OpenAI or any OpenAI-compatible
            server (set its ``base_url``). Its ``timeout`` and ``max_retries`` govern the
            network retries; ``max_attempts`` here counts content retries only.
        model: The model name, as the server knows it (``"gpt-4o-mini"``, ``"llama3.1"``...).
        max_attempts: Model calls allowed per post (at least 1). After a violating answer
            the next call lists the violations for the model to fix.
        on_failure: When no answer complies within ``max_attempts``: ``"repair"`` fixes
            the last answer in code (``repaired=True``); ``"raise"`` raises
            ``CompositionError`` with the violations.
        temperature: Sampling temperature sent to the server; ``None`` leaves its default.

    Raises:
        ImportError: The ``openai`` package is missing (install ``engagequeue[ai]``).
        ValidationError: A bad ``model``, ``max_attempts``, ``on_failure`` or ``temperature``.
        TypeError: ``client`` is the synchronous ``openai.OpenAI``.
    """

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        model: str,
        *,
        max_attempts: int = 3,
        on_failure: OnFailure = "repair",
        temperature: float | None = None,
    ) -> None:
        self._openai = _import_openai()
        if isinstance(client, self._openai.OpenAI):
            raise TypeError("PostComposer needs an openai.AsyncOpenAI client, not openai.OpenAI")
        if not isinstance(model, str) or not model.strip():
            raise ValidationError("model must be a non-blank string", field="model")
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValidationError(
                f"max_attempts must be an integer of at least 1, got {max_attempts!r}",
                field="max_attempts",
            )
        if on_failure not in ("repair", "raise"):
            raise ValidationError(
                f"on_failure must be 'repair' or 'raise', got {on_failure!r}", field="on_failure"
            )
        if temperature is not None and (
            isinstance(temperature, bool) or not isinstance(temperature, (int, float))
        ):
            raise ValidationError("temperature must be a number or None", field="temperature")
        self._client = client
        self.model = model
        self.max_attempts = max_attempts
        self.on_failure: OnFailure = on_failure
        self.temperature = temperature

    def __repr__(self) -> str:
        return (
            f"PostComposer(model={self.model!r}, max_attempts={self.max_attempts}, "
            f"on_failure={self.on_failure!r})"
        )

    async def compose(
        self, profile: GroupProfile, brief: str, *, media_type: MediaType = MediaType.TEXT
    ) -> ComposedPost:
        """Write a post for the group described by ``profile``, about ``brief``.

        Args:
            profile: The group: name, description, tone, language and product links.
            brief: What this post is about, in a few words or sentences.
            media_type: ``TEXT`` for a message (4,096 characters at most), ``IMAGE`` or
                ``VIDEO`` for a caption (1,024).

        Returns:
            A post whose text follows every link rule whatever the model said.

        Raises:
            ValidationError: Bad ``profile``, ``brief`` or ``media_type``.
            CompositionError: With ``on_failure="raise"``, no answer complied within
                ``max_attempts``; in either mode, no answer held any usable text.
            ModelCallError: The server failed (after the SDK's own retries).
        """
        profile = _check_profile(profile)
        brief = _check_brief(brief)
        media_type = _check_media_type(media_type)
        links = tuple(link.url for link in profile.links)
        titles = {link.url: link.title for link in profile.links}
        limit = length_limit(media_type)
        if links and min(len(link) for link in links) > limit:
            raise ValidationError(
                f"every profile link is longer than the {limit}-character limit of a "
                f"{media_type.value} post",
                field="profile.links",
            )
        messages = build_messages(profile, brief, media_type, nonce=secrets.token_hex(8))
        logger.debug("composing for group %r with %s: %r", profile.name, self.model, messages)
        usage = TokenUsage()
        model_name = self.model
        last_text: str | None = None
        violations: tuple[str, ...] = ()
        for attempt in range(1, self.max_attempts + 1):
            completion = await self._call(messages, attempt)
            usage += _usage(completion)
            model_name = _model_name(completion, self.model)
            answer, problems = _read_answer(completion)
            text = _canonicalise(answer, links) if answer else ""
            found = tuple(str(v) for v in check_post(text, links, limit)) if answer else ()
            violations = problems + found
            if not violations:
                logger.info(
                    "composed a post for group %r: model=%s attempts=%d repaired=False "
                    "links=%s tokens=%d",
                    profile.name,
                    model_name,
                    attempt,
                    list(links_in(text, links)),
                    usage.total_tokens,
                )
                return ComposedPost(
                    text=text,
                    links=links_in(text, links),
                    attempts=attempt,
                    repaired=False,
                    model=model_name,
                    media_type=media_type,
                    usage=usage,
                )
            logger.warning(
                "answer %d/%d for group %r broke %d rule(s): %s",
                attempt,
                self.max_attempts,
                profile.name,
                len(violations),
                _short(violations),
            )
            if answer:
                last_text = text
                # Echoed back to the server: it must encode as UTF-8 (no lone surrogates).
                messages = [*messages, {"role": "assistant", "content": clean_text(answer)}]
            feedback = clean_text(feedback_message(violations, links))
            messages = [*messages, {"role": "user", "content": feedback}]
        return self._give_up(
            profile, brief, last_text, violations, media_type, model_name, usage, titles
        )

    def _give_up(
        self,
        profile: GroupProfile,
        brief: str,
        last_text: str | None,
        violations: tuple[str, ...],
        media_type: MediaType,
        model_name: str,
        usage: TokenUsage,
        titles: Mapping[str, str],
    ) -> ComposedPost:
        links = tuple(link.url for link in profile.links)
        limit = length_limit(media_type)
        if self.on_failure == "raise":
            logger.warning(
                "no compliant post for group %r after %d attempt(s); raising",
                profile.name,
                self.max_attempts,
            )
            raise CompositionError(
                f"the model wrote no post that follows the rules in {self.max_attempts} "
                f"attempt(s): {_short(violations)}",
                violations,
            )
        text = repair_post(last_text or "", links, limit, context=brief, titles=titles)
        if last_text is None or not text.strip():
            raise CompositionError(
                f"the model gave no usable text in {self.max_attempts} attempt(s), so there "
                f"is nothing to repair: {_short(violations)}",
                violations,
            )
        if check_post(text, links, limit):  # pragma: no cover - repair_post guarantees it
            raise CompositionError("repair failed", violations)
        present = links_in(text, links)
        logger.warning(
            "repaired the post for group %r after %d attempt(s): links=%s, fixed: %s",
            profile.name,
            self.max_attempts,
            list(present),
            _short(violations),
        )
        return ComposedPost(
            text=text,
            links=present,
            attempts=self.max_attempts,
            repaired=True,
            model=model_name,
            media_type=media_type,
            usage=usage,
            violations=violations,
        )

    async def _call(self, messages: list[ChatMessage], attempt: int) -> Any:  # noqa: ANN401 - ChatCompletion
        options: dict[str, Any] = {"model": self.model, "messages": messages}
        if self.temperature is not None:
            options["temperature"] = self.temperature
        errors = self._openai
        try:
            return await self._client.chat.completions.create(**options)
        except errors.APIError as exc:
            status = getattr(exc, "status_code", None)
            retryable = isinstance(exc, errors.APIConnectionError) or (
                isinstance(status, int) and (status in (408, 409, 429) or status >= 500)  # noqa: PLR2004
            )
            logger.warning(
                "model call %d/%d to %s failed: %s", attempt, self.max_attempts, self.model, exc
            )
            raise ModelCallError(
                f"the model server failed on attempt {attempt} ({type(exc).__name__}): {exc}",
                retryable=retryable,
                attempts=attempt,
            ) from exc

    async def compose_and_schedule(
        self,
        store: TaskStore,
        session_id: str,
        group_id: str,
        profile: GroupProfile,
        brief: str,
        scheduled_at: datetime | str,
        *,
        media_type: MediaType = MediaType.TEXT,
        media_url: str | None = None,
        max_send_attempts: int = 3,
    ) -> Task:
        """Compose a post and schedule it: compose, schedule and send in one call.

        Everything that can be checked before calling the model is checked first, so a
        bad argument costs no tokens. The task's ``created`` event records that the
        content was AI-written (``{"ai": true, "model": ..., "attempts": ...,
        "repaired": ..., "links": [...], "violations": [...]}``).

        Args:
            store: Where to schedule the post.
            session_id: The WhatsApp session that sends it.
            group_id: The group it goes to.
            profile: The group's profile.
            brief: What the post is about.
            scheduled_at: When to send it (aware datetime or ISO 8601 with an offset).
            media_type: ``TEXT``, or ``IMAGE``/``VIDEO`` for a captioned media post.
            media_url: The image or video, for a media post.
            max_send_attempts: Send attempts of the task (the store's ``max_attempts``).

        Returns:
            The scheduled task.
        """
        check_identifier(session_id, "session_id")
        check_identifier(group_id, "group_id")
        parse_instant(scheduled_at, "scheduled_at")
        media_type = _check_media_type(media_type)
        if media_type is MediaType.TEXT and media_url is not None:
            raise ValidationError("media_url is not allowed for a text post", field="media_url")
        if media_type is not MediaType.TEXT:
            check_url(media_url, "media_url")
        post = await self.compose(profile, brief, media_type=media_type)
        return await schedule_post(
            store,
            session_id,
            group_id,
            post,
            scheduled_at,
            media_url=media_url,
            max_attempts=max_send_attempts,
        )


async def schedule_post(
    store: TaskStore,
    session_id: str,
    group_id: str,
    post: ComposedPost,
    scheduled_at: datetime | str,
    *,
    media_url: str | None = None,
    max_attempts: int = 3,
) -> Task:
    """Schedule a composed post; its ``created`` event records it as AI-written.

    Args:
        store: Where to schedule it.
        session_id: The WhatsApp session that sends it.
        group_id: The group it goes to.
        post: The post, from ``PostComposer.compose``.
        scheduled_at: When to send it.
        media_url: The image or video a caption goes with (image and video posts only).
        max_attempts: Send attempts of the task.

    Returns:
        The scheduled task.
    """
    payload = post.to_payload(media_url)
    task = await store.schedule(
        session_id,
        group_id,
        payload,
        scheduled_at,
        max_attempts=max_attempts,
        detail=post.audit_detail(),
    )
    logger.info(
        "scheduled AI-written task %s for %s/%s at %s (repaired=%s)",
        task.id,
        session_id,
        group_id,
        task.scheduled_at.isoformat(),
        post.repaired,
    )
    return task


def _model_name(completion: Any, requested: str) -> str:  # noqa: ANN401 - ChatCompletion
    """The model the server says answered, made safe to log and store; else the requested one."""
    name = getattr(completion, "model", None)
    if not isinstance(name, str):
        return requested
    name = clean_text(name, limit=_MAX_MODEL_NAME)
    name = "".join(ch for ch in name if ch.isprintable())
    return name if name.strip() else requested


def _usage(completion: Any) -> TokenUsage:  # noqa: ANN401 - ChatCompletion
    usage = getattr(completion, "usage", None)
    if usage is None:
        return TokenUsage()

    def count(name: str) -> int:
        value = getattr(usage, name, 0)
        return value if isinstance(value, int) else 0

    return TokenUsage(count("prompt_tokens"), count("completion_tokens"), count("total_tokens"))


def _read_answer(completion: Any) -> tuple[str, tuple[str, ...]]:  # noqa: ANN401 - ChatCompletion
    """The post text of a completion, and what is wrong with the answer itself."""
    choices = getattr(completion, "choices", None) or []
    if not choices:
        return "", ("the server returned no answer",)
    choice = choices[0]
    message = getattr(choice, "message", None)
    content = getattr(message, "content", None)
    refusal = getattr(message, "refusal", None)
    text = content if isinstance(content, str) else ""
    text = _THINKING.sub("", text).strip()  # reasoning models served by Ollama and vLLM
    if not text:
        if refusal:
            return "", (f"the model refused: {refusal}",)
        return "", ("the answer was empty: reply with the text of the post",)
    if getattr(choice, "finish_reason", None) == "length":
        return text, ("the answer was cut off before its end: write a shorter post",)
    return text, ()
