"""What the sandboxes' notification senders share: one HTTP client, the loop it runs on,
exponential backoff and a log.

Dropbox's webhooks (``relaybox/sandbox/webhooks.py``) and Google's push messages
(``relaybox/gdrive_sandbox/push.py``) differ in what they send, when they retry and what
they log; both post from asyncio tasks on the loop that serves the sandbox, started on
first use, through a client that a host may give its own transport (relaybox installs
the callbacks' SSRF guard) and TLS trust.
"""

import asyncio
import ssl
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from relaybox.sandbox_kit.types import JSON

LOG_SIZE = 1000
REFUSED = (httpx.HTTPError, ValueError)
"""What a failed send raises: httpx's errors, and ValueError from a transport that
refuses the target (``relaybox serve --sandbox`` installs the callbacks' SSRF guard)."""


@dataclass(frozen=True)
class Sent:
    """One attempt: the answer's status and text, or the error that stood for it."""

    status: int | None
    text: str = ""
    error: str | None = None


class Sender:
    def __init__(self, retry_base: float, retry_cap: float) -> None:
        self.retry_base = retry_base
        """First retry delay in seconds; doubles with each attempt, capped at ``retry_cap``."""
        self.retry_cap = retry_cap
        self.transport: httpx.AsyncBaseTransport | None = None
        """Replace the network (tests use ``httpx.MockTransport``; relaybox, a guarded one)."""
        self.verify: ssl.SSLContext | bool = True
        """TLS verification of targets: True, False, or a context trusting a private CA."""
        self.log: deque[JSON] = deque(maxlen=LOG_SIZE)
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _running_loop(self) -> asyncio.AbstractEventLoop | None:
        """The running loop, or None outside one. On a loop other than the last one (first
        use, or a new loop after the old one closed) the old loop's client is dropped and
        :meth:`_forget_tasks` drops its tasks."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        if loop is not self._loop:
            self._loop, self._client = loop, None
            self._forget_tasks()
        return loop

    def _forget_tasks(self) -> None:
        """Drop the record of tasks (of an earlier loop, or cancelled at close)."""

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self.transport,
                verify=self.verify,
                timeout=10.0,
                follow_redirects=False,
                # no idle keep-alive: mounted in the server it posts to, an idle
                # connection to itself would hold up that server's shutdown
                limits=httpx.Limits(max_keepalive_connections=0),
            )
        return self._client

    async def _send(self, method: str, url: str, **options: Any) -> Sent:
        """One request; a refused or failed connection is an error, not an exception."""
        try:
            answer = await self._http().request(method, url, **options)
        except REFUSED as exc:
            return Sent(None, error=f"{type(exc).__name__}: {exc}")
        return Sent(answer.status_code, answer.text)

    def _backoff(self, attempt: int) -> float:
        return float(min(self.retry_base * 2**attempt, self.retry_cap))

    @staticmethod
    async def _cancel(tasks: Iterable[asyncio.Task[None]]) -> None:
        """Cancel ``tasks`` and wait for them to end."""
        tasks = list(tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _close_client(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
