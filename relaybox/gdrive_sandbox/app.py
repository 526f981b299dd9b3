"""The Google Drive sandbox as an ASGI app.

Standalone, the lifespan starts and stops background work (push notifications). Mounted
inside another app (``relaybox sandbox`` and ``relaybox serve --sandbox`` mount it under
``/gdrive`` beside the Dropbox sandbox), the parent does not run this app's lifespan:
pushes then start on first use on the running loop, and the parent should
``await app.state.sandbox.aclose()`` when it shuts down. Self-links (the consent form, the
files page, channels' ``resourceUri``) are built from ``scope["root_path"]``.

Who may reach it (Host names, a control token) is the embedder's business: relaybox wraps
it in the same access middleware as the Dropbox sandbox (``relaybox/sandbox_serving.py``).
"""

import pathlib
import time
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from relaybox.gdrive_sandbox import routes_control, routes_drive, routes_oauth, ui
from relaybox.gdrive_sandbox.state import DriveSandbox
from relaybox.sandbox_kit import pages
from relaybox.sandbox_kit.app import sandbox_app

TEMPLATES = pathlib.Path(__file__).parent / "templates"


def create_app(
    push_delay: float = 0.2,
    state_file: pathlib.Path | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """A new sandbox; its :class:`DriveSandbox` is ``app.state.sandbox``."""
    sandbox = DriveSandbox(push_delay=push_delay, state_file=state_file, clock=clock)
    templates = pages.templates(TEMPLATES)
    route_list: list[BaseRoute] = [
        *routes_drive.routes(sandbox),
        *routes_oauth.routes(sandbox, templates),
        *routes_control.routes(sandbox),
        *ui.routes(sandbox, templates),
    ]
    return sandbox_app(sandbox, route_list)
