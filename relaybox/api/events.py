"""The event log of an organization's instances (SPEC sections 1 and 9).

One entry per notification, addressed by the `message.eventId` its callback received:
the anchor platform's fields (`id`, `eventDate`, `status`, `providerData`,
`notifiedData`) and relaybox's own (`instanceId`, `notificationId`, `deliveryStatus`,
`eventCount`, `date`; one entry adds its `notification` with the attempts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request, Response

from relaybox.api.auth import Caller, Principal
from relaybox.api.deliveries import describe_delivery
from relaybox.api.deps import RowId, runtime_of, utc
from relaybox.api.instances import own_instance
from relaybox.api.models import (
    ANSWERS,
    AUTHENTICATED,
    PAGE_HEADERS,
    EventLogDetail,
    EventLogEntry,
    errors,
)
from relaybox.api.paging import PAGE_HEADER, NextPage, PageSize, decode_page, encode_page
from relaybox.core.clock import iso_or_none
from relaybox.core.errors import NotFound
from relaybox.core.event_log import event_status
from relaybox.core.notification import notified_parts
from relaybox.services.instances import InstanceService
from relaybox.store import event_log, tables
from relaybox.store.db import transaction

router = APIRouter(prefix="/elements/api-v2/instances", tags=["events"], responses=AUTHENTICATED)
PAGE: dict[str, Any] = {
    "response_model": list[EventLogEntry],
    **ANSWERS,
    "responses": {
        200: {"description": "Entries, newest first.", "headers": PAGE_HEADERS},
        **errors(400, 404, e400="Also when `nextPage` is not a token this server gave."),
    },
}
ENTRY: dict[str, Any] = {"response_model": EventLogDetail, **ANSWERS, "responses": errors(400, 404)}

EventId = Annotated[str, Path(min_length=1, max_length=64)]
"""`message.eventId` (a notification id), or an event-log id of earlier releases (a number)."""


def describe_entry(note: tables.Notification) -> dict[str, Any]:
    """One event-log entry: the anchor's fields, then relaybox's."""
    provider_data, notified_data = notified_parts(note.body)
    return {
        "id": note.id,
        "eventDate": iso_or_none(note.created_at),
        "status": event_status(note.status, note.attempt_count, note.lease_owner is not None),
        "providerData": provider_data,
        "notifiedData": notified_data,
        "instanceId": note.instance_id,
        "notificationId": note.id,
        "deliveryStatus": note.status,
        "eventCount": note.event_count,
        "date": iso_or_none(note.created_at),
    }


@dataclass
class EventQuery:
    """The filters and paging of an event listing (query parameters). `status` takes the
    event-log statuses and, as in earlier releases, the delivery statuses."""

    status: (
        Literal["RECEIVED", "DISPATCHED", "NOTIFIED", "FAILED", "pending", "delivered", "failed"]
        | None
    ) = None
    since: datetime | None = None
    page_size: int = PageSize
    next_page: str | None = NextPage


def _scope(principal: Principal, instance_id: int | None) -> event_log.Scope:
    if instance_id is None:
        instance_id = principal.instance_id
    return event_log.Scope(principal.org_id, instance_id)


async def _event_page(
    request: Request,
    response: Response,
    principal: Principal,
    instance_id: int | None,
    filters: EventQuery,
) -> list[dict[str, Any]]:
    since, before = utc(filters.since), decode_page(filters.next_page)
    service = InstanceService(runtime_of(request))
    async with transaction(service.runtime.sessions) as session:
        if instance_id is not None:
            await service.get(session, principal.org_id, instance_id)
        rows = await event_log.page(
            session,
            _scope(principal, instance_id),
            status=filters.status,
            since=since,
            before=before,
            limit=filters.page_size + 1,
        )
    page = rows[: filters.page_size]
    if len(rows) > filters.page_size:
        response.headers[PAGE_HEADER] = encode_page(page[-1].pk)
    return [describe_entry(note) for note in page]


async def _one_entry(
    request: Request, principal: Principal, instance_id: int | None, event_id: str
) -> dict[str, Any]:
    async with transaction(runtime_of(request).sessions) as session:
        # Another organization's entry, or (for an instance token) another instance's, is
        # answered exactly like one that does not exist.
        found = await event_log.find(session, _scope(principal, instance_id), event_id)
    if found is None:
        raise NotFound(f"no event {event_id}")
    note, attempts = found
    return {
        **describe_entry(note),
        "notification": {**describe_delivery(note, attempts), "body": note.body},
    }


Filters = Annotated[EventQuery, Depends()]


@router.get("/events", **PAGE)
async def organization_events(
    request: Request, principal: Caller, response: Response, filters: Filters
) -> list[dict[str, Any]]:
    """Event-log entries of every instance of the organization, newest first."""
    return await _event_page(request, response, principal, None, filters)


@router.get("/events/{event_id}", **ENTRY)
async def one_event(event_id: EventId, request: Request, principal: Caller) -> dict[str, Any]:
    """One entry, by `message.eventId`, with its notification and attempts."""
    return await _one_entry(request, principal, None, event_id)


@router.get("/{instance_id}/events", **PAGE)
async def instance_events(
    instance_id: RowId, request: Request, principal: Caller, response: Response, filters: Filters
) -> list[dict[str, Any]]:
    """The instance's event-log entries, newest first."""
    own_instance(principal, instance_id)
    return await _event_page(request, response, principal, instance_id, filters)


@router.get("/{instance_id}/events/{event_id}", **ENTRY)
async def instance_event(
    instance_id: RowId, event_id: EventId, request: Request, principal: Caller
) -> dict[str, Any]:
    """One entry of the instance, by `message.eventId`, with its notification and attempts."""
    own_instance(principal, instance_id)
    return await _one_entry(request, principal, instance_id, event_id)
