"""Reading the outbox: notifications with their delivery attempts."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from relaybox.store import tables

Delivery = tuple[tables.Notification, list[tables.Attempt]]


async def with_attempts(
    session: AsyncSession, notifications: Select[tables.Notification]
) -> list[Delivery]:
    """The notifications a query selects, newest first, each with its attempts in order.

    One statement, so one snapshot: an attempt and the state it left its notification in
    are always read together (two queries could show an attempt next to the schedule from
    before it), and a page of N notifications is one query, not N + 1.
    """
    page = notifications.subquery()
    note = aliased(tables.Notification, page)
    attempt = tables.Attempt
    rows = await session.execute(
        select(note, attempt)
        .outerjoin(attempt, attempt.notification_pk == note.pk)
        .order_by(note.pk.desc(), attempt.id)
    )
    found: dict[int, Delivery] = {}
    for notification, one in rows:
        entry = found.setdefault(notification.pk, (notification, []))
        if one is not None:
            entry[1].append(one)
    return list(found.values())


async def one_delivery(
    session: AsyncSession, instance_id: int, notification_id: str
) -> Delivery | None:
    """One notification of an instance, by its id, with its attempts."""
    note = tables.Notification
    query = select(note).where(note.instance_id == instance_id, note.id == notification_id)
    found = await with_attempts(session, query)
    return found[0] if found else None


async def pause_cause(session: AsyncSession, instance_id: int) -> tables.Notification | None:
    """The notification that paused an instance's deliveries by itself: the newest one
    given up after its last retry, or answered 410 Gone (pipeline/delivery.py).
    None when neither exists (paused by hand)."""
    note = tables.Notification
    return await session.scalar(
        select(note)
        .where(
            note.instance_id == instance_id,
            (note.status == "failed") | (note.last_status_code == 410),
        )
        .order_by(note.pk.desc())
        .limit(1)
    )
