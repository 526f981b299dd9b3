"""uvicorn's server, told when a shutdown begins, so that requests held open end at once.

uvicorn answers SIGTERM by closing idle keep-alive connections and then waiting for the
requests in flight; only after they end does the app's lifespan shutdown run. A request
that waits on purpose (the sandbox's `files/list_folder/longpoll`, up to 480 s) would hold
the process that long, so `on_shutdown` callables run first, as the shutdown begins, and
end those waits; `timeout_graceful_shutdown` bounds whatever else is still running.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

GRACE_SECONDS = 5.0
"""How long requests still in flight may finish after SIGTERM before they are cancelled."""


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_shutdown: Sequence[Callable[[], None]]) -> None:
        super().__init__(config)
        self.on_shutdown = tuple(on_shutdown)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for hook in self.on_shutdown:
            hook()
        await super().shutdown(sockets)


def run(app: Any, *, on_shutdown: Sequence[Callable[[], None]] = (), **options: Any) -> None:
    """`uvicorn.run(app, **options)` for one process, with `on_shutdown` hooks."""
    options.setdefault("timeout_graceful_shutdown", GRACE_SECONDS)
    server = Server(uvicorn.Config(app, **options), on_shutdown)
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)  # as uvicorn.run: the port was taken, say
