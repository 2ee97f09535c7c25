"""Validate gateway requests and answers against the committed OpenAPI extracts.

The extracts under tests/openapi/ are verbatim copies of the operations the transports use.
A few schema statements in them are wrong in ways the gateways themselves ignore (loose
types from their generators); they are corrected here, each one named with its reason,
and each correction first checks that the document still says what it corrects, so an
updated extract that fixed the quirk makes the test suite point at the stale correction.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs

OPENAPI_DIR = Path(__file__).resolve().parents[1] / "openapi"
_DELETE = object()


@dataclass(frozen=True)
class Correction:
    pointer: tuple[str, ...]
    original: Any
    corrected: Any
    reason: str


_LOOSE_STRING = "WAHA sends and accepts a string; its generator typed the field 'object'"
_NEST_REQUIRED = "'required: true' on a property is a NestJS swagger artefact, invalid JSON Schema"
_NULLABLE = "'nullable: true' is OpenAPI 3.0 syntax, ignored in this 3.1 document: allow null"

CORRECTIONS: dict[str, tuple[Correction, ...]] = {
    "waha": (
        *(
            Correction(
                ("components", "schemas", schema, "properties", prop, "type"),
                "object",
                "string",
                _LOOSE_STRING,
            )
            for schema, prop in [
                ("VoiceRemoteFile", "mimetype"),
                ("VoiceBinaryFile", "mimetype"),
                ("VoiceBinaryFile", "filename"),
                ("VideoRemoteFile", "mimetype"),
                ("VideoRemoteFile", "filename"),
                ("VideoBinaryFile", "mimetype"),
                ("VideoBinaryFile", "filename"),
            ]
        ),
        Correction(
            ("components", "schemas", "WAHAWebhookSessionStatus", "properties", "event", "type"),
            "object",
            "string",
            "the event name is a string (its enum lists strings)",
        ),
        Correction(
            (
                "components",
                "schemas",
                "SessionInfo",
                "properties",
                "timestamps",
                "properties",
                "activity",
                "required",
            ),
            True,
            _DELETE,
            _NEST_REQUIRED,
        ),
        Correction(
            (
                "components",
                "schemas",
                "WAHAEnvironment",
                "properties",
                "worker",
                "properties",
                "id",
                "required",
            ),
            True,
            _DELETE,
            _NEST_REQUIRED,
        ),
        Correction(
            (
                "components",
                "schemas",
                "WAHAEnvironment",
                "properties",
                "worker",
                "properties",
                "id",
                "type",
            ),
            "string",
            ["string", "null"],
            _NULLABLE,
        ),
        Correction(
            (
                "components",
                "schemas",
                "SessionInfo",
                "properties",
                "timestamps",
                "properties",
                "activity",
                "type",
            ),
            "number",
            ["number", "null"],
            _NULLABLE,
        ),
    ),
    "evolution": (),
}


def extract_path(gateway: str) -> Path:
    matches = sorted(OPENAPI_DIR.glob(f"{gateway}-*.extract.json"))
    assert len(matches) == 1, f"expected one {gateway} extract in {OPENAPI_DIR}, got {matches}"
    return matches[0]


@cache
def raw_document(gateway: str) -> dict[str, Any]:
    return json.loads(extract_path(gateway).read_text(encoding="utf-8"))


@cache
def document(gateway: str) -> dict[str, Any]:
    """The extract with its documented corrections applied."""
    doc = copy.deepcopy(raw_document(gateway))
    for fix in CORRECTIONS[gateway]:
        node = doc
        for key in fix.pointer[:-1]:
            node = node[key]
        last = fix.pointer[-1]
        assert node.get(last) == fix.original, (
            f"{gateway} extract no longer says {fix.original!r} at {'/'.join(fix.pointer)}; "
            "drop the stale correction"
        )
        if fix.corrected is _DELETE:
            del node[last]
        else:
            node[last] = fix.corrected
    return doc


def _validator(gateway: str, schema: dict[str, Any]) -> Any:
    doc = document(gateway)
    root = {**schema, "components": doc["components"]}
    if doc["openapi"].startswith("3.1"):
        return jsonschema_rs.Draft202012Validator(root)
    return jsonschema_rs.Draft4Validator(root)


def _errors(validator: Any, instance: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.instance_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


def request_errors(gateway: str, path: str, method: str, body: Any) -> list[str]:
    """What is wrong with ``body`` as the request body of ``method path`` (empty: valid)."""
    operation = document(gateway)["paths"][path][method.lower()]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    return _errors(_validator(gateway, schema), body)


def response_errors(gateway: str, path: str, method: str, status: int, body: Any) -> list[str]:
    """What is wrong with ``body`` as the documented answer ``status`` (empty: valid)."""
    responses = document(gateway)["paths"][path][method.lower()]["responses"]
    content = responses[str(status)].get("content")
    if content is None:
        return []
    return _errors(_validator(gateway, content["application/json"]["schema"]), body)


def schema_errors(gateway: str, name: str, instance: Any) -> list[str]:
    """What is wrong with ``instance`` as the component schema ``name``."""
    return _errors(_validator(gateway, {"$ref": f"#/components/schemas/{name}"}), instance)


def documented_operations(gateway: str) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document(gateway)["paths"].items()
        for method in item
    }
