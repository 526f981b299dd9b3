"""The delivery retry decision: every row of the table in relaybox.core.retry."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from relaybox.core.retry import (
    MIN_THROTTLED_DELAY,
    Decision,
    Outcome,
    Verdict,
    decide,
    is_success,
    parse_retry_after,
    parse_schedule,
)

NOW = datetime(2026, 11, 30, 3, 45, 8, tzinfo=UTC)
SCHEDULE = (4.0, 16.0, 64.0, 256.0, 1024.0)


def _decide(outcome: Outcome, attempt: int = 1, schedule: tuple[float, ...] = SCHEDULE) -> Decision:
    """Decide with no jitter, so the expected delays are exact."""
    return decide(outcome, attempt, schedule, now=NOW, rng=random.Random(0), jitter=0.0)


def _http_date(seconds_from_now: float) -> str:
    return format_datetime(NOW + timedelta(seconds=seconds_from_now), usegmt=True)


# -- is_success ---------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_is_success_for_2xx(status: int) -> None:
    assert is_success(status)


@pytest.mark.parametrize("status", [100, 199, 300, 301, 302, 304, 307, 400, 404, 410, 500, 503])
def test_is_not_success_otherwise(status: int) -> None:
    assert not is_success(status)


# -- parse_schedule -------------------------------------------------------------


def test_parse_schedule_default() -> None:
    assert parse_schedule("4,16,64,256,1024,4096,16384,65536,262144") == (
        4.0,
        16.0,
        64.0,
        256.0,
        1024.0,
        4096.0,
        16384.0,
        65536.0,
        262144.0,
    )


def test_parse_schedule_tolerates_spaces_fractions_and_zero() -> None:
    assert parse_schedule(" 0, 0.5 ,2 ") == (0.0, 0.5, 2.0)


def test_parse_schedule_single() -> None:
    assert parse_schedule("30") == (30.0,)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("4,,16", "item 2"),
        ("4,16,", "item 3"),
        ("4,abc", "'abc'"),
        ("4,-1", "'-1'"),
        ("nan", "finite"),
        ("inf", "finite"),
        ("4;16", "not a number"),
    ],
)
def test_parse_schedule_refuses_bad_input(text: str, words: str) -> None:
    with pytest.raises(ValueError, match="retry schedule") as info:
        parse_schedule(text)
    assert words in str(info.value)


# -- parse_retry_after ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("1.5", 1.5),
        (_http_date(300), 300.0),
        (_http_date(-300), 0.0),
        ("Mon, 30 Nov 2026 03:50:08 GMT", 300.0),
        ("Monday, 30-Nov-26 03:50:08 GMT", 300.0),  # obsolete RFC 850 form, still valid
        ("soon", None),
        ("", None),
        ("-5", None),
        ("1e3", None),
        ("Mon, 99 Foo 2026 99:99:99 GMT", None),
    ],
)
def test_parse_retry_after(value: str, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


def test_parse_retry_after_with_a_naive_now_is_read_as_utc() -> None:
    assert parse_retry_after(_http_date(90), NOW.replace(tzinfo=None)) == 90.0


# -- decide: final verdicts -----------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
@pytest.mark.parametrize("attempt", [1, 3, 6, 100])
def test_2xx_is_delivered_at_any_attempt(status: int, attempt: int) -> None:
    assert _decide(Outcome(status), attempt) == Decision(Verdict.DELIVERED, None)


@pytest.mark.parametrize("attempt", [1, 5, 6])
def test_410_deactivates_at_once(attempt: int) -> None:
    assert _decide(Outcome(410), attempt) == Decision(Verdict.DEACTIVATE, None)


def test_410_deactivates_even_with_retry_after() -> None:
    assert _decide(Outcome(410, retry_after="5")).verdict is Verdict.DEACTIVATE


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome(500),
        Outcome(302),
        Outcome(404),
        Outcome(429, retry_after="10"),
        Outcome(503),
        Outcome(None),
        Outcome(None, timed_out=True),
    ],
)
def test_failure_after_the_last_scheduled_attempt_gives_up(outcome: Outcome) -> None:
    last = len(SCHEDULE) + 1
    assert _decide(outcome, last) == Decision(Verdict.GIVE_UP, None)
    assert _decide(outcome, last + 5).verdict is Verdict.GIVE_UP


def test_the_last_scheduled_retry_is_still_a_retry() -> None:
    assert _decide(Outcome(500), len(SCHEDULE)) == Decision(Verdict.RETRY, SCHEDULE[-1])


def test_empty_schedule_gives_up_after_the_first_failure() -> None:
    assert _decide(Outcome(500), 1, ()) == Decision(Verdict.GIVE_UP, None)
    assert _decide(Outcome(200), 1, ()) == Decision(Verdict.DELIVERED, None)


# -- decide: plain failures follow the schedule ---------------------------------


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5])
def test_5xx_follows_the_schedule(attempt: int) -> None:
    assert _decide(Outcome(500), attempt) == Decision(Verdict.RETRY, SCHEDULE[attempt - 1])


@pytest.mark.parametrize("status", [300, 301, 302, 303, 304, 307, 308])
def test_3xx_is_a_failure_retried_on_schedule(status: int) -> None:
    assert _decide(Outcome(status)) == Decision(Verdict.RETRY, 4.0)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 408, 409, 413, 422])
def test_4xx_other_than_410_and_429_is_retried_on_schedule(status: int) -> None:
    assert _decide(Outcome(status), 2) == Decision(Verdict.RETRY, 16.0)


@pytest.mark.parametrize("status", [500, 501, 505, 520, 599])
def test_other_5xx_is_retried_on_schedule(status: int) -> None:
    assert _decide(Outcome(status), 3) == Decision(Verdict.RETRY, 64.0)


def test_1xx_is_a_failure() -> None:
    assert _decide(Outcome(100)) == Decision(Verdict.RETRY, 4.0)


@pytest.mark.parametrize("status", [500, 404, 302])
def test_retry_after_is_ignored_outside_429_502_503_504(status: int) -> None:
    assert _decide(Outcome(status, retry_after="600")) == Decision(Verdict.RETRY, 4.0)


def test_no_response_without_timeout_follows_the_schedule() -> None:
    # connection refused, DNS failure, refused by the SSRF guard
    assert _decide(Outcome(None)) == Decision(Verdict.RETRY, 4.0)


# -- decide: timeouts -----------------------------------------------------------


def test_timeout_is_never_retried_sooner_than_60_seconds() -> None:
    assert _decide(Outcome(None, timed_out=True)) == Decision(Verdict.RETRY, MIN_THROTTLED_DELAY)


def test_timeout_with_a_long_scheduled_delay_keeps_it() -> None:
    assert _decide(Outcome(None, timed_out=True), 5) == Decision(Verdict.RETRY, 1024.0)


# -- decide: 429, 502, 503, 504 -------------------------------------------------

THROTTLING = [429, 502, 503, 504]


@pytest.mark.parametrize("status", THROTTLING)
def test_throttling_without_retry_after_waits_at_least_60_seconds(status: int) -> None:
    assert _decide(Outcome(status), 1) == Decision(Verdict.RETRY, 60.0)
    assert _decide(Outcome(status), 3) == Decision(Verdict.RETRY, 64.0)


@pytest.mark.parametrize("status", THROTTLING)
def test_retry_after_seconds_is_honoured(status: int) -> None:
    # scheduled 64 s (attempt 3): 100 s asked, within 2 x 64
    assert _decide(Outcome(status, retry_after="100"), 3) == Decision(Verdict.RETRY, 100.0)


@pytest.mark.parametrize("status", THROTTLING)
def test_retry_after_http_date_is_honoured(status: int) -> None:
    outcome = Outcome(status, retry_after=_http_date(100))
    assert _decide(outcome, 3) == Decision(Verdict.RETRY, 100.0)


@pytest.mark.parametrize("status", THROTTLING)
@pytest.mark.parametrize("value", ["100000", _http_date(100000)])
def test_retry_after_is_bounded_to_twice_the_scheduled_delay(status: int, value: str) -> None:
    assert _decide(Outcome(status, retry_after=value), 4) == Decision(Verdict.RETRY, 512.0)


@pytest.mark.parametrize("status", THROTTLING)
@pytest.mark.parametrize("value", ["5", _http_date(5), _http_date(-3600), "0"])
def test_short_or_past_retry_after_never_goes_below_60_seconds(status: int, value: str) -> None:
    assert _decide(Outcome(status, retry_after=value), 1) == Decision(Verdict.RETRY, 60.0)


@pytest.mark.parametrize("status", THROTTLING)
def test_retry_after_shorter_than_the_schedule_keeps_the_schedule(status: int) -> None:
    assert _decide(Outcome(status, retry_after="90"), 5) == Decision(Verdict.RETRY, 1024.0)


@pytest.mark.parametrize("status", THROTTLING)
def test_retry_after_bounded_below_60_still_waits_60(status: int) -> None:
    # scheduled 4 s: bound 8 s, floor 60 s
    assert _decide(Outcome(status, retry_after="3600"), 1) == Decision(Verdict.RETRY, 60.0)


@pytest.mark.parametrize("status", THROTTLING)
@pytest.mark.parametrize("value", ["soon", "", "-10", "Fri, 99 Xyz", "12 minutes"])
def test_garbage_retry_after_is_ignored(status: int, value: str) -> None:
    assert _decide(Outcome(status, retry_after=value), 3) == Decision(Verdict.RETRY, 64.0)
    assert _decide(Outcome(status, retry_after=value), 1) == Decision(Verdict.RETRY, 60.0)


# -- decide: jitter ---------------------------------------------------------------


def test_jitter_stays_within_20_percent_and_spreads() -> None:
    rng = random.Random(1234)
    delays = []
    for _ in range(5000):
        decision = decide(Outcome(500), 4, SCHEDULE, now=NOW, rng=rng)
        assert decision.verdict is Verdict.RETRY
        assert decision.delay is not None
        delays.append(decision.delay)
    assert all(256 * 0.8 <= d <= 256 * 1.2 for d in delays)
    assert min(delays) < 256 * 0.82
    assert max(delays) > 256 * 1.18
    assert 256 * 0.98 < sum(delays) / len(delays) < 256 * 1.02


def test_jitter_is_reproducible_with_a_seeded_rng() -> None:
    first = [decide(Outcome(500), 2, SCHEDULE, now=NOW, rng=random.Random(7)) for _ in range(3)]
    assert first[0] == first[1] == first[2]


def test_custom_jitter_bounds() -> None:
    rng = random.Random(99)
    for _ in range(2000):
        delay = decide(Outcome(None), 5, SCHEDULE, now=NOW, rng=rng, jitter=0.5).delay
        assert delay is not None
        assert 512.0 <= delay <= 1536.0


def test_jitter_without_an_rng_uses_the_module_random() -> None:
    for _ in range(200):
        delay = decide(Outcome(500), 5, SCHEDULE, now=NOW).delay
        assert delay is not None
        assert 1024 * 0.8 <= delay <= 1024 * 1.2


def test_jittered_throttling_never_goes_below_60() -> None:
    rng = random.Random(5)
    for _ in range(2000):
        delay = decide(Outcome(503), 3, SCHEDULE, now=NOW, rng=rng).delay  # 64 s +- 20%
        assert delay is not None
        assert 60.0 <= delay <= 64.0 * 1.2


def test_jittered_retry_after_stays_within_twice_the_schedule() -> None:
    rng = random.Random(6)
    for _ in range(2000):
        outcome = Outcome(429, retry_after="100000")
        delay = decide(outcome, 4, SCHEDULE, now=NOW, rng=rng).delay
        assert delay == 512.0


# -- decide: argument checks --------------------------------------------------------


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempt_is_one_based(attempt: int) -> None:
    with pytest.raises(ValueError, match="1-based"):
        decide(Outcome(500), attempt, SCHEDULE, now=NOW)


@pytest.mark.parametrize("jitter", [-0.1, 1.0, 2.0])
def test_jitter_must_be_a_fraction(jitter: float) -> None:
    with pytest.raises(ValueError, match="jitter"):
        decide(Outcome(500), 1, SCHEDULE, now=NOW, jitter=jitter)


def test_outcome_and_decision_are_frozen() -> None:
    outcome = Outcome(500)
    with pytest.raises(AttributeError):
        outcome.status_code = 200  # type: ignore[misc]
