"""A sandbox as an ASGI app: its routes, ``/`` leading to the files page, a lifespan that
starts and stops its background work, the sandbox itself at ``app.state.sandbox``.

Mounted inside another app, the parent does not run this app's lifespan: background work
then starts on first use on the running loop, and the parent should ``await
app.state.sandbox.aclose()`` when it shuts down.
"""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from relaybox.sandbox_kit.pages import UI


class Lifecycle(Protocol):
    def start(self) -> None: ...

    async def aclose(self) -> None: ...


def sandbox_app(
    sandbox: Lifecycle, routes: Sequence[BaseRoute], middleware: Sequence[Middleware] = ()
) -> Starlette:
    async def home(request: Request) -> Response:
        return RedirectResponse(f"{request.scope.get('root_path', '')}{UI}", 302)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sandbox.start()
        try:
            yield
        finally:
            await sandbox.aclose()

    app = Starlette(
        routes=[Route("/", home, methods=["GET"]), *routes],
        lifespan=lifespan,
        middleware=list(middleware),
    )
    app.state.sandbox = sandbox
    return app
