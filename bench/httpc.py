"""A small HTTP/1.1 keep-alive client for the load driver.

httpx costs a few hundred microseconds of CPU per request; the driver shares two cores with
everything it measures, so it uses plain asyncio streams instead: a fixed pool of
keep-alive connections (the pool size is the concurrency bound), Content-Length or chunked
answers. Only for the loopback servers of the benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(
        self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """(status, body). Reconnects once if a kept-alive connection was closed meanwhile."""
        for attempt in (1, 2):
            fresh = self.writer is None
            if fresh:
                await self._open()
            try:
                return await self._exchange(method, target, body, headers or {})
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if fresh or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(
        self, method: str, target: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        head = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        head.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        await self.writer.drain()
        status_line = await self.reader.readuntil(b"\r\n")
        if not status_line:
            raise ConnectionError("closed")
        status = int(status_line.split(b" ", 2)[1])
        length, chunked, close = -1, False, False
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                data = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(data[:-2])
            content = b"".join(parts)
        elif length >= 0:
            content = await self.reader.readexactly(length)
        else:
            content = await self.reader.read()
            close = True
        if close:
            self.close()
        return status, content


class Pool:
    """At most `size` connections to one server; `request` waits for a free one."""

    def __init__(self, base_url: str, size: int) -> None:
        parts = urlsplit(base_url)
        assert parts.hostname is not None and parts.port is not None
        self.free: asyncio.Queue[Connection] = asyncio.Queue()
        self.all = [Connection(parts.hostname, parts.port) for _ in range(size)]
        for connection in self.all:
            self.free.put_nowait(connection)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        connection = await self.free.get()
        try:
            yield connection
        except BaseException:
            connection.close()
            raise
        finally:
            self.free.put_nowait(connection)

    async def request(
        self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        async with self.connection() as connection:
            return await connection.request(method, target, body, headers)

    def close(self) -> None:
        for connection in self.all:
            connection.close()
