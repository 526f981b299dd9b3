"""Housekeeping: what would otherwise grow without bound (the provider inbox, the outbox)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from sqlalchemy import delete

from relaybox.metrics import PRUNED
from relaybox.runtime import Runtime
from relaybox.store import retention, tables
from relaybox.store.db import transaction

# Between two batches of deleted notifications: longer than the 100 ms a SQLite writer
# waiting on the lock sleeps between tries at most, so every waiting writer gets its turn.
PRUNE_PAUSE_SECONDS = 0.2


async def prune_inbox(runtime: Runtime) -> int:
    """Delete received provider notifications older than the retention; returns how many.

    The inbox is a record for operators: the passes it asked for live on the instances, the
    events and notifications in their own tables, so pruning it loses nothing.
    """
    cutoff = runtime.clock.now() - timedelta(days=runtime.settings.inbox_retention_days)
    async with transaction(runtime.sessions) as session:
        result = await session.execute(
            delete(tables.InboxItem).where(tables.InboxItem.received_at < cutoff)
        )
    pruned = int(result.rowcount)  # type: ignore[attr-defined]
    PRUNED.labels("inbox").inc(pruned)
    return pruned


async def prune_notifications(
    runtime: Runtime,
    *,
    now: datetime | None = None,
    stopping: asyncio.Event | None = None,
    batch_size: int = retention.BATCH_SIZE,
    pause: float = PRUNE_PAUSE_SECONDS,
) -> retention.Pruned:
    """Delete delivered and failed notifications (with their events and attempts) that
    finished more than `RELAYBOX_RETENTION_DAYS` ago, in batches; pending ones stay.

    Pauses `pause` seconds between batches and ends early once `stopping` is set.
    """

    async def rest() -> bool:
        if stopping is None:
            await asyncio.sleep(pause)
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=pause)
        return stopping.is_set()

    pruned = await retention.prune(
        runtime.sessions,
        now=now or runtime.clock.now(),
        keep=timedelta(days=runtime.settings.retention_days),
        batch_size=batch_size,
        rest=rest,
    )
    PRUNED.labels("notifications").inc(pruned.notifications)
    PRUNED.labels("events").inc(pruned.events)
    return pruned
