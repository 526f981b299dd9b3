"""The polling schedule of an instance row: shared by the instance service and the poller."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from relaybox.core.clock import utcnow
from relaybox.core.instance_config import parse_config
from relaybox.core.schedule import first_due, poll_interval
from relaybox.store import tables

REFRESH_KEY = "event.poller.refresh_interval"


def interval_of(configuration: Mapping[str, Any], floor_seconds: float) -> timedelta:
    """An instance's polling interval from its stored configuration."""
    given = configuration.get(REFRESH_KEY)
    config = parse_config({REFRESH_KEY: given} if given is not None else {}, require_complete=False)
    return poll_interval(config.poll_interval_minutes, floor_seconds)


def schedule(row: tables.Instance, floor_seconds: float, now: datetime | None = None) -> None:
    """Set or clear `next_poll_at` after a create or an update (switching sources).

    A polling instance with no schedule gets its first poll within one interval, at its
    own phase; any other source has none. An existing schedule is kept, but never later
    than one (possibly shortened) interval from now.
    """
    if row.vendor_type != "polling" or not row.events_enabled:
        row.next_poll_at = None
        return
    now = now or utcnow()
    interval = interval_of(row.configuration or {}, floor_seconds)
    if row.next_poll_at is None:
        row.next_poll_at = first_due(row.id, now, interval)
    elif row.next_poll_at > now + interval:
        row.next_poll_at = now + interval
