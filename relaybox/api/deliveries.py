"""Deliveries of an instance: their attempts, redelivery, and the subscription switch."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request, Response
from sqlalchemy import select

from relaybox.api.auth import Caller
from relaybox.api.deps import RowId, runtime_of, utc
from relaybox.api.instances import own_instance
from relaybox.api.models import (
    ANSWERS,
    AUTHENTICATED,
    PAGE_HEADERS,
    Delivery,
    Redelivered,
    Subscription,
    SubscriptionState,
    errors,
)
from relaybox.api.paging import PAGE_HEADER, NextPage, PageSize, decode_page, encode_page
from relaybox.core.clock import iso_or_none
from relaybox.services import deliveries as service
from relaybox.services.instances import InstanceService
from relaybox.store import tables
from relaybox.store.db import transaction
from relaybox.store.outbox import with_attempts

router = APIRouter(
    prefix="/elements/api-v2/instances", tags=["deliveries"], responses=AUTHENTICATED
)
DeliveryId = Annotated[str, Path(min_length=1, max_length=64, description="A notification's id.")]


def describe_attempt(attempt: tables.Attempt) -> dict[str, Any]:
    return {
        "date": iso_or_none(attempt.attempted_at),
        "statusCode": attempt.status_code,
        "latencyMs": attempt.latency_ms,
        "error": attempt.error,
        "responseBody": attempt.response_body,
    }


def describe_delivery(note: tables.Notification, attempts: list[tables.Attempt]) -> dict[str, Any]:
    return {
        "id": note.id,
        "instanceId": note.instance_id,
        "status": note.status,
        "eventCount": note.event_count,
        "createdDate": iso_or_none(note.created_at),
        "deliveredDate": iso_or_none(note.delivered_at),
        "nextAttemptDate": iso_or_none(note.next_attempt_at) if note.status == "pending" else None,
        "attempts": [describe_attempt(a) for a in attempts],
    }


@router.get(
    "/{instance_id}/deliveries",
    response_model=list[Delivery],
    **ANSWERS,
    responses={
        200: {"description": "Notifications, newest first.", "headers": PAGE_HEADERS},
        **errors(400, 404, e400="Also when `nextPage` is not a token this server gave."),
    },
)
async def deliveries(
    instance_id: RowId,
    request: Request,
    principal: Caller,
    response: Response,
    page_size: int = PageSize,
    next_page: str | None = NextPage,
) -> list[dict[str, Any]]:
    """Notifications sent or pending, newest first, with their attempts."""
    own_instance(principal, instance_id)
    before = decode_page(next_page)
    instances = InstanceService(runtime_of(request))
    async with transaction(instances.runtime.sessions) as session:
        await instances.get(session, principal.org_id, instance_id)
        query = select(tables.Notification).where(tables.Notification.instance_id == instance_id)
        if before is not None:
            query = query.where(tables.Notification.pk < before)
        found = await with_attempts(
            session, query.order_by(tables.Notification.pk.desc()).limit(page_size + 1)
        )
        page = found[:page_size]
        if len(found) > page_size:
            response.headers[PAGE_HEADER] = encode_page(page[-1][0].pk)
        return [describe_delivery(note, attempts) for note, attempts in page]


@router.post(
    "/{instance_id}/deliveries/redeliver",
    response_model=Redelivered,
    **ANSWERS,
    responses=errors(400, 404),
)
async def redeliver_many(
    instance_id: RowId,
    request: Request,
    principal: Caller,
    since: datetime | None = None,
    status: Literal["failed", "delivered"] = "failed",
) -> dict[str, Any]:
    """Bulk recovery: send again every `status` notification created since `since`."""
    own_instance(principal, instance_id)
    since = utc(since)
    count = await service.redeliver_many(
        runtime_of(request), principal.org_id, instance_id, since=since, status=status
    )
    return {"redelivered": count}


@router.post(
    "/{instance_id}/deliveries/{delivery_id}/redeliver",
    response_model=Redelivered,
    **ANSWERS,
    responses=errors(400, 404),
)
async def redeliver_one(
    instance_id: RowId, delivery_id: DeliveryId, request: Request, principal: Caller
) -> dict[str, Any]:
    """Send one notification again, with the same id and body."""
    own_instance(principal, instance_id)
    await service.redeliver_one(runtime_of(request), principal.org_id, instance_id, delivery_id)
    return {"redelivered": 1}


@router.put(
    "/{instance_id}/events/subscription",
    response_model=SubscriptionState,
    **ANSWERS,
    responses=errors(400, 404, 413),
)
async def subscription(
    instance_id: RowId, body: Subscription, request: Request, principal: Caller
) -> dict[str, Any]:
    """Re-activate (or pause) deliveries; queued notifications then drain in order."""
    own_instance(principal, instance_id)
    await service.set_subscription(runtime_of(request), principal.org_id, instance_id, body.active)
    return {"active": body.active}
