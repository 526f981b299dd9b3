"""The shared back-off formula."""

from __future__ import annotations

import random

import pytest

from relaybox.core.backoff import backoff


@pytest.mark.parametrize(("failures", "expected"), [(1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0)])
def test_doubles_per_failure_up_to_the_cap(failures: int, expected: float) -> None:
    assert backoff(failures, base=2.0, cap=60.0, jitter=0.0) == expected


def test_jitter_stays_within_its_fraction() -> None:
    rng = random.Random(7)
    draws = [backoff(3, base=1.0, cap=100.0, jitter=0.2, rng=rng) for _ in range(2000)]
    assert min(draws) >= 3.2 - 1e-9 and max(draws) <= 4.8 + 1e-9  # 1 * 2**2, ±20%
    assert max(draws) - min(draws) > 1.0, "the draws are spread, not constant"
