"""The failed-authentication limiter: a sliding window per client address."""

from __future__ import annotations

from relaybox.api.throttle import FailureLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_blocks_after_the_limit_until_the_oldest_failure_leaves_the_window() -> None:
    clock = Clock()
    limiter = FailureLimiter(limit=3, window=60, clock=clock)
    for _ in range(2):
        limiter.failed("10.0.0.1")
        clock.now += 1
    assert limiter.retry_after("10.0.0.1") is None
    limiter.failed("10.0.0.1")  # the third, at t=1002; the first was at t=1000
    assert limiter.retry_after("10.0.0.1") == 58
    assert limiter.retry_after("10.0.0.2") is None, "other addresses are not affected"
    clock.now += 57.5
    assert limiter.retry_after("10.0.0.1") == 1
    clock.now += 0.5  # the first failure leaves the window
    assert limiter.retry_after("10.0.0.1") is None
    limiter.failed("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == 1, "blocked again: three in the last minute"


def test_old_failures_are_forgotten_and_memory_is_bounded() -> None:
    clock = Clock()
    limiter = FailureLimiter(limit=2, window=10, max_addresses=100, clock=clock)
    limiter.failed("a")
    clock.now += 11
    limiter.failed("a")
    assert limiter.retry_after("a") is None
    for number in range(1000):
        limiter.failed(f"10.1.{number // 256}.{number % 256}")
    assert len(limiter._failures) == 100


def test_a_failure_past_the_limit_is_refused_and_not_counted() -> None:
    clock = Clock()
    limiter = FailureLimiter(limit=2, window=60, clock=clock)
    assert limiter.failure("10.0.0.1") is None  # counted: answer 401
    clock.now += 10
    assert limiter.failure("10.0.0.1") is None
    for _ in range(5):  # blocked: answer 429 with the wait, and the block does not grow
        clock.now += 1
        assert limiter.failure("10.0.0.1") == 60 - (clock.now - 1000)
    clock.now = 1060  # the first failure leaves the window, as Retry-After said
    assert limiter.failure("10.0.0.1") is None
