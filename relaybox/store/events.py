"""The standardized events of an instance, filtered and paged (the console's event list).

Each row comes with the notification that carried it, so a list shows each event's
delivery status and links to its delivery in the same query.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from relaybox.store import tables

EventRow = tuple[tables.Event, tables.Notification]


@dataclass(frozen=True)
class EventFilter:
    """What to keep; None keeps everything."""

    event_type: str | None = None  # CREATED, UPDATED or DELETED
    status: str | None = None  # the delivery status: pending, delivered or failed
    path_contains: str | None = None  # in the path or the new path, any case
    since: datetime | None = None
    until: datetime | None = None

    @property
    def active(self) -> bool:
        return any(v is not None for v in vars(self).values())


def _like_pattern(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def page_of_events(
    session: AsyncSession,
    instance_id: int,
    kept: EventFilter,
    *,
    before: int | None,
    limit: int,
) -> list[EventRow]:
    """Up to `limit` events of the instance that `kept` keeps, newest first, below the
    event id `before` (the page token)."""
    event, note = tables.Event, tables.Notification
    query = (
        select(event, note)
        .join(note, note.pk == event.notification_pk)
        .where(event.instance_id == instance_id)
    )
    if before is not None:
        query = query.where(event.id < before)
    if kept.event_type is not None:
        query = query.where(event.event_type == kept.event_type)
    if kept.status is not None:
        query = query.where(note.status == kept.status)
    if kept.path_contains:
        pattern = _like_pattern(kept.path_contains)
        query = query.where(
            or_(
                event.path.ilike(pattern, escape="\\"),
                event.new_path.ilike(pattern, escape="\\"),
            )
        )
    if kept.since is not None:
        query = query.where(event.occurred_at >= kept.since)
    if kept.until is not None:
        query = query.where(event.occurred_at <= kept.until)
    rows = await session.execute(query.order_by(event.id.desc()).limit(limit))
    return [(found, carrier) for found, carrier in rows]


async def count_events(session: AsyncSession, instance_id: int) -> int:
    event = tables.Event
    found = await session.scalar(select(func.count()).where(event.instance_id == instance_id))
    return int(found or 0)


async def instance_state(session: AsyncSession, instance_id: int) -> tuple[Any, ...] | None:
    """What an open instance page shows, summed up: it changes whenever an event arrives,
    an attempt is recorded, a delivery changes status, or the instance is switched or
    found invalid (None: the instance is gone). One statement, cheap enough to ask every
    second per open page."""
    event, note, attempt, instance = (
        tables.Event,
        tables.Notification,
        tables.Attempt,
        tables.Instance,
    )
    newest_event = select(func.max(event.id)).where(event.instance_id == instance_id)
    newest_attempt = (
        select(func.max(attempt.id))
        .join(note, note.pk == attempt.notification_pk)
        .where(note.instance_id == instance_id)
    )
    finished = select(func.count()).where(note.instance_id == instance_id, note.status != "pending")
    row = (
        await session.execute(
            select(
                instance.valid,
                instance.subscription_active,
                instance.events_enabled,
                instance.indexing,
                instance.name,
                newest_event.scalar_subquery(),
                newest_attempt.scalar_subquery(),
                finished.scalar_subquery(),
            ).where(instance.id == instance_id)
        )
    ).first()
    return None if row is None else tuple(row)
