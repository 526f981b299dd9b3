"""Callback URL checks that need the network: DNS resolution against the SSRF guard.

`check_public` is the configuration-time check. `targets` is the connect-time one: it resolves
the host, refuses non-public addresses, and returns a request aimed at the very address it
checked (Host header and TLS SNI keep the original name), so a DNS answer that changes
between the check and the connection (rebinding) cannot redirect a delivery.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from relaybox.core.errors import InvalidCallbackURL
from relaybox.core.netguard import check_callback_url, check_resolved


async def resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise InvalidCallbackURL(f"callback URL host {host!r} does not resolve: {exc}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))  # resolver order, no repeats


async def check_public(url: str, *, allow_private: bool) -> None:
    """Raise `InvalidCallbackURL` unless `url` is http(s) and, when required, public."""
    host, port = check_callback_url(url)
    if allow_private:
        return
    check_resolved(host, await resolve(host, port))


@dataclass(frozen=True)
class Pinned:
    """Where to send a callback request, and what to tell the server it is for."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, str] = field(default_factory=dict)


async def targets(url: str, *, allow_private: bool) -> list[Pinned]:
    """Where to connect for `url`: every resolved address, each checked, in resolver order."""
    host, port = check_callback_url(url)
    if allow_private:
        return [Pinned(url)]
    addresses = await resolve(host, port)
    check_resolved(host, addresses)
    parts = urlsplit(url)
    default_port = 443 if parts.scheme == "https" else 80
    shown_host = f"[{host}]" if ":" in host else host
    host_header = shown_host if port == default_port else f"{shown_host}:{port}"
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    pinned = []
    for address in addresses:
        ip = ipaddress.ip_address(address)
        literal = f"[{ip}]" if ip.version == 6 else str(ip)
        pinned.append(
            Pinned(
                parts._replace(netloc=f"{literal}:{port}").geturl(),
                {"Host": host_header},
                extensions,
            )
        )
    return pinned
