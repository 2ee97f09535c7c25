"""The public surface of engagequeue.transports, and what importing it costs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engagequeue import SessionStatus, transports

SRC = Path(__file__).resolve().parents[2] / "src"


def test_exported_names_are_exactly_the_intended_ones() -> None:
    assert sorted(transports.__all__) == transports.__all__
    assert set(transports.__all__) == {
        "DEFAULT_MAX_AGE",
        "DEFAULT_MAX_BODY_BYTES",
        "EvolutionTransport",
        "InvalidPostError",
        "PartialSendError",
        "SessionEventTarget",
        "SessionStatus",
        "SessionStatusEvent",
        "UnsafeMediaURLError",
        "WahaTransport",
        "WebhookBodyTooLargeError",
        "WebhookConfigError",
        "WebhookError",
        "WebhookGuard",
        "WebhookReplayError",
        "WebhookSignatureError",
        "apply_session_event",
        "evolution_session_status",
        "handle_evolution_webhook",
        "handle_waha_webhook",
        "parse_evolution_webhook",
        "parse_waha_webhook",
        "stable_message_id",
        "verify_waha_signature",
        "waha_session_status",
    }
    for name in transports.__all__:
        assert getattr(transports, name) is not None


def test_session_status_is_the_core_enum() -> None:
    assert transports.SessionStatus is SessionStatus


def _imports_httpx(code: str) -> bool:
    result = subprocess.run(
        [sys.executable, "-c", f"import sys; {code}; print('httpx' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(SRC)},
    )
    return result.stdout.strip() == "True"


def test_importing_engagequeue_and_the_webhook_parsers_does_not_import_httpx() -> None:
    assert not _imports_httpx("import engagequeue")
    assert not _imports_httpx("from engagequeue.transports import parse_waha_webhook")
    assert _imports_httpx("from engagequeue.transports import WahaTransport")
