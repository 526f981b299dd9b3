"""The notification delivered to a callback URL (SPEC sections 4 and 9), as pure data.

`message.raw` is the provider's payload as received (SPEC section 9): the Dropbox webhook
body, reduced to the instance's own account, for a pass a webhook asked for; otherwise (a
poll, a longpoll wake-up, the first pass after the initial listing) Dropbox's
`list_folder/continue` answer, `{"entries", "cursor", "has_more"}`, with `entries` cut to
the ones behind this notification's events (a pass may read thousands over several pages
and split its events over many notifications). The Dropbox entry behind each event is in
`message.relaybox.entries`, position for position with `message.events`, whatever the
source.

A test notification (the console's "Send a test event") has the same envelope and
signatures, no events (`message.events` is empty, so a receiver that acts on events does
nothing), an empty `message.raw`, and `message.relaybox.test: true`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from relaybox.core.clock import iso
from relaybox.core.normalize import StandardEvent


@dataclass(frozen=True)
class InstanceInfo:
    """What a notification says about the instance it comes from."""

    id: int
    name: str
    element_key: str
    tags: list[str]
    account_id: str | None


def provider_payload(
    *,
    webhook: Mapping[str, Any] | None,
    events: Sequence[StandardEvent],
    cursor: str,
    has_more: bool,
) -> dict[str, Any]:
    """`message.raw`: the webhook behind the pass, or the `list_folder/continue` answer."""
    if webhook is not None:
        return dict(webhook)
    return {
        "entries": [dict(event.entry) for event in events],
        "cursor": cursor,
        "has_more": has_more,
    }


def notification_body(
    *,
    notification_id: str,
    instance: InstanceInfo,
    events: Sequence[StandardEvent],
    raw: Mapping[str, Any],
    now: datetime,
    test: bool = False,
) -> str:
    """The JSON delivered to the callback URL, fixed once for every retry.

    `message.eventId` is the notification's id, which is also its event-log id
    (`GET /instances/events/{eventId}`, SPEC section 9).
    """
    date = iso(now)
    standardized = []
    own: dict[str, Any] = {"entries": [dict(event.entry) for event in events]}
    if test:
        own["test"] = True
    for event in events:
        item: dict[str, Any] = {
            "elementKey": instance.element_key,
            "hubKey": "documents",
            "eventType": event.event_type,
            "objectType": event.object_type,
            "objectId": event.object_id,
            "path": event.path,
            "date": date,
        }
        if event.new_path is not None:
            item["newPath"] = event.new_path
        standardized.append(item)
    body = {
        "id": notification_id,
        "createdDate": date,
        "message": {
            "eventId": notification_id,
            "elementKey": instance.element_key,
            "instanceId": instance.id,
            "instance_id": instance.id,
            "instanceName": instance.name,
            "instanceTags": list(instance.tags),
            "accountId": instance.account_id,
            "events": standardized,
            "raw": dict(raw),
            "relaybox": own,
        },
    }
    return json.dumps(body, separators=(",", ":"))


def body_of_test_event(*, notification_id: str, instance: InstanceInfo, now: datetime) -> str:
    """A notification that only says it is a test: no events, nothing from the provider."""
    return notification_body(
        notification_id=notification_id, instance=instance, events=(), raw={}, now=now, test=True
    )


def is_test(body: str) -> bool:
    """Whether a stored notification body is a test notification's."""
    try:
        return json.loads(body)["message"]["relaybox"]["test"] is True
    except (ValueError, KeyError, TypeError):
        return False


def notified_parts(body: str) -> tuple[str, list[Any]]:
    """From a stored notification body, the event log's `providerData` (`message.raw` as a
    JSON string) and `notifiedData` (`message.events`)."""
    message = json.loads(body)["message"]
    return json.dumps(message["raw"], separators=(",", ":")), list(message["events"])
