"""The moderation endpoints as a drop-in FastAPI router (optional extra ``engagequeue[http]``).

``create_router(store, authorize=...)`` gives an ``APIRouter`` to mount in an existing
FastAPI app; ``create_app(store, authorize=...)`` a complete app. Without ``authorize``
both are open to anyone who can reach them. See docs/http.md.
``create_webhook_router(target, waha_hmac_key=..., evolution_api_key=...)`` gives the
gateways' session webhooks, which require a key by default. See docs/security.md.
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401 - checked here to give a helpful message
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "engagequeue.http needs FastAPI; install it with: pip install 'engagequeue[http]'"
    ) from exc

from ._router import DEFAULT_MAX_BODY_SIZE, Action, Authorize, create_app, create_router
from ._webhooks import create_webhook_router

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "Action",
    "Authorize",
    "create_app",
    "create_router",
    "create_webhook_router",
]
