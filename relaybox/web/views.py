"""What the console's pages show: the data behind them, read through the API's own helpers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from relaybox.api.deliveries import describe_delivery
from relaybox.api.errors import ApiError
from relaybox.api.paging import decode_page, encode_page
from relaybox.core.clock import iso_or_none
from relaybox.core.errors import InvalidInput
from relaybox.core.instance_config import parse_config
from relaybox.runtime import Runtime
from relaybox.services.instances import MAX_NAME, InstanceService
from relaybox.store import tables
from relaybox.store.db import transaction
from relaybox.store.outbox import with_attempts

EVENTS_PAGE = 20
DELIVERIES_PAGE = 10
MAX_FIELD = 1000
VENDOR_TYPES = ("webhooks", "polling", "longpoll")


def describe_event(event: tables.Event, note: tables.Notification) -> dict[str, Any]:
    """One standardized event as the console lists it, with its notification's delivery
    status (the API's event log lists notifications: api/events.py)."""
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


def shown(service: InstanceService, row: tables.Instance) -> dict[str, Any]:
    """The instance as the API describes it (secrets masked), without its token."""
    answer = service.describe(row)
    answer.pop("token", None)
    return answer


async def instance_list(runtime: Runtime, org_id: int) -> list[dict[str, Any]]:
    """The organization's instances, each with its pending and failed delivery counts."""
    service = InstanceService(runtime)
    note = tables.Notification
    query = (
        select(note.instance_id, note.status, func.count())
        .where(note.org_id == org_id, note.status.in_(("pending", "failed")))
        .group_by(note.instance_id, note.status)
    )
    counts: dict[int, dict[str, int]] = {}
    async with transaction(runtime.sessions) as session:
        for instance_id, status, count in (await session.execute(query)).all():
            counts.setdefault(instance_id, {})[status] = count
        rows = [shown(service, row) for row in await service.all(session, org_id)]
    for row in rows:
        found = counts.get(row["id"], {})
        row["pendingCount"], row["failedCount"] = found.get("pending", 0), found.get("failed", 0)
    return rows


def create_body(values: dict[str, str], redirect_uri: str) -> dict[str, Any]:
    """The `POST /instances` body the connect form describes (without the code)."""
    for key, value in values.items():
        if len(value) > MAX_FIELD:
            raise InvalidInput(f"{key} is longer than {MAX_FIELD} characters", field=key)
    configuration: dict[str, Any] = {
        "authentication.type": "oauth2",
        "oauth.api.key": values.get("app_key", "").strip(),
        "oauth.api.secret": values.get("app_secret", "").strip(),
        "oauth.callback.url": redirect_uri,
        "event.notification.enabled": values.get("events") == "on",
        "event.vendor.type": values.get("vendor_type") or "webhooks",
    }
    optional = {
        "callback_url": "event.notification.callback.url",
        "signature_key": "event.notification.signature.key",
        "refresh_interval": "event.poller.refresh_interval",
    }
    for field, key in optional.items():
        if values.get(field, "").strip():
            configuration[key] = values[field].strip()
    tags = [tag.strip() for tag in values.get("tags", "").split(",") if tag.strip()]
    name = values.get("name", "").strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"a name of 1 to {MAX_NAME} characters is required", field="name")
    parse_config(configuration)  # the same checks the create makes, before leaving for Dropbox
    return {
        "element": {"key": "dropbox"},
        "configuration": configuration,
        "tags": tags,
        "name": name,
    }


def page_token(value: str | None) -> int | None:
    """The id a page continues below; a token that is not ours shows the first page."""
    try:
        return decode_page(value)
    except ApiError:
        return None


async def instance_view(
    runtime: Runtime, org_id: int, instance_id: int, *, events: str | None, deliveries: str | None
) -> dict[str, Any]:
    """One instance (NotFound when not the organization's), a page of its latest events
    and one of its deliveries with their attempts, newest first."""
    service = InstanceService(runtime)
    events_before, deliveries_before = page_token(events), page_token(deliveries)
    event_query = (
        select(tables.Event, tables.Notification)
        .join(tables.Notification, tables.Notification.pk == tables.Event.notification_pk)
        .where(tables.Event.instance_id == instance_id)
    )
    if events_before is not None:
        event_query = event_query.where(tables.Event.id < events_before)
    note_query = select(tables.Notification).where(tables.Notification.instance_id == instance_id)
    if deliveries_before is not None:
        note_query = note_query.where(tables.Notification.pk < deliveries_before)
    async with transaction(runtime.sessions) as session:
        row = await service.get(session, org_id, instance_id)
        instance = shown(service, row)
        subscription_active = row.subscription_active
        found = (
            await session.execute(
                event_query.order_by(tables.Event.id.desc()).limit(EVENTS_PAGE + 1)
            )
        ).all()
        notes = await with_attempts(
            session, note_query.order_by(tables.Notification.pk.desc()).limit(DELIVERIES_PAGE + 1)
        )
        delivery_rows = [describe_delivery(n, attempts) for n, attempts in notes[:DELIVERIES_PAGE]]
    return {
        "instance": instance,
        "subscription_active": subscription_active,
        "events": [describe_event(event, note) for event, note in found[:EVENTS_PAGE]],
        "deliveries": delivery_rows,
        "older_events": (
            encode_page(found[EVENTS_PAGE - 1][0].id) if len(found) > EVENTS_PAGE else None
        ),
        "older_deliveries": (
            encode_page(notes[DELIVERIES_PAGE - 1][0].pk) if len(notes) > DELIVERIES_PAGE else None
        ),
        "paged": events_before is not None or deliveries_before is not None,
    }
