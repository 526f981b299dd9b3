"""The event log of an organization's instances (SPEC section 1)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import Select, select

from relaybox.api.auth import Caller, Principal
from relaybox.api.deliveries import describe_delivery
from relaybox.api.deps import RowId, runtime_of, utc
from relaybox.api.instances import own_instance
from relaybox.api.paging import PAGE_HEADER, NextPage, PageSize, decode_page, encode_page
from relaybox.core.clock import iso_or_none
from relaybox.core.errors import NotFound
from relaybox.services.instances import InstanceService
from relaybox.store import tables
from relaybox.store.db import transaction
from relaybox.store.outbox import with_attempts

router = APIRouter(prefix="/elements/api-v2/instances", tags=["events"])


def describe_event(event: tables.Event, note: tables.Notification) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "id": event.id,
        "instanceId": event.instance_id,
        "eventType": event.event_type,
        "objectType": event.object_type,
        "objectId": event.object_id,
        "path": event.path,
        "date": iso_or_none(event.occurred_at),
        "notificationId": note.id,
        "status": note.status,
    }
    if event.new_path is not None:
        answer["newPath"] = event.new_path
    return answer


@dataclass
class EventQuery:
    """The filters and paging of an event listing (query parameters)."""

    status: Literal["pending", "delivered", "failed"] | None = None
    since: datetime | None = None
    page_size: int = PageSize
    next_page: str | None = NextPage


async def _event_page(
    request: Request,
    response: Response,
    principal: Principal,
    instance_id: int | None,
    filters: EventQuery,
) -> list[dict[str, Any]]:
    status, since = filters.status, utc(filters.since, "since")
    page_size, before = filters.page_size, decode_page(filters.next_page)
    query: Select[tables.Event, tables.Notification] = (
        select(tables.Event, tables.Notification)
        .join(tables.Notification, tables.Notification.pk == tables.Event.notification_pk)
        .where(tables.Event.org_id == principal.org_id)
    )
    if instance_id is not None:
        query = query.where(tables.Event.instance_id == instance_id)
    elif principal.instance_id is not None:
        query = query.where(tables.Event.instance_id == principal.instance_id)
    if status is not None:
        query = query.where(tables.Notification.status == status)
    if since is not None:
        query = query.where(tables.Event.occurred_at >= since)
    if before is not None:
        query = query.where(tables.Event.id < before)
    query = query.order_by(tables.Event.id.desc()).limit(page_size + 1)
    service = InstanceService(runtime_of(request))
    async with transaction(service.runtime.sessions) as session:
        if instance_id is not None:
            await service.get(session, principal.org_id, instance_id)
        rows = (await session.execute(query)).all()
    page = rows[:page_size]
    if len(rows) > page_size:
        response.headers[PAGE_HEADER] = encode_page(page[-1][0].id)
    return [describe_event(event, note) for event, note in page]


Filters = Annotated[EventQuery, Depends()]


@router.get("/events")
async def organization_events(
    request: Request, principal: Caller, response: Response, filters: Filters
) -> list[dict[str, Any]]:
    """Events of every instance of the organization, newest first."""
    return await _event_page(request, response, principal, None, filters)


@router.get("/events/{event_id}")
async def one_event(event_id: RowId, request: Request, principal: Caller) -> dict[str, Any]:
    """One event with the notification that carries it and its attempts."""
    async with transaction(runtime_of(request).sessions) as session:
        event = await session.get(tables.Event, event_id)
        # Another organization's event, or (for an instance token) another instance's, is
        # answered exactly like one that does not exist.
        if (
            event is None
            or event.org_id != principal.org_id
            or principal.instance_id not in (None, event.instance_id)
        ):
            raise NotFound(f"no event {event_id}")
        ((note, attempts),) = await with_attempts(
            session,
            select(tables.Notification).where(tables.Notification.pk == event.notification_pk),
        )
        answer = describe_event(event, note)
        answer["notification"] = {**describe_delivery(note, attempts), "body": note.body}
        return answer


@router.get("/{instance_id}/events")
async def instance_events(
    instance_id: RowId, request: Request, principal: Caller, response: Response, filters: Filters
) -> list[dict[str, Any]]:
    """The instance's events, newest first, each with its delivery status."""
    own_instance(principal, instance_id)
    return await _event_page(request, response, principal, instance_id, filters)
