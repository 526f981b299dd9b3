"""core/health.py row by row, and the overview's chart bars (web/overview.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from relaybox.core.health import Health, health
from relaybox.store.health import Hour
from relaybox.web.overview import chart


@pytest.mark.parametrize(
    ("valid", "active", "disabled", "retrying", "expected"),
    [
        (True, True, False, False, Health.HEALTHY),
        (True, True, False, True, Health.RETRYING),
        (True, False, False, True, Health.PAUSED),
        (True, True, True, False, Health.PAUSED),
        (False, True, False, False, Health.INVALID),
        (False, False, True, True, Health.INVALID),
    ],
)
def test_health_table(
    valid: bool, active: bool, disabled: bool, retrying: bool, expected: Health
) -> None:
    found = health(valid=valid, subscription_active=active, disabled=disabled, retrying=retrying)
    assert found is expected


START = datetime(2026, 12, 5, 8, tzinfo=UTC)


def hours(*counts: tuple[int, int]) -> list[Hour]:
    return [Hour(START + timedelta(hours=n), d, f) for n, (d, f) in enumerate(counts)]


def test_the_busiest_hour_fills_the_height_and_failed_stacks_under_delivered() -> None:
    drawn = chart(hours((0, 0), (30, 10), (1, 0)), width=30, height=40)
    quiet, busy, one = drawn.bars
    assert (quiet.delivered_height, quiet.failed_height) == (0, 0)
    assert (busy.failed_y, busy.failed_height) == (30, 10)
    assert (busy.delivered_y, busy.delivered_height) == (0, 30)
    assert one.delivered_height == 1.0  # one attempt among 40 still shows
    assert [bar.x for bar in drawn.bars] == [1, 11, 21] and busy.width == 8
    assert busy.label == "09:00 to 10:00 UTC: 30 delivered, 10 failed"
    assert (drawn.delivered, drawn.failed, drawn.peak) == (31, 10, 40)
    assert (
        drawn.summary
        == "Attempts in the last 3 hours: 31 delivered, 10 failed; at most 40 in one hour."
    )


def test_small_parts_rounded_up_never_overflow() -> None:
    [bar] = chart(hours((1, 1)), width=10, height=1).bars
    assert bar.failed_height + bar.delivered_height <= 1
    assert bar.delivered_y >= 0


def test_an_empty_day() -> None:
    drawn = chart(hours(*[(0, 0)] * 24), width=480, height=96)
    assert drawn.peak == 0 and all(b.delivered_height == b.failed_height == 0 for b in drawn.bars)
    assert drawn.summary == "Attempts in the last 24 hours: 0 delivered, 0 failed."
