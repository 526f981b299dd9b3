"""Outgoing HTTP: several small httpx clients instead of one large one.

httpcore scans every connection of a pool on each request and each answer (and polls the
idle ones' sockets), so one pool of a hundred connections costs more CPU than the requests
it carries: a third of relaybox's CPU in the fan-out benchmark. `ClientPool` spreads
requests over clients of a few dozen connections each; a key keeps related requests (one
instance's callbacks) on one client, so keep-alive still pays.

Within a client, httpcore keeps a connection for one (scheme, host, port) of the request
URL, the host TLS verified it for; callback requests keep their host name in the URL (the
connect-time SSRF check pins the address in `network_backend`, not in the URL), so a
connection never carries a request for another host that shares its address.
"""

from __future__ import annotations

import itertools
import math
import ssl
from typing import Any

import httpcore
import httpx

CONNECTIONS_PER_CLIENT = 16


class ClientPool:
    def __init__(
        self,
        concurrency: int,
        *,
        verify: ssl.SSLContext | bool = True,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        **client_options: Any,
    ) -> None:
        """Clients enough for `concurrency` requests at once (`CONNECTIONS_PER_CLIENT` each).

        `verify` is httpx's (True: the default CA certificates); `network_backend`, when
        given, opens every connection (the callback clients' SSRF guard)."""
        count = max(1, math.ceil(concurrency / CONNECTIONS_PER_CLIENT))
        if not isinstance(verify, ssl.SSLContext):
            verify = httpx.create_ssl_context(verify=verify)  # one for all the clients
        self.clients = [_client(verify, network_backend, client_options) for _ in range(count)]
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


def _client(
    verify: ssl.SSLContext,
    network_backend: httpcore.AsyncNetworkBackend | None,
    client_options: dict[str, Any],
) -> httpx.AsyncClient:
    # Room for an uneven spread of keys; beyond it requests queue in their client.
    max_connections, max_keepalive = 2 * CONNECTIONS_PER_CLIENT, CONNECTIONS_PER_CLIENT
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_keepalive)
    if network_backend is None:
        return httpx.AsyncClient(verify=verify, limits=limits, **client_options)
    # httpx has no option for it: its transport, with the pool it builds given the backend.
    # (A client with its own transport takes no proxy from the environment.)
    transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=verify,
        max_connections=max_connections,
        max_keepalive_connections=max_keepalive,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=network_backend,
    )
    return httpx.AsyncClient(transport=transport, **client_options)
