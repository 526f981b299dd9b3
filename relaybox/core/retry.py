"""What to do after one delivery attempt (SPEC section 5).

`decide` is pure: given what the attempt produced, which attempt it was and
the retry schedule, it returns a `Decision`; the delivery worker applies it.

``attempt`` is the 1-based number of the attempt just made; ``schedule[i]``
is the wait, in seconds, after failed attempt ``i + 1``, so a schedule of
*n* delays allows *n* + 1 attempts in all. ``d`` below is
``schedule[attempt - 1]``, and ``jittered(d)`` is ``d`` times a uniform draw
from ``[1 - jitter, 1 + jitter]`` (jitter 0.2 = the SPEC's +-20%).

| outcome of the attempt                      | verdict    | delay (seconds)                 |
|---------------------------------------------|------------|---------------------------------|
| 2xx                                         | DELIVERED  | None                            |
| 410 Gone                                    | DEACTIVATE | None (deactivate at once)       |
| any other outcome, attempt > len(schedule)  | GIVE_UP    | None (deactivate: exhausted)    |
| 1xx; 3xx (redirects are never followed);    | RETRY      | jittered(d)                     |
| 4xx and 5xx not listed below; no response   |            |                                 |
| (connection error, refused by SSRF guard)   |            |                                 |
| 429/502/503/504, no usable Retry-After      | RETRY      | max(60, jittered(d))            |
| (absent or garbage)                         |            |                                 |
| 429/502/503/504 with Retry-After r seconds  | RETRY      | max(60, jittered(d), min(r, 2d))|
| (delay-seconds, or HTTP-date minus `now`;   |            |                                 |
| a date in the past is r = 0)                |            |                                 |
| timeout (timed_out=True)                    | RETRY      | max(60, jittered(d))            |

So a Retry-After is honoured as "not before", but never pushes the next
attempt beyond twice the scheduled delay, and throttling answers and
timeouts are never retried sooner than 60 seconds.
"""

from __future__ import annotations

import enum
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = [
    "MIN_THROTTLED_DELAY",
    "THROTTLING_STATUSES",
    "Decision",
    "Outcome",
    "Verdict",
    "decide",
    "is_success",
    "parse_retry_after",
    "parse_schedule",
]

#: Statuses whose Retry-After is honoured and which are never retried sooner than 60 s.
THROTTLING_STATUSES = frozenset({429, 502, 503, 504})
#: Seconds: the earliest retry after a throttling status or a timeout.
MIN_THROTTLED_DELAY = 60.0

_DELAY_SECONDS = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True)
class Outcome:
    """What one attempt produced."""

    #: The response status, or None when there was no response (timeout,
    #: connection error, refused by the SSRF guard).
    status_code: int | None
    #: The raw Retry-After header value, if any (delay-seconds or HTTP-date).
    retry_after: str | None = None
    #: Whether the attempt ran out of time.
    timed_out: bool = False


class Verdict(enum.Enum):
    DELIVERED = "delivered"
    """A 2xx answer: done."""
    RETRY = "retry"
    """A failure with attempts left: try again after `Decision.delay`."""
    GIVE_UP = "give_up"
    """A failure after the last scheduled attempt: deactivate the subscription."""
    DEACTIVATE = "deactivate"
    """410 Gone: deactivate the subscription at once."""


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    #: Seconds until the next attempt when `verdict` is RETRY, else None.
    delay: float | None = None


def is_success(status: int) -> bool:
    """Whether an HTTP status counts as delivered: any 2xx."""
    return 200 <= status < 300


def parse_schedule(text: str) -> tuple[float, ...]:
    """Parse a retry schedule such as ``"4,16,64"`` into seconds.

    Whitespace around items is ignored. Raises ValueError naming the bad item
    for an empty schedule, an empty item, a non-number, or a negative,
    infinite or NaN delay.
    """
    if not text.strip():
        raise ValueError("retry schedule is empty; expected comma-separated seconds like '4,16,64'")
    delays: list[float] = []
    for position, raw in enumerate(text.split(","), start=1):
        item = raw.strip()
        if not item:
            raise ValueError(f"retry schedule item {position} is empty in {text!r}")
        try:
            value = float(item)
        except ValueError:
            raise ValueError(
                f"retry schedule item {position} ({item!r}) is not a number of seconds"
            ) from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(
                f"retry schedule item {position} ({item!r}) must be a finite number of seconds >= 0"
            )
        delays.append(value)
    return tuple(delays)


def parse_retry_after(value: str, now: datetime) -> float | None:
    """Seconds to wait according to a Retry-After value, or None if it is unusable.

    Accepts delay-seconds (``"120"``, fractions tolerated) and an HTTP-date,
    read relative to `now` (a naive `now` or date is taken as UTC). A date in
    the past gives 0. Anything else gives None.
    """
    text = value.strip()
    if _DELAY_SECONDS.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def decide(
    outcome: Outcome,
    attempt: int,
    schedule: Sequence[float],
    *,
    now: datetime,
    rng: random.Random | None = None,
    jitter: float = 0.2,
) -> Decision:
    """Decide what follows attempt number `attempt` (1-based); see the module table."""
    if attempt < 1:
        raise ValueError(f"attempt is 1-based, got {attempt}")
    if not 0 <= jitter < 1:
        raise ValueError(f"jitter must be in [0, 1), got {jitter}")
    status = outcome.status_code
    if status is not None and is_success(status):
        return Decision(Verdict.DELIVERED)
    if status == 410:
        return Decision(Verdict.DEACTIVATE)
    if attempt > len(schedule):
        return Decision(Verdict.GIVE_UP)

    scheduled = float(schedule[attempt - 1])
    draw = (rng.uniform if rng is not None else random.uniform)(-jitter, jitter)
    delay = scheduled * (1 + draw)

    throttled = status in THROTTLING_STATUSES
    if throttled and outcome.retry_after is not None:
        asked = parse_retry_after(outcome.retry_after, now)
        if asked is not None:
            delay = max(delay, min(asked, 2 * scheduled))
    if throttled or outcome.timed_out:
        delay = max(delay, MIN_THROTTLED_DELAY)
    return Decision(Verdict.RETRY, delay)
