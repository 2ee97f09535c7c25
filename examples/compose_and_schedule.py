"""Compose a post with any OpenAI-compatible server and schedule it into SQLite.

    python examples/compose_and_schedule.py --base-url http://localhost:11434/v1 --model llama3.1
    python examples/compose_and_schedule.py --base-url https://api.openai.com/v1 --model gpt-4o-mini

The API key comes from --api-key, else from OPENAI_API_KEY, else a placeholder that local
servers (Ollama, vLLM, LM Studio) accept. It is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime, timedelta

import openai

from engagequeue import (
    CompositionError,
    GroupProfile,
    MediaType,
    ModelCallError,
    PostComposer,
    ProductLink,
    SQLiteTaskStore,
)

PROFILE = GroupProfile(
    name="Trail Runners Lyon",
    description="A running club: Sunday trail runs around Lyon, beginners welcome.",
    tone="warm, upbeat, a little cheeky",
    language="fr",
    links=(
        ProductLink("https://shop.example.com/spring-sale", "Spring sale on trail gear"),
        ProductLink("https://shop.example.com/p/trail-shoes?ref=wa", "Trail shoes"),
    ),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base-url",
        required=True,
        help="OpenAI-compatible API root, e.g. http://localhost:11434/v1",
    )
    parser.add_argument("--model", required=True, help="model name as the server knows it")
    parser.add_argument(
        "--api-key", default=None, help="default: $OPENAI_API_KEY, else a placeholder"
    )
    parser.add_argument("--db", default="engagequeue.sqlite3", help="SQLite file to schedule into")
    parser.add_argument(
        "--session", default="default", help="WhatsApp session (WAHA) or instance (Evolution)"
    )
    parser.add_argument("--group", default="120363000000000000@g.us", help="group chat id")
    parser.add_argument("--brief", default="Spring sale: 30% off trail gear until Sunday.")
    parser.add_argument(
        "--at", default=None, help="ISO 8601 time with an offset; default: in one hour"
    )
    parser.add_argument(
        "--media-url", default=None, help="send as an image with this URL and the post as caption"
    )
    parser.add_argument("--max-attempts", type=int, default=3)
    parser.add_argument("--on-failure", choices=["repair", "raise"], default="repair")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per model call")
    parser.add_argument("--max-retries", type=int, default=2, help="the SDK's network retries")
    return parser.parse_args(argv)


async def main(args: argparse.Namespace) -> int:
    api_key = args.api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
    at = args.at or (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    media_type = MediaType.IMAGE if args.media_url else MediaType.TEXT
    async with (
        openai.AsyncOpenAI(
            base_url=args.base_url,
            api_key=api_key,
            timeout=args.timeout,
            max_retries=args.max_retries,
        ) as client,
        SQLiteTaskStore(args.db) as store,
    ):
        await store.add_session(args.session)
        composer = PostComposer(
            client, args.model, max_attempts=args.max_attempts, on_failure=args.on_failure
        )
        try:
            task = await composer.compose_and_schedule(
                store,
                args.session,
                args.group,
                PROFILE,
                args.brief,
                at,
                media_type=media_type,
                media_url=args.media_url,
            )
        except ModelCallError as exc:
            print(f"the model server failed: {exc}", file=sys.stderr)
            return 2
        except CompositionError as exc:
            print(f"no compliant post: {exc}", file=sys.stderr)
            return 1
        (created, *_) = await store.events(task.id)
    print(f"scheduled task {task.id} for {task.scheduled_at.isoformat()} in {args.db}")
    print(f"audit: {json.dumps(dict(created.detail), ensure_ascii=False)}")
    print("---")
    print(task.payload.content)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
