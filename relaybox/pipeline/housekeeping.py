"""Housekeeping: what would otherwise grow without bound (the provider inbox)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete

from relaybox.core.clock import utcnow
from relaybox.runtime import Runtime
from relaybox.store import tables
from relaybox.store.db import transaction


async def prune_inbox(runtime: Runtime) -> int:
    """Delete received provider notifications older than the retention; returns how many.

    The inbox is a record for operators: the passes it asked for live on the instances, the
    events and notifications in their own tables, so pruning it loses nothing.
    """
    cutoff = utcnow() - timedelta(days=runtime.settings.inbox_retention_days)
    async with transaction(runtime.sessions) as session:
        result = await session.execute(
            delete(tables.InboxItem).where(tables.InboxItem.received_at < cutoff)
        )
    return int(result.rowcount)  # type: ignore[attr-defined]
