"""Polling instances: request a change pass every `refresh_interval` minutes.

A poll is nothing but a pass request (`store.passes.request_pass`, no notification), so a
polled instance produces exactly the events a webhook would, through `changes.py`. The due
time lives in `instances.next_poll_at`, so the schedule survives restarts; a poll is claimed
with one conditional UPDATE (`next_poll_at <= now` moves forward), so several worker
processes sharing a database never take the same poll twice; and the pass lease keeps one
pass per instance at a time. No request is added while a pass is still pending: the pending
pass will read everything up to its own end anyway.
"""

from __future__ import annotations

import logging

from sqlalchemy import ColumnElement, and_, select, update

from relaybox.core.schedule import next_due
from relaybox.runtime import Runtime
from relaybox.store import tables
from relaybox.store.db import transaction
from relaybox.store.passes import fetchable, request_pass
from relaybox.store.polls import interval_of, schedule

log = logging.getLogger(__name__)

CLAIM_LIMIT = 200


def polled() -> ColumnElement[bool]:
    """Instances whose events come from polling and can be polled now."""
    return and_(tables.Instance.vendor_type == "polling", fetchable())


class Poller:
    """Claims due polls and turns each into a pass request."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def tick(self) -> int:
        """Schedule new polling instances, request passes for due ones: how many requested."""
        floor = self.runtime.settings.min_poll_interval
        await self._schedule_new(floor)
        now = self.runtime.clock.now()
        instance = tables.Instance
        async with transaction(self.runtime.sessions) as session:
            due = (
                await session.execute(
                    select(
                        instance.id,
                        instance.next_poll_at,
                        instance.configuration,
                        instance.sync_requested > instance.sync_done,
                    )
                    .where(polled(), instance.next_poll_at <= now)
                    .order_by(instance.next_poll_at)
                    .limit(CLAIM_LIMIT)
                )
            ).all()
        requested = 0
        for instance_id, due_at, configuration, pending in due:
            following = next_due(due_at, now, interval_of(configuration or {}, floor))
            async with transaction(self.runtime.sessions) as session:
                claimed = await session.execute(
                    update(instance)
                    .where(instance.id == instance_id, instance.next_poll_at <= now)
                    .values(next_poll_at=following)
                )
                if claimed.rowcount != 1:  # type: ignore[attr-defined]
                    continue  # another process took this poll
                if not pending:
                    await request_pass(session, [instance_id], None, now=now)
                    requested += 1
        if requested:
            self.runtime.wakeups.changes.set()
        return requested

    async def _schedule_new(self, floor: float) -> None:
        """Give a first due time to polling instances that have none (switched, seeded)."""
        instance = tables.Instance
        async with transaction(self.runtime.sessions) as session:
            rows = (
                await session.scalars(
                    select(instance)
                    .where(polled(), instance.next_poll_at.is_(None))
                    .limit(CLAIM_LIMIT)
                )
            ).all()
            for row in rows:
                schedule(row, floor)
