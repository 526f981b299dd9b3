"""Jittered exponential back-off, the one formula every retry loop of relaybox uses."""

from __future__ import annotations

import random

_rng = random.SystemRandom()


def backoff(
    failures: int,
    *,
    base: float,
    cap: float,
    jitter: float = 0.5,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after `failures` consecutive failures (1 = the first).

    `base * 2**(failures - 1)`, capped at `cap`, then spread by ±`jitter` (a fraction) so
    that many waiters do not retry in step.
    """
    delay = min(cap, base * 2 ** max(0, failures - 1))
    return float(delay * (rng or _rng).uniform(1 - jitter, 1 + jitter))
