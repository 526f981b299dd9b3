"""The event log's status table (core/event_log.py) and the notification's `raw` and
`relaybox.entries` (core/notification.py), row by row."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from relaybox.core.event_log import EventStatus, event_status
from relaybox.core.normalize import StandardEvent
from relaybox.core.notification import (
    InstanceInfo,
    notification_body,
    notified_parts,
    provider_payload,
)

NOW = datetime(2026, 12, 4, 10, 0, 0, tzinfo=UTC)
INSTANCE = InstanceInfo(12, "my dropbox", "dropbox", ["team-a"], "dbid:AAH4f99")
ENTRY = {".tag": "file", "id": "id:a4ayc", "path_lower": "/a.txt", "rev": "0123456789a"}
EVENT = StandardEvent("CREATED", "files", "id:a4ayc", "/a.txt", None, ENTRY)
MOVED_ENTRY = {".tag": "file", "id": "id:b", "path_lower": "/new.txt", "rev": "0123456789b"}
MOVED = StandardEvent("UPDATED", "files", "id:b", "/old.txt", "/new.txt", MOVED_ENTRY)


@pytest.mark.parametrize(
    ("delivery", "attempts", "leased", "expected"),
    [
        ("pending", 0, False, EventStatus.RECEIVED),
        ("pending", 0, True, EventStatus.DISPATCHED),  # the first attempt is being made
        ("pending", 3, False, EventStatus.DISPATCHED),  # waiting for a retry
        ("pending", 3, True, EventStatus.DISPATCHED),
        ("delivered", 1, False, EventStatus.NOTIFIED),
        ("failed", 10, False, EventStatus.FAILED),
    ],
)
def test_event_status(delivery: str, attempts: int, leased: bool, expected: EventStatus) -> None:
    assert event_status(delivery, attempts, leased) is expected


def test_raw_of_a_webhook_pass_is_the_webhook() -> None:
    webhook = {"list_folder": {"accounts": ["dbid:AAH4f99"]}}
    raw = provider_payload(webhook=webhook, events=[EVENT], cursor="c2", has_more=False)
    assert raw == webhook


def test_raw_of_a_polled_pass_is_the_continue_answer_for_its_events() -> None:
    raw = provider_payload(webhook=None, events=[EVENT, MOVED], cursor="c2", has_more=True)
    assert raw == {"entries": [ENTRY, MOVED_ENTRY], "cursor": "c2", "has_more": True}


def test_body_carries_raw_and_the_entries_behind_each_event() -> None:
    webhook = {"list_folder": {"accounts": ["dbid:AAH4f99"]}}
    body = notification_body(
        notification_id="n-1", instance=INSTANCE, events=[EVENT, MOVED], raw=webhook, now=NOW
    )
    message = json.loads(body)["message"]
    assert message["eventId"] == "n-1"
    assert message["raw"] == webhook
    assert message["relaybox"] == {"entries": [ENTRY, MOVED_ENTRY]}
    assert [e["eventType"] for e in message["events"]] == ["CREATED", "UPDATED"]
    assert message["events"][1]["newPath"] == "/new.txt"


def test_provider_data_and_notified_data_come_from_the_body() -> None:
    webhook = {"list_folder": {"accounts": ["dbid:AAH4f99"]}}
    body = notification_body(
        notification_id="n-1", instance=INSTANCE, events=[EVENT], raw=webhook, now=NOW
    )
    provider_data, notified_data = notified_parts(body)
    assert json.loads(provider_data) == webhook
    assert notified_data == json.loads(body)["message"]["events"]
