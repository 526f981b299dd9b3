"""When polling instances are due (relaybox.core.schedule)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from relaybox.core.schedule import first_due, next_due, phase, poll_interval

NOW = datetime(2026, 11, 30, 3, 45, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def test_interval_is_floored_at_the_minimum() -> None:
    assert poll_interval(15, 60) == timedelta(minutes=15)
    assert poll_interval(0.1, 60) == timedelta(seconds=60)
    assert poll_interval(0.005, 0.2) == timedelta(seconds=0.3)


def test_first_polls_spread_over_the_interval() -> None:
    dues = [first_due(n, NOW, MINUTE) for n in range(1, 601)]
    assert all(NOW <= due < NOW + MINUTE for due in dues)
    per_ten_seconds = [0] * 6
    for due in dues:
        per_ten_seconds[int((due - NOW).total_seconds() // 10)] += 1
    assert max(per_ten_seconds) - min(per_ten_seconds) <= 2  # even, not all at once
    assert first_due(7, NOW, MINUTE) == first_due(7, NOW, MINUTE)  # fixed per instance
    assert 0 <= phase(123456789) < 1


def test_next_poll_keeps_the_phase_and_skips_missed_ones() -> None:
    due = NOW - timedelta(seconds=5)
    assert next_due(due, NOW, MINUTE) == due + MINUTE
    long_ago = NOW - 10 * MINUTE
    assert next_due(long_ago, NOW, MINUTE) == NOW + MINUTE
