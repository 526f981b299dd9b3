"""The sandbox as an ASGI app.

Standalone (``relaybox sandbox``), the lifespan starts and stops background
work. Mounted inside another Starlette/FastAPI app (``relaybox serve
--sandbox`` mounts it at ``/sandbox``), the parent does not run this app's
lifespan: background tasks then start on first use on the running loop, and
the parent should ``await app.state.sandbox.aclose()`` when it shuts down.
Self-links are built from ``scope["root_path"]``, so either way works.

``access`` says which Host names it answers for and whether its control API
needs a token (``access.py``); without one (tests, embedding) every Host is
served. ``relaybox sandbox`` and ``relaybox serve --sandbox`` always give one.
"""

import pathlib

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from relaybox.sandbox import routes_api, routes_control, routes_oauth, ui
from relaybox.sandbox.access import Access, AccessPolicy
from relaybox.sandbox.state import Sandbox
from relaybox.sandbox_kit import pages
from relaybox.sandbox_kit.app import sandbox_app

TEMPLATES = pathlib.Path(__file__).parent / "templates"


def create_app(
    webhook_delay: float = 0.2,
    state_file: pathlib.Path | None = None,
    access: AccessPolicy | None = None,
) -> Starlette:
    """A new sandbox; its :class:`Sandbox` is ``app.state.sandbox``."""
    sandbox = Sandbox(webhook_delay=webhook_delay, state_file=state_file)
    templates = pages.templates(TEMPLATES)
    route_list: list[BaseRoute] = [
        *routes_api.routes(sandbox),
        *routes_oauth.routes(sandbox, templates),
        *routes_control.routes(sandbox),
        *ui.routes(sandbox, templates),
    ]
    middleware = [Middleware(Access, policy=access)] if access is not None else []
    return sandbox_app(sandbox, route_list, middleware)
