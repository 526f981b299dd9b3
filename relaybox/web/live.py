"""Live pages: a Server-Sent Events stream per open instance page (static/live.js).

Every second the stream asks the database for a summary of what the page shows
(`store.events.instance_state`: newest event and attempt, delivery statuses, the
instance's switches); when it changes, the server renders the page's live region again
and sends it as one `update` event, which the page swaps in. Asking the database rather
than listening in-process means a page sees changes made by any worker process.

Streams are the signed-in user's, scoped like every page (a missing or foreign instance
is a 404), at most `MAX_STREAMS_PER_SESSION` at once per session, and end as soon as the
server begins to shut down (`LiveStreams.stop`, one of `relaybox serve`'s shutdown hooks),
so SIGTERM never waits for them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from relaybox.api.deps import RowId
from relaybox.core.clock import utcnow
from relaybox.core.errors import NotFound
from relaybox.store import console_sessions
from relaybox.store.db import transaction
from relaybox.store.events import instance_state
from relaybox.web.pages import Console, ConsoleRoute, Signed, message, templates
from relaybox.web.views import instance_view

EVERY = 1.0  # seconds between two looks at the database, per stream
MAX_STREAMS_PER_SESSION = 8

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=ConsoleRoute)


class LiveStreams:
    """The process's open streams: counted per session, all ended by `stop`."""

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self.open: Counter[str] = Counter()

    def stop(self) -> None:
        self.stopping.set()

    async def pause(self) -> bool:
        """Wait `EVERY` seconds; False once the server is shutting down."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), EVERY)
        return not self.stopping.is_set()


def live_streams(request: Request) -> LiveStreams:
    streams: LiveStreams = request.app.state.live
    return streams


def sse(event: str, html: str) -> bytes:
    """One Server-Sent Event; each line of `html` becomes a `data:` line."""
    lines = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
    return f"event: {event}\n{lines}\n".encode()


async def render_live(console: Console, instance_id: int, params: Mapping[str, str]) -> str:
    view = await instance_view(console.runtime, console.org_id, instance_id, params=params)
    context: dict[str, Any] = {"console": console, **view}
    return templates.env.get_template("instance_live.html").render(context)


@router.get("/instances/{instance_id}/live")
async def instance_live(instance_id: RowId, request: Request, console: Signed) -> Response:
    streams = live_streams(request)
    sid = console.session.sid
    if streams.open[sid] >= MAX_STREAMS_PER_SESSION:
        text = "Too many live pages are open in this session; close some and reload."
        return message(request, "Too many live pages", text, status=429, console=console)
    params = dict(request.query_params)
    await render_live(console, instance_id, params)  # NotFound (404) before streaming

    async def events() -> AsyncIterator[bytes]:
        streams.open[sid] += 1
        try:
            last = await _state(console, instance_id)
            yield b": live\n\n"  # opens the stream at once
            while await streams.pause():
                state = await _state(console, instance_id)
                if state is None:
                    yield sse("gone", "")
                    return
                if state != last:
                    last = state
                    try:
                        html = await render_live(console, instance_id, params)
                    except NotFound:
                        yield sse("gone", "")
                        return
                    yield sse("update", html)
        finally:
            streams.open[sid] -= 1
            if streams.open[sid] <= 0:
                del streams.open[sid]

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


async def _state(console: Console, instance_id: int) -> tuple[Any, ...] | None:
    """The page's summary; None once the instance is gone or the session has ended
    (signed out, the user revoked or a secret rotated: store/console_sessions.py)."""
    async with transaction(console.runtime.sessions) as session:
        if await console_sessions.user_of(session, console.session.sid, now=utcnow()) is None:
            return None
        return await instance_state(session, instance_id)
