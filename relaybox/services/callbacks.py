"""Callback URL checks that need the network: DNS resolution against the SSRF guard."""

from __future__ import annotations

import asyncio
import socket

from relaybox.core.errors import InvalidCallbackURL
from relaybox.core.netguard import check_callback_url, check_resolved


async def resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise InvalidCallbackURL(f"callback URL host {host!r} does not resolve: {exc}") from exc
    return sorted({str(info[4][0]) for info in infos})


async def check_public(url: str, *, allow_private: bool) -> None:
    """Raise `InvalidCallbackURL` unless `url` is http(s) and, when required, public."""
    host, port = check_callback_url(url)
    if allow_private:
        return
    check_resolved(host, await resolve(host, port))
