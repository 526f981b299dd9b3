"""The HTTP plumbing every provider client shares: one `httpx.AsyncClient` (or pool) seam,
transport failures as `ProviderUnavailable`, server errors retried with back-off, and
OAuth 2.0's authorization-code and refresh grants (RFC 6749)."""

from __future__ import annotations

import asyncio
import json
import math
import random
from datetime import datetime, timedelta
from typing import Any

import httpx

from relaybox.connectors.base import Tokens
from relaybox.core.backoff import backoff
from relaybox.core.clock import Clock, SystemClock
from relaybox.core.errors import ProviderUnavailable
from relaybox.httpclients import ClientPool

# The longest relaybox waits because a provider asked it to (Retry-After) or between tries.
MAX_WAIT = 3600.0


class ProviderHTTP:
    """Sends a provider's requests. A 5xx answer or a lost connection is tried again with
    jittered exponential back-off (`retry_base` seconds, doubled per try, `retries` times);
    what the answer means is the provider client's to say. `clock` is the runtime's: when
    a token ends is read on it."""

    provider = "the provider"  # as messages name it

    def __init__(
        self,
        http: httpx.AsyncClient | ClientPool,
        *,
        retry_base: float = 1.0,
        retries: int = 3,
        rng: random.Random | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.http = http
        self.retry_base = retry_base
        self.retries = retries
        self._rng = rng or random.SystemRandom()
        self.clock = clock or SystemClock()

    async def retrying(self, verb: str, url: str, **options: Any) -> httpx.Response:
        """The answer, after up to `retries` more tries while it is a 5xx (the last 5xx is
        returned); ProviderUnavailable when the last try reached no one."""
        for attempt in range(self.retries + 1):
            try:
                response = await self.send(verb, url, **options)
            except ProviderUnavailable:
                if attempt == self.retries:
                    raise
            else:
                if response.status_code < 500 or attempt == self.retries:
                    return response
            await self.pause(attempt)
        raise AssertionError("unreachable")

    async def pause(self, attempt: int) -> None:
        await asyncio.sleep(backoff(attempt + 1, base=self.retry_base, cap=MAX_WAIT, rng=self._rng))

    async def send(self, verb: str, url: str, **options: Any) -> httpx.Response:
        try:
            return await self.http.request(verb, url, **options)
        except httpx.TimeoutException as exc:
            raise ProviderUnavailable(f"{self.provider} did not answer in time: {url}") from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailable(f"cannot reach {self.provider} at {url}: {exc}") from exc


class OAuth2Client(ProviderHTTP):
    """The two grants relaybox asks for, the same at every provider; `token` posts a form
    to the provider's token endpoint and reads its answer (its errors are the provider's)."""

    async def exchange_code(
        self, *, code: str, app_key: str, app_secret: str, redirect_uri: str | None
    ) -> Tokens:
        form = {"grant_type": "authorization_code", "code": code}
        if redirect_uri:
            form["redirect_uri"] = redirect_uri
        return await self.token(form, app_key, app_secret)

    async def refresh(self, *, refresh_token: str, app_key: str, app_secret: str) -> Tokens:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        token = await self.token(form, app_key, app_secret)
        # A refresh answer need not carry a refresh token: the old one stays valid then.
        return Tokens(
            token.access_token,
            token.refresh_token or refresh_token,
            token.expires_at,
            token.account_id,
        )

    async def token(self, form: dict[str, str], app_key: str, app_secret: str) -> Tokens:
        raise NotImplementedError

    def expires_at(self, expires_in: object) -> datetime | None:
        """When a token said to last `expires_in` seconds ends (None: nothing said)."""
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            return self.clock.now() + timedelta(seconds=float(expires_in))
        return None


def json_or_none(response: httpx.Response) -> dict[str, Any] | None:
    """The answer's JSON object, or None when it has none."""
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def bounded_wait(seconds: float) -> float:
    """A wait a provider asked for, within [0, MAX_WAIT] (a proxy's "inf" or "nan" must
    not park an instance)."""
    if math.isnan(seconds):
        return 1.0
    return min(MAX_WAIT, max(0.0, seconds))


def retry_after(response: httpx.Response) -> float:
    """The `Retry-After` header in seconds (1 when absent or not a number)."""
    try:
        return bounded_wait(float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0
