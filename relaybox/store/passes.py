"""Asking for change passes: the one write the receiver, the poller and the API share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, update
from sqlalchemy.ext.asyncio import AsyncSession

from relaybox.store import tables


async def request_pass(
    session: AsyncSession,
    instance_ids: Sequence[int],
    notification: Mapping[str, Any] | None,
    *,
    now: datetime,
) -> None:
    """Ask for one more pass over each instance (coalesces with a pass already running)."""
    if not instance_ids:
        return
    await session.execute(
        update(tables.Instance)
        .where(tables.Instance.id.in_(list(instance_ids)))
        .values(
            sync_requested=tables.Instance.sync_requested + 1,
            sync_notification=dict(notification) if notification is not None else None,
            pass_queued_at=func.coalesce(
                tables.Instance.pass_queued_at, literal(now, tables.UTCDateTime())
            ),
        )
    )


def fetchable() -> ColumnElement[bool]:
    """Instances whose changes can be fetched now: events on, valid, enabled, with a cursor."""
    instance = tables.Instance
    return and_(
        instance.events_enabled.is_(True),
        instance.valid.is_(True),
        instance.disabled.is_(False),
        instance.cursor.is_not(None),
    )
