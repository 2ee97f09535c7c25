"""A small FastAPI app serving engagequeue's moderation endpoints over a SQLite store.

Run it::

    pip install 'engagequeue[http]' uvicorn
    uvicorn examples.http_app:app --port 8000        # from the repository root

then try::

    curl -H 'Authorization: Bearer demo-token' \\
        'http://127.0.0.1:8000/api/sessions/demo/groups/120363000000000001@g.us/engagement/history'

Environment:
    ENGAGEQUEUE_DB: the SQLite file (default ``engagequeue.sqlite3`` in the working directory).
    ENGAGEQUEUE_TOKENS: JSON mapping a bearer token to the ``"session/group"`` pairs it may
        moderate (default: ``demo-token`` for the ``demo`` session's demo group).

The app is an "existing app" with routes of its own (``/health``); it mounts the router
behind a bearer-token check (401 without a known token) and an ``authorize`` callback that
scopes each token to its groups (403 for another group, 404 for another group's task).
A ``Scheduler`` runs in the same process and "sends" due posts with ``ConsoleTransport``
(it prints them); swap in ``engagequeue.transports.WahaTransport(...)`` to go live. Edits
made through the API wake it at once, and a post it has claimed can no longer be edited.
"""

from __future__ import annotations

import json
import os
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Request

from engagequeue import ConsoleTransport, Scheduler, SQLiteTaskStore
from engagequeue.http import Action, create_router

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

DEMO_GROUP = "120363000000000001@g.us"


def load_scopes() -> dict[str, set[tuple[str, str]]]:
    """Token -> the (session, group) pairs it may moderate, from ENGAGEQUEUE_TOKENS."""
    raw = os.environ.get("ENGAGEQUEUE_TOKENS") or json.dumps({"demo-token": [f"demo/{DEMO_GROUP}"]})
    return {
        token: {(session, group) for session, _, group in (p.partition("/") for p in pairs)}
        for token, pairs in json.loads(raw).items()
    }


SCOPES = load_scopes()
store = SQLiteTaskStore(os.environ.get("ENGAGEQUEUE_DB", "engagequeue.sqlite3"))


def bearer_token(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


async def authenticate(authorization: Annotated[str | None, Header()] = None) -> None:
    """Refuse callers without a known token before any task is looked at (401)."""
    if bearer_token(authorization) not in SCOPES:
        raise HTTPException(401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"})


async def authorize(request: Request, action: Action, session_id: str, group_id: str) -> bool:  # noqa: ARG001 - one scope for every action
    """Allow a token only the groups it was given, for every action."""
    token = bearer_token(request.headers.get("authorization"))
    return (session_id, group_id) in SCOPES.get(token or "", set())


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    async with store:  # opens the SQLite file, closes it on shutdown
        for session_id, _group in set().union(*SCOPES.values()):
            await store.add_session(session_id)
        async with Scheduler(store, ConsoleTransport()):  # sends due posts in the background
            yield


app = FastAPI(title="Community bot", lifespan=lifespan)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


app.include_router(create_router(store, authorize=authorize), dependencies=[Depends(authenticate)])


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
