"""What the console's pages show: the data behind them, read through the API's own helpers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select

from relaybox.api.deliveries import describe_attempt, describe_delivery
from relaybox.api.errors import ApiError, input_message
from relaybox.api.paging import decode_page, encode_page
from relaybox.core.clock import iso_or_none
from relaybox.core.errors import InvalidInput, NotFound
from relaybox.core.instance_config import parse_config
from relaybox.core.notification import is_test
from relaybox.runtime import Runtime
from relaybox.services.instances import MAX_NAME, InstanceService
from relaybox.store import outbox, tables
from relaybox.store.db import transaction
from relaybox.store.events import EventFilter, page_of_events
from relaybox.store.outbox import with_attempts
from relaybox.web.providers import Provider, check_source, name_of

EVENTS_PAGE = 20
DELIVERIES_PAGE = 10
MAX_FIELD = 1000


def describe_event(event: tables.Event, note: tables.Notification) -> dict[str, Any]:
    """One standardized event as the console lists it, with its notification's delivery
    status (the API's event log lists notifications: api/events.py)."""
    answer: dict[str, Any] = {
        "id": event.id,
        "instanceId": event.instance_id,
        "eventType": event.event_type,
        "objectType": event.object_type,
        "objectId": event.object_id,
        "path": event.path,
        "date": iso_or_none(event.occurred_at),
        "notificationId": note.id,
        "status": note.status,
    }
    if event.new_path is not None:
        answer["newPath"] = event.new_path
    return answer


def shown(service: InstanceService, row: tables.Instance) -> dict[str, Any]:
    """The instance as the API describes it (secrets masked), without its token."""
    answer = service.describe(row)
    answer.pop("token", None)
    return answer


def create_body(values: dict[str, str], redirect_uri: str, offered: Provider) -> dict[str, Any]:
    """The `POST /instances` body the connect form describes for the provider `offered`
    (without the code). The OAuth redirect is the console's own, which Google requires
    again at the code exchange (`oauth.callback.url`)."""
    for key, value in values.items():
        if len(value) > MAX_FIELD:
            raise InvalidInput(f"{key} is longer than {MAX_FIELD} characters", field=key)
    configuration: dict[str, Any] = {
        "authentication.type": "oauth2",
        "oauth.api.key": values.get("app_key", "").strip(),
        "oauth.api.secret": values.get("app_secret", "").strip(),
        "oauth.callback.url": redirect_uri,
        "event.notification.enabled": values.get("events") == "on",
        "event.vendor.type": values.get("vendor_type") or offered.vendor_types[0],
    }
    check_source(offered, configuration["event.vendor.type"])
    optional = {
        "callback_url": "event.notification.callback.url",
        "signature_key": "event.notification.signature.key",
        "refresh_interval": "event.poller.refresh_interval",
    }
    for field, key in optional.items():
        if values.get(field, "").strip():
            configuration[key] = values[field].strip()
    tags = [tag.strip() for tag in values.get("tags", "").split(",") if tag.strip()]
    name = values.get("name", "").strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"a name of 1 to {MAX_NAME} characters is required", field="name")
    parse_config(configuration)  # the create's own checks, before leaving for the provider
    return {
        "element": {"key": offered.key},
        "configuration": configuration,
        "tags": tags,
        "name": name,
    }


def page_token(value: str | None) -> int | None:
    """The id a page continues below; a token that is not ours shows the first page."""
    try:
        return decode_page(value)
    except ApiError:
        return None


EVENT_TYPES = ("CREATED", "UPDATED", "DELETED")
DELIVERY_STATUSES = ("pending", "delivered", "failed")
MAX_PATH_FILTER = 200


def event_filter(params: Mapping[str, str]) -> tuple[EventFilter, str | None]:
    """The event list's filter from the page's query (`type`, `status`, `path`, `from`,
    `to`; times as the browser's datetime-local fields send them, read as UTC), and what
    was wrong with it in plain words (that part is then ignored)."""
    problems: list[str] = []

    def one_of(name: str, allowed: tuple[str, ...]) -> str | None:
        value = params.get(name) or None
        if value is not None and value not in allowed:
            problems.append(f"{name} must be one of {', '.join(allowed)}")
            return None
        return value

    def moment(name: str) -> datetime | None:
        value = (params.get(name) or "").strip()
        if not value:
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            problems.append(f"{name} is not a date and time (like 2026-12-05T14:30)")
            return None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)

    path = (params.get("path") or "").strip() or None
    if path is not None and len(path) > MAX_PATH_FILTER:
        problems.append(f"path is longer than {MAX_PATH_FILTER} characters")
        path = None
    kept = EventFilter(
        event_type=one_of("type", EVENT_TYPES),
        status=one_of("status", DELIVERY_STATUSES),
        path_contains=path,
        since=moment("from"),
        until=moment("to"),
    )
    if not problems:
        return kept, None
    said = "; ".join(problems)
    return kept, said[:1].upper() + said[1:] + "."


async def instance_view(
    runtime: Runtime,
    org_id: int,
    instance_id: int,
    *,
    params: Mapping[str, str],
) -> dict[str, Any]:
    """One instance (NotFound when not the organization's), a page of its latest events
    (filtered by `params`, see `event_filter`) and one of its deliveries with their
    attempts, newest first."""
    service = InstanceService(runtime)
    kept, problem = event_filter(params)
    events_before, deliveries_before = (
        page_token(params.get("events")),
        page_token(params.get("deliveries")),
    )
    note_query = select(tables.Notification).where(tables.Notification.instance_id == instance_id)
    if deliveries_before is not None:
        note_query = note_query.where(tables.Notification.pk < deliveries_before)
    async with transaction(runtime.sessions) as session:
        row = await service.get(session, org_id, instance_id)
        instance = shown(service, row)
        subscription_active = row.subscription_active
        element_key = row.element_key
        found = await page_of_events(
            session, instance_id, kept, before=events_before, limit=EVENTS_PAGE + 1
        )
        notes = await with_attempts(
            session, note_query.order_by(tables.Notification.pk.desc()).limit(DELIVERIES_PAGE + 1)
        )
    timeout = runtime.settings.delivery_timeout
    delivery_rows = []
    for note, attempts in notes[:DELIVERIES_PAGE]:
        described = {**describe_delivery(note, attempts), "test": is_test(note.body)}
        for shown_attempt in described["attempts"]:
            shown_attempt["problem"] = in_plain_words(
                shown_attempt["statusCode"], shown_attempt["error"], timeout
            )
        delivery_rows.append(described)
    filters = {
        key: params[key] for key in ("type", "status", "path", "from", "to") if params.get(key)
    }
    older_events = None
    if len(found) > EVENTS_PAGE:
        older_events = urlencode({**filters, "events": encode_page(found[EVENTS_PAGE - 1][0].id)})
    return {
        "instance": instance,
        "provider": name_of(runtime, element_key),
        "subscription_active": subscription_active,
        "events": [describe_event(event, note) for event, note in found[:EVENTS_PAGE]],
        "deliveries": delivery_rows,
        "filters": filters,
        "filtered": kept.active,
        "filter_problem": problem,
        "event_types": EVENT_TYPES,
        "delivery_statuses": DELIVERY_STATUSES,
        "older_events": older_events,
        "older_deliveries": (
            encode_page(notes[DELIVERIES_PAGE - 1][0].pk) if len(notes) > DELIVERIES_PAGE else None
        ),
        "paged": events_before is not None or deliveries_before is not None,
    }


def in_plain_words(status_code: int | None, error: str | None, timeout: float) -> str | None:
    """What went wrong with one attempt, as a person would say it (None: it succeeded)."""
    if status_code is not None:
        if 200 <= status_code < 300:
            return None
        try:
            phrase = HTTPStatus(status_code).phrase
        except ValueError:
            phrase = ""
        said = f"The callback answered {status_code} {phrase}".rstrip()
        if 300 <= status_code < 400:
            return f"{said}: redirects are not followed, so this counts as a failure."
        if status_code == 410:
            return f"{said}: it asked for no more deliveries, so deliveries are paused."
        return f"{said}."
    if not error:
        return None
    if error == "timed out":
        return f"No answer within {timeout:g} seconds."
    kind, _, detail = error.partition(": ")
    if kind == "ConnectError":
        return f"Could not connect to the callback: {detail or 'connection refused'}."
    if kind in ("ReadError", "RemoteProtocolError", "WriteError"):
        return f"The connection to the callback broke: {detail or kind}."
    return error[:1].upper() + error[1:].rstrip(".") + "."


def pretty_json(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


async def delivery_view(
    runtime: Runtime, org_id: int, instance_id: int, delivery_id: str
) -> dict[str, Any]:
    """One delivery as sent: its body, and each attempt's request and answer headers,
    answer body and what went wrong. NotFound when not the organization's."""
    service = InstanceService(runtime)
    async with transaction(runtime.sessions) as session:
        row = await service.get(session, org_id, instance_id)
        found = await outbox.one_delivery(session, instance_id, delivery_id)
        if found is None:
            raise NotFound(f"delivery {delivery_id}")
        cause = None if row.subscription_active else await outbox.pause_cause(session, row.id)
    note, attempts = found
    timeout = runtime.settings.delivery_timeout
    return {
        "instance": shown(service, row),
        "subscription_active": row.subscription_active,
        "pause_cause": cause.id if cause is not None else None,
        "pause_gone": cause is not None and cause.last_status_code == 410,
        "delivery": {**describe_delivery(note, []), "test": is_test(note.body)},
        "body": pretty_json(note.body),
        "attempts": [
            {
                **describe_attempt(attempt),
                "number": number,
                "problem": in_plain_words(attempt.status_code, attempt.error, timeout),
                "requestHeaders": attempt.request_headers or [],
                "responseHeaders": attempt.response_headers or [],
            }
            for number, attempt in enumerate(attempts, start=1)
        ],
    }


# Where an instance-configuration error belongs on the edit form.
EDIT_FIELDS = {
    "name": "name",
    "tags": "tags",
    "event.notification.callback.url": "callback_url",
    "event.notification.signature.key": "signature_key",
    "event.vendor.type": "vendor_type",
    "event.poller.refresh_interval": "refresh_interval",
}


def edit_values(instance: dict[str, Any]) -> dict[str, Any]:
    """The edit form's fields, filled from the instance as the API shows it (masked)."""
    config = instance.get("configuration", {})
    return {
        "name": instance.get("name", ""),
        "tags": ", ".join(instance.get("tags") or []),
        "callback_url": config.get("event.notification.callback.url") or "",
        "ordered": bool(config.get("event.notification.ordered")),
        "vendor_type": config.get("event.vendor.type") or "webhooks",
        "refresh_interval": config.get("event.poller.refresh_interval") or "",
    }


def edit_body(values: Mapping[str, str]) -> dict[str, Any]:
    """The PATCH body the edit form describes. A blank signature key keeps the one set."""
    for key, value in values.items():
        if len(value) > MAX_FIELD:
            raise InvalidInput(f"{key} is longer than {MAX_FIELD} characters", field=key)
    configuration: dict[str, Any] = {
        "event.notification.callback.url": values.get("callback_url", "").strip(),
        "event.notification.ordered": values.get("ordered") == "on",
        "event.vendor.type": values.get("vendor_type") or "webhooks",
    }
    if values.get("signature_key", "").strip():
        configuration["event.notification.signature.key"] = values["signature_key"].strip()
    if values.get("refresh_interval", "").strip():
        configuration["event.poller.refresh_interval"] = values["refresh_interval"].strip()
    name = values.get("name", "").strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"a name of 1 to {MAX_NAME} characters is required", field="name")
    tags = [tag.strip() for tag in values.get("tags", "").split(",") if tag.strip()]
    return {"name": name, "tags": tags, "configuration": configuration}


def field_message(error: InvalidInput) -> str:
    """An error as said next to its field: without the configuration key it names (the
    field's label says which), as a sentence."""
    text, key = error.message, (error.field or "").removeprefix("configuration.")
    for prefix in (f"{key}: ", f"{key} "):
        if key and text.startswith(prefix):
            text = text[len(prefix) :]
            break
    text = text.strip().rstrip(".")
    return f"{text[:1].upper()}{text[1:]}." if text else input_message(error)


def field_of(error: InvalidInput) -> str:
    """The edit-form field an error is about ("form" when none of them)."""
    field = (error.field or "").removeprefix("configuration.")
    return EDIT_FIELDS.get(field, field if field in EDIT_FIELDS.values() else "form")
