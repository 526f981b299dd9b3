"""Callback URL checks that need the network: DNS resolution against the SSRF guard.

`check_public` is the configuration-time check. `GuardedBackend` is the connect-time one: the
callback clients open every connection through it, and it resolves the host, refuses
non-public addresses and connects to an address it checked, so a DNS answer that changes
between the check and the connection (rebinding) cannot redirect a delivery.

The request itself keeps the callback's host name, so the connection pool's key is (scheme,
host name, port): a connection is verified by TLS for one host name and carries only that
host's requests, even when several hosts share an address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import Iterable

import httpcore

from relaybox.core.errors import InvalidCallbackURL
from relaybox.core.netguard import check_resolved, wire_target


async def resolve(host: str, port: int) -> list[str]:
    """The addresses of `host`, in resolver order, no repeats; an IP literal is its own."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise InvalidCallbackURL(f"callback URL host {host!r} does not resolve: {exc}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def check_public(url: str, *, allow_private: bool) -> None:
    """Raise `InvalidCallbackURL` unless `url` can be sent to and, when required, is public."""
    host, port = wire_target(url)
    if allow_private:
        return
    check_resolved(host, await resolve(host, port))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connections for callback requests: to a checked address of the requested host only.

    `allow_private` skips the address check, not the resolution; `allow_loopback` lets
    loopback addresses through and no other non-public one (the sandbox's webhooks).
    Errors leave the addresses out (they end up in attempt records a tenant reads): a
    refused host raises `BlockedAddress`, an address that does not answer the next one in
    resolver order, and the last one `httpcore.ConnectError` naming the host and port.
    """

    def __init__(self, *, allow_private: bool, allow_loopback: bool = False) -> None:
        self.allow_private = allow_private
        self.allow_loopback = allow_loopback
        self._network = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve(host, port)
        if not self.allow_private:
            check_resolved(host, addresses, allow_loopback=self.allow_loopback)
        for number, address in enumerate(addresses, start=1):
            try:
                return await self._network.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                if number == len(addresses):
                    raise httpcore.ConnectError(
                        f"cannot connect to {host} port {port}: {_why(exc)}"
                    ) from exc
        raise InvalidCallbackURL(f"callback URL host {host!r} did not resolve to any address")

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


def _why(exc: BaseException) -> str:
    """The operating system's reason for a failed connection, without the address."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno:
            return os.strerror(cause.errno).lower()
        cause = cause.__cause__ or cause.__context__
    return "connection failed"
