"""The moderation console: three static files served under ``/moderation/``.

The page holds no data of its own: its script calls the JSON endpoints of the same router
(relative URLs, so a router mounted under a prefix works too), and whatever the
``authorize`` hook refuses there, the page never sees. The files ship in the wheel
(``engagequeue/http/console/``) and are read once, when the router is built.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import TYPE_CHECKING, Final

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

if TYPE_CHECKING:
    from fastapi import APIRouter

__all__ = ["CONSOLE_HEADERS", "CONSOLE_PATH", "add_console_routes"]

CONSOLE_PATH: Final = "/moderation/"
"""Where the page is served, relative to the router's prefix."""

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""Same-origin script, style and requests only: no inline script, no third-party origin."""

CONSOLE_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate, so an upgrade is picked up at once
}
"""The headers of every console response."""

_FILES: Final = {
    "": ("index.html", "text/html; charset=utf-8"),
    "console.js": ("console.js", "text/javascript; charset=utf-8"),
    "console.css": ("console.css", "text/css; charset=utf-8"),
    "favicon.svg": ("favicon.svg", "image/svg+xml"),
}


def _load() -> dict[str, tuple[bytes, str]]:
    folder = files("engagequeue.http").joinpath("console")
    return {
        path: (folder.joinpath(name).read_bytes(), kind) for path, (name, kind) in _FILES.items()
    }


def _static(body: bytes, media_type: str) -> Callable[[], Awaitable[Response]]:
    async def endpoint() -> Response:
        return Response(body, media_type=media_type, headers=CONSOLE_HEADERS)

    return endpoint


def add_console_routes(router: APIRouter) -> None:
    """Serve the console page and its assets on ``router``, outside the OpenAPI document."""
    loaded = _load()

    for path, (body, media_type) in loaded.items():
        router.add_api_route(
            CONSOLE_PATH + path,
            _static(body, media_type),
            methods=["GET", "HEAD"],
            include_in_schema=False,
            response_model=None,
        )

    async def redirect(request: Request) -> Response:
        # Relative, so the redirect stays under whatever prefix the router is mounted at.
        target = "moderation/"
        if request.url.query:
            target += "?" + request.url.query
        return RedirectResponse(target, status_code=308, headers=CONSOLE_HEADERS)

    router.add_api_route(
        CONSOLE_PATH.rstrip("/"),
        redirect,
        methods=["GET"],
        include_in_schema=False,
        response_model=None,
    )
