"""Each instance of an organization with its health, for the console's overview and list.

Two statements whatever the number of instances: the instances with what decides their
health (core/health.py), their last event and their queued and failed deliveries; then,
for the chart, the last hours' attempts counted per instance and hour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from relaybox.core.health import Health, health
from relaybox.store import tables

HOURS = 24


@dataclass(frozen=True)
class Hour:
    """Attempts made in one hour: delivered (answered 2xx) and failed (anything else)."""

    start: datetime
    delivered: int = 0
    failed: int = 0


@dataclass
class InstanceHealth:
    instance: tables.Instance
    health: Health
    last_event_at: datetime | None
    pending: int  # notifications waiting to be sent (or sent again)
    failed: int  # notifications given up
    hours: list[Hour] = field(default_factory=list)  # oldest first; empty unless asked

    @property
    def delivered_recently(self) -> int:
        return sum(hour.delivered for hour in self.hours)

    @property
    def failed_recently(self) -> int:
        return sum(hour.failed for hour in self.hours)


def first_hour(now: datetime, hours: int = HOURS) -> datetime:
    """The start of the oldest of `hours` whole clock hours, the last one being now's."""
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)


async def of_org(
    session: AsyncSession, org_id: int, *, now: datetime, with_hours: bool = False
) -> list[InstanceHealth]:
    """The organization's instances, oldest first, each with its health; `with_hours`
    adds its attempts of the last `HOURS` clock hours, hour by hour."""
    inst, note, event = tables.Instance, tables.Notification, tables.Event
    pending, failed = note.status == "pending", note.status == "failed"
    queued = (
        select(
            note.instance_id,
            func.sum(case((pending, 1), else_=0)).label("pending"),
            func.sum(case((failed, 1), else_=0)).label("failed"),
            func.max(case((and_(pending, note.attempt_count > 0), 1), else_=0)).label("retrying"),
        )
        .where(note.org_id == org_id, note.status.in_(("pending", "failed")))
        .group_by(note.instance_id)
        .subquery()
    )
    last_event = (
        select(event.occurred_at)
        .where(event.instance_id == inst.id)
        .order_by(event.id.desc())
        .limit(1)
        .correlate(inst)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(inst, last_event, queued.c.pending, queued.c.failed, queued.c.retrying)
        .outerjoin(queued, queued.c.instance_id == inst.id)
        .where(inst.org_id == org_id)
        .order_by(inst.id)
    )
    found = [
        InstanceHealth(
            instance=row,
            health=health(
                valid=row.valid,
                subscription_active=row.subscription_active,
                disabled=row.disabled,
                retrying=bool(retrying),
            ),
            last_event_at=last_at,
            pending=int(waiting or 0),
            failed=int(given_up or 0),
        )
        for row, last_at, waiting, given_up, retrying in rows
    ]
    if with_hours and found:
        start = first_hour(now)
        counted = await hourly(session, org_id, start)
        for item in found:
            item.hours = counted.get(item.instance.id) or empty_hours(start)
    return found


def empty_hours(start: datetime, hours: int = HOURS) -> list[Hour]:
    return [Hour(start + timedelta(hours=n)) for n in range(hours)]


async def hourly(
    session: AsyncSession, org_id: int, start: datetime, hours: int = HOURS
) -> dict[int, list[Hour]]:
    """Attempts of the organization's instances from `start` on, per instance and hour."""
    attempt, note = tables.Attempt, tables.Notification
    edges = [start + timedelta(hours=n) for n in range(1, hours)]
    ok = and_(attempt.status_code >= 200, attempt.status_code < 300)
    # The hour as a number, computed in an inner query so the outer one groups by a column
    # (PostgreSQL would not match a repeated expression whose parameters are numbered apart).
    bucketed = (
        select(
            note.instance_id.label("instance_id"),
            case(
                *[(attempt.attempted_at < edge, n) for n, edge in enumerate(edges)],
                else_=len(edges),
            ).label("hour"),
            case((ok, 1), else_=0).label("delivered"),
        )
        .select_from(attempt)
        .join(note, note.pk == attempt.notification_pk)
        .where(note.org_id == org_id, attempt.attempted_at >= start)
        .subquery()
    )
    rows = await session.execute(
        select(
            bucketed.c.instance_id,
            bucketed.c.hour,
            func.sum(bucketed.c.delivered),
            func.count(),
        ).group_by(bucketed.c.instance_id, bucketed.c.hour)
    )
    found: dict[int, list[Hour]] = {}
    for instance_id, hour, delivered, total in rows:
        series = found.setdefault(instance_id, empty_hours(start, hours))
        n = int(hour)
        series[n] = Hour(series[n].start, int(delivered or 0), int(total) - int(delivered or 0))
    return found


def totals(items: Sequence[InstanceHealth]) -> list[Hour]:
    """The organization's hours: every instance's attempts added up, hour by hour."""
    if not items or not items[0].hours:
        return []
    summed = []
    for n, hour in enumerate(items[0].hours):
        delivered = sum(item.hours[n].delivered for item in items)
        failed = sum(item.hours[n].failed for item in items)
        summed.append(Hour(hour.start, delivered, failed))
    return summed
