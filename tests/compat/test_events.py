"""Event notifications and the event log, as an Open Connectors client reads them.

Runs on SQLite and PostgreSQL (the `database_url` fixture).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.compat.anchor import (
    PLATFORM,
    SIGNATURE_KEY,
    created,
    elements_signature,
    until,
)
from tests.support.servers import Received
from tests.support.stack import Stack, running_stack

ANCHOR_STATUSES = {"NEW", "RECEIVED", "DISPATCHED", "CONSUMED", "NOTIFIED", "FAILED"}
"""churros src/test/platform/events/assets/event.schema.json lists the first five; FAILED
(retries exhausted) is SPEC section 9's and has no public source."""


async def first_notification(stack: Stack, account: str) -> Received:
    await stack.upload(account, "/Homework/math/Prime_Numbers.txt", b"2 3 5 7")
    await stack.receiver.wait_for(lambda r: len(r.received) >= 1)
    return stack.receiver.received[0]


async def test_signature_verifies_exactly_as_the_docs_show(
    tmp_path: Path, database_url: str
) -> None:
    """devportal docs/guides/event-management/security.md: with a Callback Notification
    Signature Key the notification carries `Elements-Webhook-Signature: sha256=<base64
    HMAC-SHA256(key, raw body)>`; churros src/test/platform/events/events.js checks the same
    and that `elements-webhook-id` is not empty."""
    async with running_stack(tmp_path, database_url) as stack:
        account = await stack.new_account("sig@example.com")
        await created(stack, account, events_to=stack.callback_url, signature_key=SIGNATURE_KEY)
        item = await first_notification(stack, account)
        assert item.headers["elements-webhook-signature"] == elements_signature(
            SIGNATURE_KEY, item.body
        )
        assert item.headers["elements-webhook-id"]
        assert item.headers["content-type"].startswith("application/json")


async def test_no_signature_key_no_signature(tmp_path: Path, database_url: str) -> None:
    """devportal docs/guides/event-management/security.md: "All Element Instances containing a
    Callback Notification Signature Key will include the Elements-Webhook-Signature header";
    the key is optional (devportal _includes/Elements/dropbox/events.md)."""
    async with running_stack(tmp_path, database_url) as stack:
        account = await stack.new_account("nosig@example.com")
        await created(stack, account, events_to=stack.callback_url, signature_key=None)
        item = await first_notification(stack, account)
        assert "elements-webhook-signature" not in item.headers


async def test_notification_payload_fields(tmp_path: Path, database_url: str) -> None:
    """churros src/test/platform/events/events.js reads `message.eventId` and expects it unique
    per notification; formulas read `trigger.body.message.events[0].objectType` and
    `.eventType` (devportal docs/legacy/formulas/use-cases.md); each event carries the
    standardized `objectType`, `objectId`, `eventType`, `elementKey` (docs.cloud-elements.com
    "Events Overview") with `eventType` one of CREATED, UPDATED, DELETED, UNKNOWN
    (docs.cloud-elements.com/home/ad8bc19, "Requirements for Adding Webhook Support");
    `instanceId` names the instance (devportal docs/guides/event-management/triggering.md)."""
    async with running_stack(tmp_path, database_url) as stack:
        account = await stack.new_account("fields@example.com")
        instance = await created(stack, account, events_to=stack.callback_url)
        await stack.upload(account, "/a.txt", b"a")
        await stack.receiver.wait_for(lambda r: len(r.events()) >= 1)
        await stack.upload(account, "/b.txt", b"b")
        await stack.receiver.wait_for(lambda r: len(r.events()) >= 2)
        ids = []
        for item in stack.receiver.received:
            message = item.json()["message"]
            ids.append(message["eventId"])
            assert message["instanceId"] == instance["id"]
            assert "raw" in message
            for event in message["events"]:
                assert event["elementKey"] == "dropbox"
                assert event["eventType"] in {"CREATED", "UPDATED", "DELETED", "UNKNOWN"}
                assert event["objectType"] and event["objectId"]
        assert all(ids) and len(set(ids)) == len(ids)


async def test_raw_is_the_provider_payload_for_this_instance(
    tmp_path: Path, database_url: str
) -> None:
    """docs.cloud-elements.com "Events Overview": "the full raw/vendor body is still included
    in each notification"; churros src/core/suite.js (itPolling) reads the provider object
    from `message.raw`. SPEC section 9: for Dropbox, the webhook body with only the
    instance's own account left in it."""
    async with running_stack(tmp_path, database_url) as stack:
        ada = await stack.new_account("ada@example.com")
        bob = await stack.new_account("bob@example.com")
        await created(stack, ada, "ada", events_to=stack.callback_url)
        await created(stack, bob, "bob", events_to=stack.callback_url)
        await stack.upload(ada, "/ada.txt", b"a")
        await stack.upload(bob, "/bob.txt", b"b")
        await stack.receiver.wait_for(lambda r: len(r.received) >= 2)
        seen = set()
        for item in stack.receiver.received:
            message = item.json()["message"]
            own = message["accountId"]
            assert message["raw"]["list_folder"]["accounts"] == [own]
            seen.add(own)
        assert seen == {ada, bob}


async def delivered(stack: Stack, instance: Any) -> str:
    """Wait for a notification and return its `message.eventId`."""
    account = instance["providerData"]["accountId"]
    item = await first_notification(stack, account)
    return str(item.json()["message"]["eventId"])


async def test_event_log_by_message_event_id(tmp_path: Path, database_url: str) -> None:
    """churros src/test/platform/events/events.js: with `eventId = message.eventId`,
    `GET instances/events/{eventId}` and `GET instances/{id}/events/{eventId}` answer the
    event with `status` 'NOTIFIED' once delivered."""
    async with running_stack(tmp_path, database_url) as stack:
        account = await stack.new_account("log@example.com")
        instance = await created(stack, account, events_to=stack.callback_url)
        event_id = await delivered(stack, instance)
        for path in (
            f"/instances/events/{event_id}",
            f"/instances/{instance['id']}/events/{event_id}",
        ):

            async def notified(path: str = path) -> Any:
                answer = await stack.http.get(f"{stack.api}{path}", headers=PLATFORM)
                assert answer.status_code == 200, (path, answer.text)
                return answer.json()["status"] == "NOTIFIED"

            await until(notified)


def check_entry(entry: dict[str, Any]) -> None:
    """churros src/test/platform/events/assets/event.schema.json: required `id` (string),
    `eventDate` (string), `status` (enum), `providerData` (string); `notifiedData` an array."""
    assert isinstance(entry["id"], str) and entry["id"]
    assert isinstance(entry["eventDate"], str)
    assert entry["status"] in ANCHOR_STATUSES
    assert isinstance(entry["providerData"], str)
    if "notifiedData" in entry:
        assert isinstance(entry["notifiedData"], list)


async def test_event_log_entries_carry_the_anchor_fields(tmp_path: Path, database_url: str) -> None:
    """churros src/test/platform/events/events.js validates `GET instances/{id}/events` and
    `GET instances/events` (with `pageSize: 10`) against events.schema.json, an array of
    event.schema.json entries."""
    async with running_stack(tmp_path, database_url) as stack:
        account = await stack.new_account("entries@example.com")
        instance = await created(stack, account, events_to=stack.callback_url)
        await delivered(stack, instance)
        for path, params in (
            (f"/instances/{instance['id']}/events", {}),
            ("/instances/events", {"pageSize": "10"}),
        ):
            answer = await stack.http.get(f"{stack.api}{path}", params=params, headers=PLATFORM)
            assert answer.status_code == 200, answer.text
            assert answer.json()
            for entry in answer.json():
                check_entry(entry)


async def test_event_log_status_while_retrying_and_after(tmp_path: Path, database_url: str) -> None:
    """The anchor's status values (churros event.schema.json): DISPATCHED while the
    notification is being sent or retried (devportal docs/guides/event-management/tips.md,
    "Retry Logic"), then FAILED when retries are exhausted (SPEC section 9; not in the public
    record)."""
    async with running_stack(tmp_path, database_url, retry_schedule="1,1") as stack:
        stack.receiver.statuses.extend([500] * 10)
        account = await stack.new_account("retry@example.com")
        instance = await created(stack, account, events_to=stack.callback_url)
        await first_notification(stack, account)
        url = f"{stack.api}/instances/{instance['id']}/events"

        async def status() -> set[str]:
            answer = await stack.http.get(url, headers=PLATFORM)
            assert answer.status_code == 200, answer.text
            return {entry["status"] for entry in answer.json()}

        assert await status() <= {"RECEIVED", "DISPATCHED"}  # never NOTIFIED: all answers 500

        async def failed() -> bool:
            return await status() == {"FAILED"}

        await until(failed)
