"""`/ui/overview` (the console's home after sign-in) and sending a test event.

A test event is a notification like any other (core/notification.py marks it as a test):
queued in the outbox, sent signed by the delivery workers, retried and recorded with its
attempts. The console waits a little for its first attempt so it can say how it went,
and never claims more than the outbox shows.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from relaybox.api.deps import RowId
from relaybox.services import deliveries
from relaybox.store import tables
from relaybox.store.outbox import Delivery
from relaybox.web.overview import overview as overview_of
from relaybox.web.pages import ConsoleRoute, Signed, console_page, flash_to
from relaybox.web.routes import instance_action
from relaybox.web.views import in_plain_words

WAIT_BEYOND_TIMEOUT = 5.0  # seconds the console waits for a first attempt, past its timeout

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=ConsoleRoute)


@router.get("/overview")
async def overview(request: Request, console: Signed) -> Response:
    context = await overview_of(console.runtime, console.org_id)
    return console_page(request, console, "overview.html", context)


@router.post("/instances/{instance_id}/test-event")
async def test_event(instance_id: RowId, request: Request, console: Signed) -> Response:
    runtime = console.runtime

    async def act(_: dict[str, str]) -> Response:
        queued = await deliveries.send_test(runtime, console.org_id, instance_id)
        page = f"/ui/instances/{instance_id}/deliveries/{quote(queued.notification_id)}"
        if queued.paused:
            said = (
                "The test event is queued, but deliveries to this instance are paused: "
                "it is sent once they are resumed."
            )
            return flash_to(request, console, page, said)
        found: Delivery | None = None
        try:
            async with asyncio.timeout(runtime.settings.delivery_timeout + WAIT_BEYOND_TIMEOUT):
                found = await deliveries.first_attempt(runtime, instance_id, queued.notification_id)
        except TimeoutError:
            found = None
        said = outcome(found, queued, runtime.settings.delivery_timeout)
        return flash_to(request, console, page, said)

    return await instance_action(request, console, instance_id, act)


def outcome(found: Delivery | None, queued: deliveries.TestEvent, timeout: float) -> str:
    """What happened to a test event so far, as the outbox records it."""
    if found is None or not found[1]:
        ahead = (
            f" {queued.ahead} earlier deliveries go first (this instance delivers in order)."
            if queued.ahead
            else ""
        )
        return f"The test event is queued but was not sent yet.{ahead} This page shows how it goes."
    note, attempts = found
    first = attempts[0]
    if note.status == "delivered" or (
        first.status_code is not None and 200 <= first.status_code < 300
    ):
        return f"The test event was delivered: the callback answered {answered(first)}."
    problem = in_plain_words(first.status_code, first.error, timeout) or "It failed."
    later = (
        "It is not retried: it used up its retries."
        if note.status == "failed"
        else "It will be tried again, like any delivery."
    )
    return f"The test event was not delivered. {problem} {later}"


def answered(attempt: tables.Attempt) -> str:
    """An attempt's status code with its reason phrase: `200 OK`."""
    try:
        return f"{attempt.status_code} {HTTPStatus(attempt.status_code or 0).phrase}"
    except ValueError:
        return str(attempt.status_code)
