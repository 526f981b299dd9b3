"""Builds the ASGI app: routers, health and metrics, and a lifespan that starts the workers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text
from starlette.types import ASGIApp, Receive, Scope, Send

from relaybox import __version__
from relaybox.api import (
    deliveries,
    elements,
    errors,
    events,
    instance_configuration,
    instances,
    receiver,
    reference,
)
from relaybox.api.limits import MAX_BODY, BodyLimit
from relaybox.api.throttle import FailureLimiter
from relaybox.config import Settings
from relaybox.core.clock import Clock
from relaybox.metrics import PENDING
from relaybox.pipeline.runner import Workers
from relaybox.runtime import Runtime
from relaybox.services.orgs import bootstrap
from relaybox.store.db import migrations_current
from relaybox.store.tables import Notification
from relaybox.web import live, manage
from relaybox.web import routes as console
from relaybox.web.live import LiveStreams

log = logging.getLogger(__name__)


class Relaybox(FastAPI):
    """The FastAPI app, with provider webhooks (`POST /elements/api-v2/events/{key}`)
    answered before its middleware and routing: api/receiver.py says why."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        element_key = receiver.element_key_of(scope)
        if element_key is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        runtime: Runtime = self.state.runtime
        failures: FailureLimiter = self.state.webhook_failures
        await receiver.receive_webhook(runtime, failures, element_key, scope, receive, send)


def create_app(
    settings: Settings,
    *,
    workers: bool = True,
    mounts: dict[str, ASGIApp] | None = None,
    on_ready: Any = None,
    on_stop: Any = None,
    clock: Clock | None = None,
) -> Relaybox:
    """The relaybox server. `mounts` adds sub-apps (the sandbox under `--sandbox`); `clock`
    replaces the system clock (a test moves time with it)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await Runtime.start(settings, clock=clock)
        app.state.runtime = runtime
        created = await bootstrap(runtime)
        if created is not None:
            print_bootstrap(created.user_secret, created.org_secret or "")
        pool = Workers(runtime) if workers else None
        if pool:
            pool.start()
        if on_ready is not None:
            await on_ready(app)
        try:
            yield
        finally:
            if on_stop is not None:
                await on_stop(app)
            if pool:
                await pool.stop()
            await runtime.close()

    app = Relaybox(
        title="relaybox",
        version=__version__,
        description="Self-hosted connector events, compatible with the Open Connectors API.",
        lifespan=lifespan,
        # /docs is served offline by api/reference.py; FastAPI's own pages use a CDN.
        docs_url=None,
        redoc_url=None,
    )
    # Webhooks whose signature matches no app secret, per client address (api/receiver.py).
    app.state.webhook_failures = FailureLimiter()
    app.state.live = LiveStreams()
    errors.install(app)
    # The receiver first: it takes every provider webhook, so it is matched first.
    # events before instances: `/instances/events` must not be read as an instance id.
    routers = (
        receiver.router,
        events.router,
        deliveries.router,
        instances.router,
        instance_configuration.router,
        instances.by_element,
        elements.router,
        console.router,
        live.router,
        manage.router,
    )
    for router in routers:
        app.include_router(router)
    reference.install(app)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> JSONResponse:
        runtime: Runtime = request.app.state.runtime
        try:
            async with runtime.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            current = await migrations_current(runtime.engine)
        except Exception:
            log.exception("readiness check failed")
            return JSONResponse({"status": "database unavailable"}, status_code=503)
        if not current:
            return JSONResponse({"status": "migrations pending"}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["health"])
    async def metrics(request: Request) -> Response:
        runtime: Runtime = request.app.state.runtime
        async with runtime.engine.connect() as connection:
            pending = await connection.scalar(
                select(func.count())
                .select_from(Notification)
                .where(Notification.status == "pending")
            )
        PENDING.set(pending or 0)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for path, sub in (mounts or {}).items():
        app.mount(path, sub)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY, exempt=tuple(mounts or ()))
    return app


def print_bootstrap(user_secret: str, org_secret: str) -> None:
    """Printed once, on the first start: the only time the generated secrets are shown."""
    print(
        "\nrelaybox: created the first organization. Keep these; they are not shown again.\n"
        f"  Authorization: User {user_secret}, Organization {org_secret}\n",
        flush=True,
    )
