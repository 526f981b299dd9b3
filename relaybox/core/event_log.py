"""The event log's status of a notification, in the anchor platform's words (SPEC section 9).

An event-log entry is one notification: what one pass made of the provider's payload, with
the standardized events it notified. Its `status` follows the notification's delivery:

| delivery (`notifications.status`)                   | event-log status |
|-----------------------------------------------------|------------------|
| `pending`, never attempted and not being attempted  | RECEIVED         |
| `pending`, being attempted, or attempted and waiting for a retry | DISPATCHED |
| `delivered`                                         | NOTIFIED         |
| `failed` (retries exhausted)                        | FAILED           |

A notification sent again (redeliver) starts over at RECEIVED. relaybox's own delivery
status stays in the entry as `deliveryStatus`.
"""

from __future__ import annotations

from enum import StrEnum


class DeliveryStatus(StrEnum):
    """`notifications.status`: where a notification's delivery stands."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class EventStatus(StrEnum):
    """The anchor platform's event-log statuses that relaybox uses."""

    RECEIVED = "RECEIVED"
    DISPATCHED = "DISPATCHED"
    NOTIFIED = "NOTIFIED"
    FAILED = "FAILED"


def event_status(delivery: str, attempts: int, leased: bool) -> EventStatus:
    """The table above: `attempts` made so far, `leased` while one is being made."""
    if delivery == DeliveryStatus.DELIVERED:
        return EventStatus.NOTIFIED
    if delivery == DeliveryStatus.FAILED:
        return EventStatus.FAILED
    return EventStatus.DISPATCHED if attempts > 0 or leased else EventStatus.RECEIVED
