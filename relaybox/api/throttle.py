"""Failed authentications, rate-limited per client address (a sliding window, in process).

Credentials are checked first (a hash and one indexed lookup, cheap), and only failures
meet the limiter: after `limit` failures from one address within `window` seconds, every
further failure from it answers 429 with `Retry-After` (and is not counted, so the block
ends when the oldest failure leaves the window). Valid credentials are always answered:
the secrets are 256-bit, so the limiter bounds what failures cost, it does not stop
guessing, and refusing valid calls would let ten bad guesses lock out every user who
shares an address (behind a proxy, a NAT, or an attacker's choosing). Successful calls
never count and never reset the count.

The state lives in this process: with several `relaybox serve` processes behind a load
balancer each one counts alone, so an address gets up to `limit` failures per process
per window. The address is the TCP peer, or the X-Forwarded-For client when the peer is
one of the proxies in `RELAYBOX_FORWARDED_ALLOW_IPS` (docs/configuration.md).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

FAILURE_LIMIT = 10
FAILURE_WINDOW = 60.0
MAX_ADDRESSES = 10_000


class FailureLimiter:
    def __init__(
        self,
        limit: int = FAILURE_LIMIT,
        window: float = FAILURE_WINDOW,
        *,
        max_addresses: int = MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str, now: float) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures

    def retry_after(self, address: str) -> int | None:
        """Seconds until `address` may try again, or None when it is not blocked."""
        now = self.clock()
        failures = self._recent(address, now)
        if failures is None or len(failures) < self.limit:
            return None
        return max(1, math.ceil(failures[-self.limit] + self.window - now))

    def failure(self, address: str) -> int | None:
        """A failed authentication from `address`: counted when the address is under the
        limit (None: answer 401), else the seconds to wait (answer 429, not counted)."""
        wait = self.retry_after(address)
        if wait is None:
            self.failed(address)
        return wait

    def failed(self, address: str) -> None:
        """Record one failed authentication from `address`."""
        now = self.clock()
        failures = self._recent(address, now) or deque(maxlen=self.limit)
        failures.append(now)
        self._failures[address] = failures
        self._failures.move_to_end(address)
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)  # forget the address idle the longest
