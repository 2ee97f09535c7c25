# Copyright 2026 engagequeue developers. Licensed under the MIT license.
"""RetryPolicy: tenacity strategies held as a frozen value, and the testing switch."""

from __future__ import annotations

import attrs
import pytest
import tenacity

from engagequeue import (
    PermanentTransportError,
    RetryPolicy,
    SessionDisconnectedError,
    TransientTransportError,
    ValidationError,
    is_testing,
    set_testing,
)


@pytest.fixture(autouse=True)
def _testing_off():
    with set_testing(False):
        yield


def test_default_policy_retries_transient_errors_timeouts_and_unexpected_errors():
    policy = RetryPolicy()
    for exc in (TransientTransportError("503"), TimeoutError(), RuntimeError("bug in a transport")):
        decision = policy.decide(exc, attempt_number=1)
        assert decision.retry, exc
        assert decision.delay > 0


def test_default_policy_never_retries_permanent_errors_or_disconnects():
    policy = RetryPolicy()
    assert not policy.decide(PermanentTransportError("401"), 1).retry
    assert not policy.decide(SessionDisconnectedError("gone"), 1).retry
    assert policy.decide(PermanentTransportError("401"), 1).delay == 0


def test_default_backoff_grows_exponentially_with_bounded_jitter():
    policy = RetryPolicy()
    for attempt, base in ((1, 10), (2, 20), (3, 40), (4, 80)):
        delays = [policy.decide(TransientTransportError("x"), attempt).delay for _ in range(50)]
        assert all(base <= d <= base + 10 for d in delays), (attempt, min(delays), max(delays))
        assert len(set(delays)) > 1, "jitter makes the delays differ"


def test_default_backoff_is_capped_at_ten_minutes_plus_jitter():
    delay = RetryPolicy().decide(TransientTransportError("x"), 30).delay
    assert 600 <= delay <= 610


def test_custom_tenacity_wait_strategy_is_applied_to_the_attempt_number():
    policy = RetryPolicy(wait=tenacity.wait_exponential(multiplier=1, exp_base=3))
    assert [policy.decide(TimeoutError(), n).delay for n in (1, 2, 3)] == [1, 3, 9]


def test_stop_strategy_gives_up_before_max_attempts():
    policy = RetryPolicy(stop=tenacity.stop_after_attempt(2), wait=tenacity.wait_fixed(5))
    assert policy.decide(TimeoutError(), 1) == policy.decide(TimeoutError(), 1)
    assert policy.decide(TimeoutError(), 1).retry
    assert not policy.decide(TimeoutError(), 2).retry


def test_time_based_stop_sees_the_attempt_lateness():
    policy = RetryPolicy(stop=tenacity.stop_after_delay(60), wait=tenacity.wait_fixed(1))
    assert policy.decide(TimeoutError(), 1, lateness=5.0).retry
    assert not policy.decide(TimeoutError(), 1, lateness=61.0).retry


def test_custom_retry_predicate_limits_which_errors_are_retried():
    policy = RetryPolicy(retry=tenacity.retry_if_exception_type(TransientTransportError))
    assert policy.decide(TransientTransportError("x"), 1).retry
    assert not policy.decide(RuntimeError("x"), 1).retry


def test_testing_mode_removes_backoff_but_keeps_the_decision():
    policy = RetryPolicy(stop=tenacity.stop_after_attempt(2))
    with set_testing(True):
        assert is_testing()
        assert policy.decide(TransientTransportError("x"), 1).delay == 0
        assert policy.decide(TransientTransportError("x"), 1).retry
        assert not policy.decide(TransientTransportError("x"), 2).retry
        assert not policy.decide(PermanentTransportError("x"), 1).retry
    assert not is_testing()
    assert policy.decide(TransientTransportError("x"), 1).delay >= 10


def test_set_testing_without_context_manager_stays_on_until_turned_off():
    set_testing(True)
    assert is_testing()
    set_testing(False)
    assert not is_testing()


def test_set_testing_refuses_non_booleans():
    with pytest.raises(ValidationError) as info:
        set_testing("yes")  # type: ignore[arg-type]
    assert info.value.field == "testing"


def test_policy_is_a_frozen_value():
    policy = RetryPolicy()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.wait = tenacity.wait_none()  # type: ignore[misc]
    changed = attrs.evolve(policy, wait=tenacity.wait_fixed(2))
    assert changed.decide(TimeoutError(), 1).delay == 2
    assert changed.stop is policy.stop


@pytest.mark.parametrize("field", ["wait", "stop", "retry"])
def test_non_strategy_values_are_refused_naming_the_field(field):
    with pytest.raises(ValidationError) as info:
        RetryPolicy(**{field: 5})
    assert info.value.field == field
    assert "tenacity" in str(info.value)
