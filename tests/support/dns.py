"""Pretend DNS for callback hosts: test names that resolve where the test says.

Both the configuration-time check and the connect-time SSRF guard resolve through
`relaybox.services.callbacks.resolve`, so overriding it moves a host for both.
"""

from __future__ import annotations

from collections.abc import Iterable

import idna
import pytest

from relaybox.core.netguard import check_resolved as real_check
from relaybox.services import callbacks


def _name(host: str) -> str:
    """A host as it goes on the wire (an internationalized name IDNA-encoded)."""
    return host if host.isascii() else idna.encode(host).decode("ascii")


def fake_dns(
    monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]], *, public: bool = False
) -> dict[str, list[str]]:
    """Resolve each host of `answers` to its addresses (other hosts as before), and return
    the dict: change it to make a host resolve elsewhere (DNS rebinding).

    `public`: the SSRF guard takes these hosts' addresses for public ones (so loopback test
    servers stand in for tenants' endpoints) while it still refuses every other host's.
    """
    real_resolve = callbacks.resolve

    async def resolve(host: str, port: int) -> list[str]:
        for name, addresses in answers.items():
            if _name(name) == _name(host):
                return addresses
        return await real_resolve(host, port)

    def check_resolved(
        host: str, addresses: Iterable[str], *, allow_loopback: bool = False
    ) -> None:
        if not any(_name(name) == _name(host) for name in answers):
            real_check(host, addresses, allow_loopback=allow_loopback)

    monkeypatch.setattr(callbacks, "resolve", resolve)
    if public:
        monkeypatch.setattr(callbacks, "check_resolved", check_resolved)
    return answers
