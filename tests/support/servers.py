"""Real HTTP servers for tests: uvicorn on a free loopback port, in the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, port: int | None = None, **config: Any) -> AsyncIterator[str]:
    """Serve `app` until the block ends; yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **config
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("server stopped before it started")
            await asyncio.sleep(0.02)
        scheme = "https" if config.get("ssl_certfile") else "http"
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class CallbackReceiver:
    """A user's callback endpoint: records every POST and answers with a scripted status."""

    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    answer_body: bytes = b""
    delay: float = 0.0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: int = 0
    max_in_flight: int = 0
    answered: list[tuple[str, int]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def endpoint(request: Request) -> Response:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                item = Received(dict(request.headers), await request.body())
                self.received.append(item)
                if self.delay:
                    await asyncio.sleep(self.delay)
                status = self.statuses.pop(0) if self.statuses else 200
                self.answered.append((item.headers.get("elements-webhook-id", ""), status))
            finally:
                self.in_flight -= 1
            self.arrived.set()
            return Response(self.answer_body, status_code=status, headers=self.headers)

        return Starlette(routes=[Route("/events", endpoint, methods=["POST"])])

    def events(self) -> list[dict[str, Any]]:
        """Every standardized event received, in arrival order (duplicates included)."""
        out: list[dict[str, Any]] = []
        for item in self.received:
            out.extend(item.json()["message"]["events"])
        return out

    async def wait_for(self, predicate: Any, timeout: float = 20.0) -> None:
        async def loop() -> None:
            while not predicate(self):
                self.arrived.clear()
                if predicate(self):
                    return
                await self.arrived.wait()

        await asyncio.wait_for(loop(), timeout)


@dataclass
class RequestLog:
    """Wraps an ASGI app and records (monotonic time, method, path, status) of each request."""

    app: ASGIApp
    calls: list[tuple[float, str, str, int]] = field(default_factory=list)
    spans: list[tuple[str, float, float]] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def recording_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        started = asyncio.get_running_loop().time()
        await self.app(scope, receive, recording_send)
        self.calls.append((started, scope["method"], scope["path"], status))
        self.spans.append((scope["path"], started, asyncio.get_running_loop().time()))

    def of(self, path: str) -> list[tuple[float, int]]:
        return [(at, status) for at, _, p, status in self.calls if p == path]


async def eventually(check: Any, timeout: float = 15, interval: float = 0.1) -> Any:
    """Await `check()` until it returns something truthy (within `timeout`); return that."""

    async def loop() -> Any:
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(interval)

    return await asyncio.wait_for(loop(), timeout)
