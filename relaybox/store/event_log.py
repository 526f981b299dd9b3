"""The event log's queries: one entry per notification (SPEC section 9, core/event_log.py).

An entry is addressed by its notification's id, the `message.eventId` its callback
received. Ids of the per-object `events` rows (the event log's ids before this release,
plain numbers) still find the entry of the notification that carried them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from relaybox.core.event_log import DeliveryStatus, EventStatus
from relaybox.store import tables
from relaybox.store.outbox import Delivery, with_attempts

MAX_EVENT_ID = 2**63 - 1


@dataclass(frozen=True)
class Scope:
    """Whose entries: an organization's, or one instance's of it."""

    org_id: int
    instance_id: int | None = None


def _in(scope: Scope) -> ColumnElement[bool]:
    note = tables.Notification
    if scope.instance_id is None:
        return note.org_id == scope.org_id
    return and_(note.org_id == scope.org_id, note.instance_id == scope.instance_id)


def with_status(status: str) -> ColumnElement[bool]:
    """Entries in an event-log status (core/event_log.py's table) or a delivery status."""
    note = tables.Notification
    pending = note.status == DeliveryStatus.PENDING
    if status == EventStatus.RECEIVED:
        return and_(pending, note.attempt_count == 0, note.lease_owner.is_(None))
    if status == EventStatus.DISPATCHED:
        return and_(pending, or_(note.attempt_count > 0, note.lease_owner.is_not(None)))
    if status == EventStatus.NOTIFIED:
        return note.status == DeliveryStatus.DELIVERED
    if status == EventStatus.FAILED:
        return note.status == DeliveryStatus.FAILED
    return note.status == DeliveryStatus(status)


async def page(
    session: AsyncSession,
    scope: Scope,
    *,
    status: str | None,
    since: datetime | None,
    before: int | None,
    limit: int,
) -> list[tables.Notification]:
    """Entries newest first, below the row `before` (paging), at most `limit`."""
    note = tables.Notification
    query = select(note).where(_in(scope))
    if status is not None:
        query = query.where(with_status(status))
    if since is not None:
        query = query.where(note.created_at >= since)
    if before is not None:
        query = query.where(note.pk < before)
    return list((await session.scalars(query.order_by(note.pk.desc()).limit(limit))).all())


async def find(session: AsyncSession, scope: Scope, event_id: str) -> Delivery | None:
    """One entry, with its delivery attempts: by notification id, or by an old numeric id."""
    note = tables.Notification
    query: Select[tables.Notification] = select(note).where(_in(scope))
    if event_id.isascii() and event_id.isdigit():
        number = int(event_id)
        if not 0 < number <= MAX_EVENT_ID:
            return None
        carrier = select(tables.Event.notification_pk).where(tables.Event.id == number)
        query = query.where(note.pk == carrier.scalar_subquery())
    else:
        query = query.where(note.id == event_id)
    found = await with_attempts(session, query)
    return found[0] if found else None
