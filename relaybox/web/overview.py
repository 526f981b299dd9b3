"""What the overview and the instance list show: each instance's health, account, last
event and recent attempts (store/health.py), and the bars of a chart drawn as SVG by the
templates (no script, no inline style: the console's CSP allows neither)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from relaybox.core.clock import iso, iso_or_none
from relaybox.core.health import REASONS, Health
from relaybox.runtime import Runtime
from relaybox.store import health as stored
from relaybox.store.db import transaction
from relaybox.store.health import Hour, InstanceHealth
from relaybox.web.providers import names, providers


@dataclass(frozen=True)
class Bar:
    """One hour of a chart, in the SVG's units: a failed part stacked under a delivered one."""

    x: float
    width: float
    delivered_y: float
    delivered_height: float
    failed_y: float
    failed_height: float
    label: str  # what the hour was, in words (the bar's tooltip)


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    delivered: int
    failed: int
    peak: int  # the tallest hour's attempts (the scale)
    summary: str  # the whole chart in one sentence, for screen readers


def chart(hours: Sequence[Hour], *, width: int, height: int) -> Chart:
    """Bars for `hours` (oldest first), scaled so the busiest hour fills `height`; an hour
    with any attempt is at least one unit tall, so it never vanishes."""
    peak = max((hour.delivered + hour.failed for hour in hours), default=0)
    slot = width / max(len(hours), 1)
    bars = []
    for n, hour in enumerate(hours):
        failed_h = _scaled(hour.failed, peak, height)
        delivered_h = _scaled(hour.delivered, peak, height)
        if failed_h + delivered_h > height:  # both rounded up past the top
            delivered_h = height - failed_h
        end = hour.start + timedelta(hours=1)
        counted = f"{hour.delivered} delivered, {hour.failed} failed"
        label = f"{hour.start:%H:%M} to {end:%H:%M} UTC: {counted}"
        bars.append(
            Bar(
                x=round(n * slot + slot * 0.1, 2),
                width=round(slot * 0.8, 2),
                failed_y=height - failed_h,
                failed_height=failed_h,
                delivered_y=height - failed_h - delivered_h,
                delivered_height=delivered_h,
                label=label,
            )
        )
    delivered = sum(hour.delivered for hour in hours)
    failed = sum(hour.failed for hour in hours)
    summary = f"Attempts in the last {len(hours)} hours: {delivered} delivered, {failed} failed" + (
        f"; at most {peak} in one hour." if peak else "."
    )
    return Chart(width, height, bars, delivered, failed, peak, summary)


def _scaled(count: int, peak: int, height: int) -> float:
    if not count or not peak:
        return 0.0
    return max(1.0, round(count / peak * height, 2))


def account_of(item: InstanceHealth) -> dict[str, Any]:
    row = item.instance
    return {"email": row.account_email, "name": row.account_name, "id": row.account_id}


def describe(item: InstanceHealth, providers: Mapping[str, str]) -> dict[str, Any]:
    """One instance as the overview and the list show it (no secret: none is read), with
    its provider's name (`providers`: element key to connector name)."""
    row = item.instance
    described: dict[str, Any] = {
        "id": row.id,
        "name": row.name,
        "provider": providers.get(row.element_key, row.element_key),
        "tags": list(row.tags or []),
        "account": account_of(item),
        "source": row.vendor_type,
        "eventsEnabled": row.events_enabled,
        "indexing": row.indexing,
        "health": item.health.value,
        "healthReason": REASONS[item.health],
        "statusMessage": row.status_message,
        "lastEvent": iso_or_none(item.last_event_at),
        "pending": item.pending,
        "failed": item.failed,
    }
    if item.hours:
        described["chart"] = chart(item.hours, width=120, height=24)
    return described


async def instance_list(runtime: Runtime, org_id: int) -> list[dict[str, Any]]:
    """The organization's instances with their health, account and last event."""
    async with transaction(runtime.sessions) as session:
        found = await stored.of_org(session, org_id, now=runtime.clock.now())
    return [describe(item, names(runtime)) for item in found]


async def overview(runtime: Runtime, org_id: int) -> dict[str, Any]:
    """The overview page: how many instances are in each health, the organization's
    attempts of the last 24 hours hour by hour, and each instance with its own."""
    now = runtime.clock.now()
    async with transaction(runtime.sessions) as session:
        found = await stored.of_org(session, org_id, now=now, with_hours=True)
    counts = Counter(item.health for item in found)
    hours = stored.totals(found) or stored.empty_hours(stored.first_hour(now))
    return {
        "instances": [describe(item, names(runtime)) for item in found],
        "providers": providers(runtime),
        "health_counts": [(health.value, counts[health], REASONS[health]) for health in Health],
        "chart": chart(hours, width=480, height=96),
        "since": iso(hours[0].start),
        "now": iso(now),
    }
