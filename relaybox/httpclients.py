"""Outgoing HTTP: several small httpx clients instead of one large one.

httpcore scans every connection of a pool on each request and each answer (and polls the
idle ones' sockets), so one pool of a hundred connections costs more CPU than the requests
it carries: a third of relaybox's CPU in the fan-out benchmark. `ClientPool` spreads
requests over clients of a few dozen connections each; a key keeps related requests (one
instance's callbacks) on one client, so keep-alive still pays.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import httpx

CONNECTIONS_PER_CLIENT = 16


class ClientPool:
    def __init__(self, concurrency: int, **client_options: Any) -> None:
        """Clients enough for `concurrency` requests at once (`CONNECTIONS_PER_CLIENT` each)."""
        count = max(1, math.ceil(concurrency / CONNECTIONS_PER_CLIENT))
        limits = httpx.Limits(
            # Room for an uneven spread of keys; beyond it requests queue in their client.
            max_connections=2 * CONNECTIONS_PER_CLIENT,
            max_keepalive_connections=CONNECTIONS_PER_CLIENT,
        )
        self.clients = [httpx.AsyncClient(limits=limits, **client_options) for _ in range(count)]
        self._turn = itertools.cycle(range(count))

    def client(self, key: int | None = None) -> httpx.AsyncClient:
        """The client for `key` (always the same one), or the next one in turn."""
        index = next(self._turn) if key is None else key % len(self.clients)
        return self.clients[index]

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """`httpx.AsyncClient.request` on the next client in turn."""
        return await self.client().request(method, url, **kwargs)

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()
