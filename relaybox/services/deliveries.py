"""Recovering deliveries: redeliver one or many, re-activate a paused subscription; send a
test notification through the outbox, like any other."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from relaybox.core.errors import InvalidInput, NotFound
from relaybox.core.notification import InstanceInfo, body_of_test_event
from relaybox.runtime import Runtime
from relaybox.services.instances import InstanceService
from relaybox.store import tables
from relaybox.store.db import transaction
from relaybox.store.outbox import Delivery, one_delivery

REDELIVERABLE = frozenset({"failed", "delivered"})


def _requeue_values(now: datetime) -> dict[str, object]:
    """A notification sent again keeps its id and body; its retry schedule starts over."""
    return {
        "status": "pending",
        "attempt_count": 0,
        "next_attempt_at": now,
        "lease_owner": None,
        "lease_until": None,
    }


async def _owned(runtime: Runtime, session: AsyncSession, org_id: int, instance_id: int) -> None:
    await InstanceService(runtime).get(session, org_id, instance_id)


async def redeliver_one(runtime: Runtime, org_id: int, instance_id: int, delivery_id: str) -> None:
    note = tables.Notification
    async with transaction(runtime.sessions) as session:
        await _owned(runtime, session, org_id, instance_id)
        result = await session.execute(
            update(note)
            .where(
                note.id == delivery_id, note.instance_id == instance_id, note.status != "pending"
            )
            .values(**_requeue_values(runtime.clock.now()))
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            exists = await session.scalar(
                select(note.pk).where(note.id == delivery_id, note.instance_id == instance_id)
            )
            if exists is None:
                raise NotFound(f"no delivery {delivery_id}")
    runtime.wakeups.delivery.set()


async def redeliver_many(
    runtime: Runtime, org_id: int, instance_id: int, *, since: datetime | None, status: str
) -> int:
    """Send again every notification of `status` created at or after `since`; returns how many."""
    note = tables.Notification
    async with transaction(runtime.sessions) as session:
        await _owned(runtime, session, org_id, instance_id)
        query = update(note).where(note.instance_id == instance_id, note.status == status)
        if since is not None:
            query = query.where(note.created_at >= since)
        result = await session.execute(query.values(**_requeue_values(runtime.clock.now())))
    runtime.wakeups.delivery.set()
    return int(result.rowcount)  # type: ignore[attr-defined]


async def set_subscription(runtime: Runtime, org_id: int, instance_id: int, active: bool) -> None:
    """Pause or resume deliveries; on resume the queued notifications drain in order."""
    async with transaction(runtime.sessions) as session:
        await _owned(runtime, session, org_id, instance_id)
        row = await session.get(tables.Instance, instance_id)
        if row is None:
            raise NotFound(f"no instance {instance_id}")
        if active and not row.subscription_active:
            note = tables.Notification
            backlog = await session.scalar(
                select(func.max(note.pk)).where(
                    note.instance_id == instance_id, note.status == "pending"
                )
            )
            row.drain_through_pk = backlog
            await session.execute(
                update(note)
                .where(note.instance_id == instance_id, note.status == "pending")
                .values(next_attempt_at=runtime.clock.now())
            )
        row.subscription_active = active
    runtime.wakeups.delivery.set()


@dataclass(frozen=True)
class TestEvent:
    """A test notification just queued, and what holds it back, if anything."""

    notification_id: str
    paused: bool  # deliveries are paused (or the instance disabled): it waits for them
    ahead: int  # earlier deliveries an ordered instance sends first


async def send_test(runtime: Runtime, org_id: int, instance_id: int) -> TestEvent:
    """Queue a test notification (core/notification.py) for the instance's callback URL.
    It goes out, signed, retried and recorded, exactly like a notification of events."""
    note = tables.Notification
    notification_id = str(uuid.uuid4())
    now = runtime.clock.now()
    async with transaction(runtime.sessions) as session:
        row = await InstanceService(runtime).get(session, org_id, instance_id)
        if not InstanceService(runtime).credentials(row).config.callback_url:
            raise InvalidInput(
                "this instance has no callback URL to send a test event to; set one first",
                field="event.notification.callback.url",
            )
        info = InstanceInfo(row.id, row.name, row.element_key, list(row.tags or []), row.account_id)
        body = body_of_test_event(notification_id=notification_id, instance=info, now=now)
        await session.execute(
            insert(note).values(
                id=notification_id,
                instance_id=row.id,
                org_id=row.org_id,
                body=body,
                event_count=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
        ahead = 0
        if row.ordered:
            counted = await session.scalar(
                select(func.count()).where(
                    note.instance_id == row.id, note.status == "pending", note.id != notification_id
                )
            )
            ahead = int(counted or 0)
        paused = not row.subscription_active or row.disabled
    runtime.wakeups.delivery.set()
    return TestEvent(notification_id, paused, ahead)


async def first_attempt(
    runtime: Runtime, instance_id: int, notification_id: str
) -> Delivery | None:
    """The notification once its first attempt is recorded (or it is no longer pending);
    None if it is gone. The delivery workers may run in another process, so the outbox
    itself is looked at, every tenth of a second: bound the wait with `asyncio.timeout`."""
    while True:
        async with transaction(runtime.sessions) as session:
            found = await one_delivery(session, instance_id, notification_id)
        if found is None or found[1] or found[0].status != "pending":
            return found
        await asyncio.sleep(0.1)
