"""Session-status webhook parsers of WAHA and Evolution API (pure functions)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engagequeue import SessionNotFound, ValidationError
from engagequeue.transports import (
    DEFAULT_MAX_BODY_BYTES,
    SessionStatus,
    SessionStatusEvent,
    WebhookBodyTooLargeError,
    WebhookConfigError,
    WebhookError,
    WebhookGuard,
    WebhookReplayError,
    WebhookSignatureError,
    apply_session_event,
    evolution_session_status,
    handle_evolution_webhook,
    handle_waha_webhook,
    parse_evolution_webhook,
    parse_waha_webhook,
    verify_waha_signature,
    waha_session_status,
)
from fakes import openapi

KEY = "super-secret"
WAHA_AT = datetime(2026, 7, 14, 3, 33, 20, 123000, tzinfo=UTC)
EVOLUTION_AT = WAHA_AT  # the Evolution sample is dated the same instant, at -03:00
NOW = WAHA_AT  # the samples' own time: within the replay window of both
OPEN = {"insecure_no_auth": True, "now": NOW}


def waha_event(
    status: str = "WORKING", *, event: str = "session.status", session: str = "main"
) -> bytes:
    return json.dumps(
        {
            "id": "evt_01jabcdefghjkmnpqrstvwxyz0",
            "timestamp": 1_784_000_000_123,
            "session": session,
            "metadata": {},
            "engine": "NOWEB",
            "event": event,
            "payload": {"name": session, "status": status, "statuses": []},
            "me": {"id": "15550000000@c.us", "pushName": "bot"},
            "environment": {
                "version": "2026.7.1",
                "engine": "NOWEB",
                "tier": "CORE",
                "browser": "",
                "platform": "linux/x64",
                "worker": {"id": None},
            },
        }
    ).encode()


def signed(body: bytes, key: str = KEY) -> dict[str, str]:
    return {
        "X-Webhook-Hmac": hmac.new(key.encode(), body, hashlib.sha512).hexdigest(),
        "X-Webhook-Hmac-Algorithm": "sha512",
    }


def evolution_event(
    state: str = "open", *, event: str = "connection.update", apikey: str = "tok"
) -> bytes:
    return json.dumps(
        {
            "event": event,
            "instance": "shop",
            "data": {"instance": "shop", "state": state, "statusReason": 200},
            "destination": "http://bot.example/hooks/evolution",
            "date_time": "2026-07-14T00:33:20.123-03:00",
            "sender": "15550000000@s.whatsapp.net",
            "server_url": "http://evolution:8080",
            "apikey": apikey,
        }
    ).encode()


class Recorder:
    """A session-event target that records calls, as a Scheduler would receive them."""

    def __init__(self, known: set[str] | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.known = known

    async def session_connected(self, session_id: str) -> None:
        self._check(session_id)
        self.calls.append(("connected", session_id))

    async def session_disconnected(self, session_id: str) -> int:
        self._check(session_id)
        self.calls.append(("disconnected", session_id))
        return 0

    def _check(self, session_id: str) -> None:
        if self.known is not None and session_id not in self.known:
            raise SessionNotFound(session_id)


def test_the_sample_waha_event_conforms_to_the_documented_webhook_schema() -> None:
    assert openapi.schema_errors("waha", "WAHAWebhookSessionStatus", json.loads(waha_event())) == []


def test_a_signed_waha_session_status_is_parsed_into_a_typed_event() -> None:
    body = waha_event("WORKING")
    event = parse_waha_webhook(body, signed(body), hmac_key=KEY, now=NOW)
    assert event == SessionStatusEvent(
        gateway="waha",
        session_id="main",
        status=SessionStatus.CONNECTED,
        gateway_status="WORKING",
        at=WAHA_AT,
        event_id="evt_01jabcdefghjkmnpqrstvwxyz0",
    )
    assert event is not None
    assert event.raw["engine"] == "NOWEB"


def test_header_names_are_matched_case_insensitively() -> None:
    body = waha_event()
    headers = {k.lower(): v for k, v in signed(body).items()}
    assert parse_waha_webhook(body, headers, hmac_key=KEY, now=NOW) is not None


def test_every_documented_waha_status_maps_to_connected_or_disconnected() -> None:
    schema = openapi.document("waha")["components"]["schemas"]["WASessionStatusBody"]
    statuses = schema["properties"]["status"]["enum"]
    assert "WORKING" in statuses
    for status in statuses:
        expected = SessionStatus.CONNECTED if status == "WORKING" else SessionStatus.DISCONNECTED
        assert waha_session_status(status) is expected
    assert waha_session_status("SOMETHING_NEW") is SessionStatus.UNKNOWN
    assert waha_session_status(None) is SessionStatus.UNKNOWN


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Webhook-Hmac": "00" * 64},
        {"X-Webhook-Hmac": "not hex"},
    ],
    ids=["missing", "wrong", "garbage"],
)
def test_a_waha_webhook_without_a_valid_signature_is_rejected(headers: dict[str, str]) -> None:
    with pytest.raises(WebhookSignatureError) as info:
        parse_waha_webhook(waha_event(), headers, hmac_key=KEY, now=NOW)
    assert isinstance(info.value, ValidationError)
    assert info.value.field == "headers"


def test_a_signature_made_with_another_key_or_over_another_body_is_rejected() -> None:
    body = waha_event("STOPPED")
    with pytest.raises(WebhookSignatureError, match="does not match"):
        parse_waha_webhook(body, signed(body, "other-key"), hmac_key=KEY, now=NOW)
    tampered = body.replace(b"STOPPED", b"WORKING")
    with pytest.raises(WebhookSignatureError):
        parse_waha_webhook(tampered, signed(body), hmac_key=KEY, now=NOW)


def test_a_signature_with_another_algorithm_is_rejected() -> None:
    body = waha_event()
    headers = {**signed(body), "X-Webhook-Hmac-Algorithm": "sha256"}
    with pytest.raises(WebhookSignatureError, match="sha256"):
        parse_waha_webhook(body, headers, hmac_key=KEY, now=NOW)


def test_without_a_key_unsigned_waha_webhooks_are_accepted() -> None:
    event = parse_waha_webhook(waha_event("SCAN_QR_CODE"), {}, **OPEN)
    assert event is not None
    assert event.status is SessionStatus.DISCONNECTED


def test_other_waha_events_give_none_after_the_signature_check() -> None:
    body = waha_event(event="message")
    assert parse_waha_webhook(body, signed(body), hmac_key=KEY, now=NOW) is None
    with pytest.raises(WebhookSignatureError):
        parse_waha_webhook(body, {}, hmac_key=KEY, now=NOW)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (b'{"session": "main"}', "body.event"),
        (b'{"event": "session.status", "payload": {"status": "WORKING"}}', "body.session"),
        (b'{"event": "session.status", "session": "main"}', "body.payload"),
        (b'{"event": "session.status", "session": "main", "payload": {}}', "body.status"),
    ],
)
def test_malformed_waha_webhooks_raise_a_webhook_error_naming_the_field(
    body: bytes, field: str
) -> None:
    with pytest.raises(WebhookError) as info:
        parse_waha_webhook(body, {}, **OPEN)
    assert info.value.field == field


@settings(max_examples=200)
@given(body=st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_parsers(body: bytes) -> None:
    for parse in (parse_waha_webhook, parse_evolution_webhook):
        try:
            result = parse(body, {}, **OPEN)
        except WebhookError:
            continue
        assert result is None or isinstance(result, SessionStatusEvent)


@settings(max_examples=50)
@given(body=st.binary(max_size=200), key=st.text(min_size=1, max_size=40).filter(str.strip))
def test_any_body_signed_with_the_key_verifies_and_one_flipped_byte_does_not(
    body: bytes, key: str
) -> None:
    headers = signed(body, key)
    verify_waha_signature(body, headers, key)
    if body:
        flipped = bytes([body[0] ^ 1]) + body[1:]
        with pytest.raises(WebhookSignatureError):
            verify_waha_signature(flipped, headers, key)


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("open", SessionStatus.CONNECTED),
        ("close", SessionStatus.DISCONNECTED),
        ("connecting", SessionStatus.DISCONNECTED),
        ("", SessionStatus.UNKNOWN),
        ("weird", SessionStatus.UNKNOWN),
    ],
)
def test_evolution_states_map_open_to_connected_and_others_to_disconnected(
    state: str, status: SessionStatus
) -> None:
    assert evolution_session_status(state) is status


def test_an_evolution_connection_update_is_parsed_into_a_typed_event() -> None:
    event = parse_evolution_webhook(evolution_event("close"), {}, api_key="tok", now=NOW)
    assert event is not None
    assert (event.gateway, event.session_id, event.status, event.gateway_status) == (
        "evolution",
        "shop",
        SessionStatus.DISCONNECTED,
        "close",
    )
    assert event.at == EVOLUTION_AT


def test_evolution_event_names_in_upper_case_are_understood() -> None:
    event = parse_evolution_webhook(evolution_event("open", event="CONNECTION_UPDATE"), {}, **OPEN)
    assert event is not None
    assert event.status is SessionStatus.CONNECTED


def test_an_evolution_webhook_without_the_configured_key_is_rejected() -> None:
    with pytest.raises(WebhookSignatureError):
        parse_evolution_webhook(evolution_event(apikey="stolen"), {}, api_key="tok", now=NOW)
    # The key may also come in a header set in Evolution's webhook config.
    body = json.loads(evolution_event())
    del body["apikey"]
    raw = json.dumps(body).encode()
    with pytest.raises(WebhookSignatureError):
        parse_evolution_webhook(raw, {}, api_key="tok", now=NOW)
    assert parse_evolution_webhook(raw, {"ApiKey": "tok"}, api_key="tok", now=NOW) is not None


def test_other_evolution_events_give_none() -> None:
    assert parse_evolution_webhook(evolution_event(event="messages.upsert"), {}, **OPEN) is None


def test_an_evolution_update_without_a_state_is_malformed() -> None:
    body = json.loads(evolution_event())
    del body["data"]["state"]
    with pytest.raises(WebhookError) as info:
        parse_evolution_webhook(json.dumps(body), {}, **OPEN)
    assert info.value.field == "body.state"


async def test_apply_session_event_calls_the_matching_target_method() -> None:
    target = Recorder()
    down = parse_waha_webhook(waha_event("FAILED"), {}, **OPEN)
    up = parse_evolution_webhook(evolution_event("open"), {}, **OPEN)
    assert await apply_session_event(down, target)
    assert await apply_session_event(up, target)
    assert target.calls == [("disconnected", "main"), ("connected", "shop")]


async def test_unknown_states_and_other_events_change_nothing() -> None:
    target = Recorder()
    assert not await apply_session_event(None, target)
    odd = parse_waha_webhook(waha_event("NEW_STATE"), {}, **OPEN)
    assert odd is not None
    assert odd.status is SessionStatus.UNKNOWN
    assert not await apply_session_event(odd, target)
    assert target.calls == []


async def test_sessions_the_target_does_not_know_are_skipped_unless_asked() -> None:
    target = Recorder(known={"other"})
    event = parse_waha_webhook(waha_event("STOPPED"), {}, **OPEN)
    assert not await apply_session_event(event, target)
    with pytest.raises(SessionNotFound):
        await apply_session_event(event, target, ignore_unknown_sessions=False)


async def test_the_one_call_helpers_parse_verify_and_apply() -> None:
    target = Recorder()
    body = waha_event("STOPPED")
    guard = WebhookGuard()
    event = await handle_waha_webhook(
        body, signed(body), target, hmac_key=KEY, guard=guard, now=NOW
    )
    assert event is not None
    with pytest.raises(WebhookSignatureError):
        await handle_waha_webhook(
            waha_event("WORKING"), {}, target, hmac_key=KEY, guard=guard, now=NOW
        )
    await handle_evolution_webhook(
        evolution_event("open"), {}, target, api_key="tok", guard=guard, now=EVOLUTION_AT
    )
    assert target.calls == [("disconnected", "main"), ("connected", "shop")]


# -- hostile requests and unsafe configurations ------------------------------------------


@pytest.mark.parametrize("key", ["", "   "])
def test_an_empty_key_is_a_configuration_error_whatever_the_request(key: str) -> None:
    body = waha_event()
    with pytest.raises(WebhookConfigError, match="empty"):
        parse_waha_webhook(body, signed(body), hmac_key=key, now=NOW)
    with pytest.raises(WebhookConfigError, match="empty"):
        parse_evolution_webhook(evolution_event(apikey=key), {}, api_key=key, now=NOW)
    with pytest.raises(WebhookConfigError):
        verify_waha_signature(body, signed(body), key)


def test_no_key_is_refused_unless_insecure_no_auth_is_named() -> None:
    with pytest.raises(WebhookConfigError, match="insecure_no_auth=True"):
        parse_waha_webhook(waha_event(), {}, now=NOW)
    with pytest.raises(WebhookConfigError, match="insecure_no_auth=True"):
        parse_evolution_webhook(evolution_event(), {}, now=NOW)
    assert isinstance(WebhookConfigError("x"), WebhookError)


async def test_the_handlers_refuse_a_missing_key_before_applying_anything() -> None:
    target = Recorder()
    with pytest.raises(WebhookConfigError):
        await handle_waha_webhook(waha_event("STOPPED"), {}, target, guard=WebhookGuard())
    with pytest.raises(WebhookConfigError):
        await handle_evolution_webhook(evolution_event("close"), {}, target, api_key="")
    assert target.calls == []


@pytest.mark.parametrize(
    "signature",
    ["\u00e9" * 128, "\N{SNOWMAN}", "\ud800", "\udcff" * 128, "\x00" * 128],
    ids=["latin1", "snowman", "surrogate", "surrogates", "nul"],
)
def test_a_non_ascii_signature_is_a_signature_error_not_a_crash(signature: str) -> None:
    body = waha_event()
    with pytest.raises(WebhookSignatureError):
        parse_waha_webhook(body, {"X-Webhook-Hmac": signature}, hmac_key=KEY, now=NOW)
    with pytest.raises(WebhookSignatureError):
        parse_waha_webhook(
            body, {**signed(body), "X-Webhook-Hmac-Algorithm": signature}, hmac_key=KEY, now=NOW
        )


@pytest.mark.parametrize("offered", ["\ud800", "\u00e9", "tok\x00", "x\udfff"])
def test_a_hostile_evolution_apikey_in_header_or_body_is_a_signature_error(offered: str) -> None:
    with pytest.raises(WebhookSignatureError):
        parse_evolution_webhook(evolution_event(), {"apikey": offered}, api_key="x", now=NOW)
    with pytest.raises(WebhookSignatureError):
        parse_evolution_webhook(evolution_event(apikey=offered), {}, api_key="tok", now=NOW)
    raw = json.dumps({"apikey": offered, "event": "connection.update"}, ensure_ascii=False)
    with pytest.raises(WebhookSignatureError):
        parse_evolution_webhook(raw, {}, api_key="tok", now=NOW)


def test_deep_nesting_is_a_webhook_error_and_evolution_checks_the_key_first() -> None:
    hostile = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(WebhookSignatureError):
        parse_evolution_webhook(hostile, {}, api_key="tok", now=NOW)
    with pytest.raises(WebhookSignatureError):
        parse_waha_webhook(hostile, {}, hmac_key=KEY, now=NOW)
    for parse in (parse_waha_webhook, parse_evolution_webhook):
        with pytest.raises(WebhookError, match="nested too deeply") as info:
            parse(hostile, {}, **OPEN)
        assert type(info.value) is WebhookError
    objects = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    with pytest.raises(WebhookError, match="nested too deeply"):
        parse_evolution_webhook(objects, {"apikey": "tok"}, api_key="tok", now=NOW)


def test_a_body_over_the_cap_is_refused_before_its_signature_is_computed() -> None:
    big = b'{"pad": "' + b"x" * (DEFAULT_MAX_BODY_BYTES + 1) + b'"}'
    with pytest.raises(WebhookBodyTooLargeError):
        parse_waha_webhook(big, signed(big), hmac_key=KEY, now=NOW)
    with pytest.raises(WebhookBodyTooLargeError):
        parse_evolution_webhook(big.decode(), {"apikey": "tok"}, api_key="tok", now=NOW)
    small = waha_event()
    with pytest.raises(WebhookBodyTooLargeError):
        parse_waha_webhook(small, signed(small), hmac_key=KEY, now=NOW, max_body_bytes=100)


@pytest.mark.parametrize("minutes", [-6, 6])
def test_an_event_outside_the_replay_window_is_refused(minutes: int) -> None:
    body = waha_event()
    with pytest.raises(WebhookReplayError):
        parse_waha_webhook(body, signed(body), hmac_key=KEY, now=NOW + timedelta(minutes=minutes))
    with pytest.raises(WebhookReplayError):
        parse_evolution_webhook(
            evolution_event(), {}, api_key="tok", now=NOW + timedelta(minutes=minutes)
        )
    # Configurable, and off with None.
    at = NOW + timedelta(minutes=minutes)
    assert parse_waha_webhook(body, signed(body), hmac_key=KEY, now=at, max_age=None)
    assert parse_waha_webhook(
        body, signed(body), hmac_key=KEY, now=at, max_age=timedelta(minutes=10)
    )


def test_an_event_without_a_time_cannot_pass_the_window() -> None:
    body = json.loads(waha_event())
    del body["timestamp"]
    raw = json.dumps(body).encode()
    with pytest.raises(WebhookReplayError, match="no time"):
        parse_waha_webhook(raw, signed(raw), hmac_key=KEY, now=NOW)


async def test_a_repeated_event_id_is_refused_within_the_window() -> None:
    target = Recorder()
    guard = WebhookGuard()
    body = waha_event("STOPPED")
    await handle_waha_webhook(body, signed(body), target, hmac_key=KEY, guard=guard, now=NOW)
    with pytest.raises(WebhookReplayError, match="already received"):
        await handle_waha_webhook(body, signed(body), target, hmac_key=KEY, guard=guard, now=NOW)
    raw = evolution_event("close")
    await handle_evolution_webhook(raw, {}, target, api_key="tok", guard=guard, now=NOW)
    with pytest.raises(WebhookReplayError):
        await handle_evolution_webhook(raw, {}, target, api_key="tok", guard=guard, now=NOW)
    assert target.calls == [("disconnected", "main"), ("disconnected", "shop")]


async def test_an_older_state_does_not_undo_a_newer_one() -> None:
    target = Recorder()
    guard = WebhookGuard()

    def at(status: str, ms: int, event_id: str) -> bytes:
        data = json.loads(waha_event(status))
        data["timestamp"] = ms
        data["id"] = event_id
        return json.dumps(data).encode()

    base = 1_784_000_000_123
    up, down = at("WORKING", base + 5000, "evt_up"), at("STOPPED", base, "evt_down")
    for body in (up, down):
        await handle_waha_webhook(body, signed(body), target, hmac_key=KEY, guard=guard, now=NOW)
    assert target.calls == [("connected", "main")]


def test_the_replay_cache_is_bounded() -> None:
    guard = WebhookGuard(max_events=3)
    event = SessionStatusEvent("waha", "main", SessionStatus.CONNECTED, "WORKING", at=NOW)
    for n in range(10):
        guard.admit(event, f"id-{n}", now=NOW)
    assert len(guard._seen) == 3
    with pytest.raises(WebhookReplayError):
        guard.admit(event, "id-9", now=NOW)


_header_text = st.text(st.characters(codec=None), max_size=80)


@settings(max_examples=300)
@given(
    body=st.one_of(st.binary(max_size=300), st.text(max_size=300)),
    headers=st.dictionaries(
        st.sampled_from(["X-Webhook-Hmac", "X-Webhook-Hmac-Algorithm", "apikey", "other"]),
        _header_text,
    ),
    key=st.text(min_size=1, max_size=20).filter(str.strip),
)
def test_every_bad_request_is_a_webhook_error_and_nothing_else(
    body: bytes | str, headers: dict[str, str], key: str
) -> None:
    for parse, option in ((parse_waha_webhook, "hmac_key"), (parse_evolution_webhook, "api_key")):
        for options in ({option: key, "now": NOW}, OPEN):
            try:
                result = parse(body, headers, **options)
            except WebhookError:
                continue
            assert result is None or isinstance(result, SessionStatusEvent)
