"""CoalescedWrites: a request's head and body leave in one write, before its answer is read."""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

import httpcore

from relaybox.httpclients import FLUSH_BYTES, CoalescedWrites


class Recorded(httpcore.AsyncNetworkStream):
    def __init__(self, calls: list[tuple[str, bytes]]) -> None:
        self.calls = calls

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.calls.append(("write", buffer))

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.calls.append(("read", b""))
        return b"HTTP/1.1 200 OK\r\n"

    async def aclose(self) -> None:
        self.calls.append(("close", b""))

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.calls.append(("tls", b""))
        return self

    def get_extra_info(self, info: str) -> Any:
        return f"info:{info}"


class Network(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return Recorded(self.calls)


async def test_head_and_body_go_out_together_when_the_answer_is_read() -> None:
    network = Network()
    stream = await CoalescedWrites(network).connect_tcp("example.com", 443)
    await stream.write(b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n")
    await stream.write(b"{}")
    await stream.write(b"")
    assert network.calls == []
    assert await stream.read(4096) == b"HTTP/1.1 200 OK\r\n"
    assert network.calls == [
        ("write", b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"),
        ("read", b""),
    ]
    assert stream.get_extra_info("is_readable") == "info:is_readable"


async def test_a_large_body_is_not_held_whole() -> None:
    network = Network()
    stream = await CoalescedWrites(network).connect_tcp("example.com", 443)
    await stream.write(b"head")
    await stream.write(b"x" * FLUSH_BYTES)
    assert network.calls == [("write", b"head" + b"x" * FLUSH_BYTES)]


async def test_what_is_held_goes_out_before_tls_starts() -> None:
    network = Network()
    stream = await CoalescedWrites(network).connect_tcp("example.com", 443)
    await stream.write(b"CONNECT example.com:443 HTTP/1.1\r\n\r\n")
    tls = await stream.start_tls(ssl.create_default_context(), "example.com")
    await tls.write(b"GET / HTTP/1.1\r\n\r\n")
    await tls.read(10)
    await tls.aclose()
    assert [name for name, _ in network.calls] == ["write", "tls", "write", "read", "close"]
