"""Prometheus metrics of this process (exposed at `/metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

WEBHOOKS = Counter(
    "relaybox_webhooks_received_total",
    "Provider notifications received, by element and outcome (accepted, forbidden, invalid).",
    ["element", "outcome"],
)
PASSES = Counter(
    "relaybox_change_passes_total",
    "Change passes run, by outcome (ok, reset, rate_limited, failed, invalid, lease_lost).",
    ["outcome"],
)
PASS_SECONDS = Histogram("relaybox_change_pass_seconds", "Time from a pass's start to its commit.")
EVENTS = Counter(
    "relaybox_events_total", "Standardized events produced, by event type.", ["event_type"]
)
DELIVERIES = Counter(
    "relaybox_delivery_attempts_total",
    "Delivery attempts, by verdict (DELIVERED, RETRY, GIVE_UP, DEACTIVATE).",
    ["verdict"],
)
DELIVERY_SECONDS = Histogram(
    "relaybox_delivery_attempt_seconds", "Duration of one callback attempt."
)
PENDING = Gauge("relaybox_notifications_pending", "Notifications not yet delivered nor given up.")
PRUNED = Counter(
    "relaybox_pruned_rows_total",
    "Rows deleted past their retention, by table (inbox, notifications, events).",
    ["table"],
)
