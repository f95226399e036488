"""The poison policy and backoff arithmetic (core/retry.py): exact answers, no clock."""

from __future__ import annotations

import pytest

from lameduck.config import BROKER_SCHEMES
from lameduck.core.retry import Bury, Retry, RetryPolicy, heartbeat_interval
from lameduck.errors import ConfigError
from lameduck.workers.broker import SCHEMES, scheme_of


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=10, base=1.0, factor=2.0, cap=5.0, jitter=0.0)
    assert [policy.delay(n, 0.0) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_jitter_only_shortens_the_delay() -> None:
    policy = RetryPolicy(base=4.0, jitter=0.5)
    assert policy.delay(1, 0.0) == 4.0
    assert policy.delay(1, 0.999) == pytest.approx(2.002)


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert RetryPolicy(cap=300).delay(10_000, 0.0) == 300


def test_retry_until_max_attempts_then_bury() -> None:
    policy = RetryPolicy(max_attempts=3, base=0.5, jitter=0.0)
    assert policy.decide(1, 0.0) == Retry(0.5)
    assert policy.decide(2, 0.0) == Retry(1.0)
    decision = policy.decide(3, 0.0)
    assert isinstance(decision, Bury)
    assert "3 of 3" in decision.reason


def test_a_claim_past_max_attempts_is_over() -> None:
    policy = RetryPolicy(max_attempts=2)
    assert not policy.over(2)
    assert policy.over(3)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"base": -1}, {"factor": 0.5}, {"jitter": 1.5}, {"cap": 10**6}],
)
def test_invalid_policies_are_config_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_heartbeat_is_a_third_of_the_lease() -> None:
    assert heartbeat_interval(9.0) == 3.0


def test_config_and_broker_agree_on_schemes() -> None:
    assert set(BROKER_SCHEMES) == set(SCHEMES)


@pytest.mark.parametrize("url", ["mysql://x", "nope", "http://broker"])
def test_unknown_broker_urls_name_the_setting(url: str) -> None:
    with pytest.raises(ConfigError, match="--broker"):
        scheme_of(url)
