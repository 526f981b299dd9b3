"""Outgoing HTTP: several small httpx clients instead of one large one.

httpcore scans every connection of a pool on each request and each answer (and polls each
idle one's socket, a system call), so one pool of a hundred connections costs more CPU
than the requests it carries: a third of relaybox's CPU in the fan-out benchmark.
`ClientPool` spreads requests over clients of `CONNECTIONS_PER_CLIENT` connections each; a
key keeps related requests (one instance's callbacks) on one client, so keep-alive still
pays. And each request goes out in one write (`CoalescedWrites`), not two.

Within a client, httpcore keeps a connection for one (scheme, host, port) of the request
URL, the host TLS verified it for; callback requests keep their host name in the URL (the
connect-time SSRF check pins the address in `network_backend`, not in the URL), so a
connection never carries a request for another host that shares its address.
"""

from __future__ import annotations

import itertools
import math
import ssl
import urllib.request
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

CONNECTIONS_PER_CLIENT = 8


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


class CoalescedWrites(httpcore.AsyncNetworkBackend):
    """Connections (opened by `inner`) that send a request's head and body in one write.

    httpcore writes the head of a request and then its body; each write is a system call
    (and, over TLS, a record). Writes are held until the connection next reads (the
    answer) or `FLUSH_BYTES` pile up: one call per request for everything relaybox sends.
    """

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self.inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self.inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _CoalescingStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self.inner.connect_unix_socket(path, timeout, socket_options)
        return _CoalescingStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


FLUSH_BYTES = 64 * 1024


class _CoalescingStream(httpcore.AsyncNetworkStream):
    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._held: list[bytes] = []
        self._size = 0

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if buffer:
            self._held.append(buffer)
            self._size += len(buffer)
            if self._size >= FLUSH_BYTES:
                await self._flush(timeout)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        await self._flush(timeout)
        return await self._stream.read(max_bytes, timeout)

    async def _flush(self, timeout: float | None) -> None:  # noqa: ASYNC109
        if self._held:
            data = b"".join(self._held)
            self._held.clear()
            self._size = 0
            await self._stream.write(data, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        await self._flush(timeout)
        tls = await self._stream.start_tls(ssl_context, server_hostname, timeout)
        return _CoalescingStream(tls)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


def _client(
    verify: ssl.SSLContext,
    network_backend: httpcore.AsyncNetworkBackend | None,
    client_options: dict[str, Any],
) -> httpx.AsyncClient:
    # Room for an uneven spread of keys; beyond it requests queue in their client.
    max_connections, max_keepalive = 2 * CONNECTIONS_PER_CLIENT, CONNECTIONS_PER_CLIENT
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_keepalive)
    if network_backend is None and urllib.request.getproxies():
        # Dropbox calls through the proxy the environment names (HTTPS_PROXY, ...): httpx
        # honours it only for a client without a transport of its own.
        return httpx.AsyncClient(verify=verify, limits=limits, **client_options)
    network_backend = CoalescedWrites(network_backend or httpcore.AnyIOBackend())
    transport = transport_with(network_backend, verify, limits)
    return httpx.AsyncClient(transport=transport, **client_options)


def transport_with(
    network_backend: httpcore.AsyncNetworkBackend, verify: ssl.SSLContext, limits: httpx.Limits
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections `network_backend` opens.

    httpx has no option for it: the transport's pool is rebuilt with the backend. (A client
    with its own transport takes no proxy from the environment.)
    """
    transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=verify,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=network_backend,
    )
    return transport
