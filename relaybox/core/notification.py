"""The notification delivered to a callback URL (SPEC section 4), as pure data."""

from __future__ import annotations

import json
from collections.abc import Sequence
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


def notification_body(
    *,
    notification_id: str,
    instance: InstanceInfo,
    events: Sequence[StandardEvent],
    raw_notification: dict[str, Any] | None,
    now: datetime,
) -> str:
    """The JSON delivered to the callback URL (SPEC section 4), fixed once for every retry."""
    date = iso(now)
    standardized = []
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
            "raw": {
                "notification": raw_notification,
                "entries": [dict(event.entry) for event in events],
            },
        },
    }
    return json.dumps(body, separators=(",", ":"))
