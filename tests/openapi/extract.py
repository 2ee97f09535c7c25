"""Cut the operations the transports use out of a gateway's OpenAPI document.

Usage (from the repository root, with the full documents at hand):

    python tests/openapi/extract.py waha ../shared/reference/waha-openapi-2026.7.1.json
    python tests/openapi/extract.py evolution ../shared/reference/evolution-openapi-v2-2.1.1.json

Each extract keeps the chosen operations verbatim, every component schema they reference
(transitively), the security schemes, and an ``x-extract`` block naming the source file,
its version and its SHA-256, so the tests run from a plain clone.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

OPERATIONS: dict[str, list[tuple[str, str]]] = {
    "waha": [
        ("/api/sendText", "post"),
        ("/api/sendImage", "post"),
        ("/api/sendVideo", "post"),
        ("/api/sendVoice", "post"),
        ("/api/sessions/{session}", "get"),
    ],
    "evolution": [
        ("/message/sendText/{instance}", "post"),
        ("/message/sendMedia/{instance}", "post"),
        ("/message/sendWhatsAppAudio/{instance}", "post"),
        ("/instance/connectionState/{instance}", "get"),
    ],
}
# Schemas used outside paths (webhook bodies).
EXTRA_SCHEMAS: dict[str, list[str]] = {"waha": ["WAHAWebhookSessionStatus"], "evolution": []}


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def extract(gateway: str, source: Path) -> dict[str, Any]:
    raw = source.read_bytes()
    document = json.loads(raw)
    paths: dict[str, Any] = {}
    for path, method in OPERATIONS[gateway]:
        paths.setdefault(path, {})[method] = document["paths"][path][method]
    schemas = document.get("components", {}).get("schemas", {})
    wanted = _refs(paths) | set(EXTRA_SCHEMAS[gateway])
    done: set[str] = set()
    while wanted - done:
        name = min(wanted - done)
        done.add(name)
        wanted |= _refs(schemas[name])
    components: dict[str, Any] = {"schemas": {name: schemas[name] for name in sorted(done)}}
    security = document.get("components", {}).get("securitySchemes")
    if security:
        components["securitySchemes"] = security
    return {
        "x-extract": {
            "source": source.name,
            "title": document["info"]["title"],
            "version": document["info"]["version"],
            "sha256": hashlib.sha256(raw).hexdigest(),
            "operations": [f"{method.upper()} {path}" for path, method in OPERATIONS[gateway]],
            "extra_schemas": EXTRA_SCHEMAS[gateway],
            "note": "Operations and schemas copied verbatim; see tests/fakes/openapi.py for "
            "the few documented corrections applied when validating.",
        },
        "openapi": document["openapi"],
        "info": {"title": document["info"]["title"], "version": document["info"]["version"]},
        "paths": paths,
        "components": components,
    }


def main() -> None:
    gateway, source = sys.argv[1], Path(sys.argv[2])
    result = extract(gateway, source)
    target = Path(__file__).with_name(f"{gateway}-{result['info']['version']}.extract.json")
    target.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {target} ({len(result['components']['schemas'])} schemas)")  # noqa: T201


if __name__ == "__main__":
    main()
