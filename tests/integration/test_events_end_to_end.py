"""The walking skeleton: a Dropbox change becomes a signed, standardized event at the callback.

Real servers on free ports: the Dropbox sandbox, relaybox (API, receiver and workers) and a
user's callback receiver. Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook

from tests.support.stack import APP_SECRET, AUTH, Stack, running_stack

SIGNATURE_KEY = "sig-key-123"


def summary(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["eventType"], e["objectType"], e["path"], e.get("newPath")) for e in events]


async def wait_events(stack: Stack, count: int) -> list[dict[str, Any]]:
    await stack.receiver.wait_for(lambda r: len(r.events()) >= count)
    return stack.receiver.events()


async def test_changes_arrive_as_signed_standard_events(tmp_path: Path, database_url: str) -> None:
    async with running_stack(tmp_path, database_url) as stack:
        account = await stack.new_account("ada@example.com")
        await stack.upload(account, "/Homework/math/Prime_Numbers.txt", b"2 3 5 7")
        instance = await stack.connect(account, "my dropbox")
        assert instance["providerData"]["accountId"] == account
        assert instance["eventsEnabled"] is True

        await stack.upload(account, "/notes.txt", b"first draft")
        events = await wait_events(stack, 1)
        await stack.upload(account, "/notes.txt", b"second draft")
        events = await wait_events(stack, 2)
        await stack.folder(account, "/Archive")
        events = await wait_events(stack, 3)
        await stack.move(account, "/notes.txt", "/Archive/notes-final.txt")
        events = await wait_events(stack, 4)
        await stack.remove(account, "/Archive/notes-final.txt")
        events = await wait_events(stack, 5)

        assert summary(events) == [
            ("CREATED", "files", "/notes.txt", None),
            ("UPDATED", "files", "/notes.txt", None),
            ("CREATED", "folders", "/Archive", None),
            ("UPDATED", "files", "/notes.txt", "/Archive/notes-final.txt"),
            ("DELETED", "files", "/Archive/notes-final.txt", None),
        ]
        file_ids = {e["objectId"] for e in events if e["objectType"] == "files"}
        assert len(file_ids) == 1 and next(iter(file_ids)).startswith("id:")
        assert events[2]["objectId"].startswith("id:") and events[2]["objectId"] not in file_ids
        assert all(e["elementKey"] == "dropbox" and e["hubKey"] == "documents" for e in events)

        for item in stack.receiver.received:
            body = item.json()
            message = body["message"]
            assert message["eventId"] == body["id"] == item.headers["elements-webhook-id"]
            assert message["instanceId"] == message["instance_id"] == instance["id"]
            assert message["instanceName"] == "my dropbox"
            assert message["instanceTags"] == ["team-a"]
            assert message["accountId"] == account
            assert message["raw"]["list_folder"]["accounts"] == [account]
            assert len(message["relaybox"]["entries"]) == len(message["events"])
            assert item.headers["content-type"] == "application/json"
            assert item.headers["user-agent"].startswith("relaybox/")
            expected = base64.b64encode(
                hmac.new(SIGNATURE_KEY.encode(), item.body, hashlib.sha256).digest()
            ).decode()
            assert item.headers["elements-webhook-signature"] == f"sha256={expected}"
            verifier = Webhook("whsec_" + base64.b64encode(SIGNATURE_KEY.encode()).decode())
            assert verifier.verify(item.body, item.headers) == body
            assert item.headers["webhook-id"] == body["id"]

        async def all_delivered() -> Any:
            # The receiver has the last event before relaybox records its answer.
            while True:
                logged = await stack.http.get(
                    f"{stack.api}/instances/{instance['id']}/events", headers=AUTH
                )
                assert logged.status_code == 200
                if {e["status"] for e in logged.json()} == {"NOTIFIED"}:
                    return logged
                await asyncio.sleep(0.05)

        logged = await asyncio.wait_for(all_delivered(), 10)
        # One entry per notification, newest first (SPEC section 9), each naming the
        # notification its callback received.
        entries = logged.json()
        sent = [item.json()["id"] for item in stack.receiver.received]
        assert [e["id"] for e in entries] == sent[::-1]
        assert [x["eventType"] for e in entries for x in e["notifiedData"][::-1]] == [
            "DELETED",
            "UPDATED",
            "CREATED",
            "UPDATED",
            "CREATED",
        ]
        assert {e["deliveryStatus"] for e in entries} == {"delivered"}

        metrics = (await stack.http.get(f"{stack.relaybox}/metrics")).text
        for line in (
            'relaybox_events_total{event_type="DELETED"}',
            'relaybox_delivery_attempts_total{verdict="DELIVERED"}',
            'relaybox_webhooks_received_total{element="dropbox",outcome="accepted"}',
            "relaybox_notifications_pending 0.0",
        ):
            assert line in metrics, line


async def test_instance_answers_never_contain_secrets(tmp_path: Path, database_url: str) -> None:
    async with running_stack(tmp_path, database_url) as stack:
        account = await stack.new_account("grace@example.com")
        created = await stack.connect(account)
        listed = await stack.http.get(f"{stack.api}/instances", headers=AUTH)
        one = await stack.http.get(f"{stack.api}/instances/{created['id']}", headers=AUTH)
        patched = await stack.http.patch(
            f"{stack.api}/instances/{created['id']}",
            json={"tags": ["b"], "configuration": {"event.notification.signature.key": "new-key"}},
            headers=AUTH,
        )
        assert patched.status_code == 200, patched.text
        issued = stack.sandbox_app.state.sandbox.tokens
        tokens = [*issued.access, *issued.refresh]
        assert tokens
        for answer in (json.dumps(created), listed.text, one.text, patched.text):
            for secret in (APP_SECRET, SIGNATURE_KEY, "new-key", "sl.", *tokens):
                assert secret not in answer
        config = one.json()["configuration"]
        assert config["oauth.api.secret"] == "********"
        assert config["event.notification.signature.key"] == "********"
        assert config["oauth.api.key"] == "********"  # masked too (SPEC 9)
        assert patched.json()["tags"] == ["b"]
