"""Recovering deliveries: redeliver one or many, re-activate a paused subscription."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from relaybox.core.clock import utcnow
from relaybox.core.errors import NotFound
from relaybox.runtime import Runtime
from relaybox.services.instances import InstanceService
from relaybox.store import tables
from relaybox.store.db import transaction

REDELIVERABLE = frozenset({"failed", "delivered"})


def _requeue_values() -> dict[str, object]:
    """A notification sent again keeps its id and body; its retry schedule starts over."""
    return {
        "status": "pending",
        "attempt_count": 0,
        "next_attempt_at": utcnow(),
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
            .values(**_requeue_values())
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
        result = await session.execute(query.values(**_requeue_values()))
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
                .values(next_attempt_at=utcnow())
            )
        row.subscription_active = active
    runtime.wakeups.delivery.set()
