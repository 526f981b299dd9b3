"""When a polling instance is due: pure decisions, applied by `pipeline/poller.py`.

Instances are spread over their interval by a fixed per-instance offset, so a thousand
instances created together are not all polled in the same second, and a given instance
keeps the same phase across restarts and processes.
"""

from __future__ import annotations

from datetime import datetime, timedelta

# The fractional part of the golden ratio spreads consecutive ids evenly over [0, 1).
_SPREAD = 0.6180339887498949


def poll_interval(minutes: float, floor_seconds: float) -> timedelta:
    """`event.poller.refresh_interval` minutes, never below `RELAYBOX_MIN_POLL_INTERVAL`."""
    return timedelta(seconds=max(minutes * 60.0, floor_seconds))


def phase(instance_id: int) -> float:
    """A fixed fraction in [0, 1) for this instance: where in its interval it is polled."""
    return (instance_id * _SPREAD) % 1.0


def first_due(instance_id: int, now: datetime, interval: timedelta) -> datetime:
    """The first poll of a newly scheduled instance: somewhere within one interval."""
    return now + interval * phase(instance_id)


def next_due(due_at: datetime, now: datetime, interval: timedelta) -> datetime:
    """The poll after one that was due at `due_at` and taken at `now`.

    Keeps the instance's phase while on time; after an outage (several intervals
    missed) it polls once now and then every interval from now, without catching up.
    """
    following = due_at + interval
    return following if following > now else now + interval
