"""The event log (SPEC section 9): one entry per notification, addressed by the
`message.eventId` its callback received; ids from earlier releases (numbers) still work;
`message.raw` of a polled instance is Dropbox's `list_folder/continue` answer.

Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from relaybox.store import tables
from relaybox.store.db import create_engine, session_factory, transaction
from tests.support.stack import AUTH, Stack, running_stack

POLLING: dict[str, Any] = {"event.vendor.type": "polling", "event.poller.refresh_interval": "0.005"}


async def event_row_ids(database_url: str, instance_id: int) -> list[int]:
    """The per-object `events` rows' ids: what the event log answered in earlier releases."""
    engine = create_engine(database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            found = await session.scalars(
                select(tables.Event.id).where(tables.Event.instance_id == instance_id)
            )
            return list(found.all())
    finally:
        await engine.dispose()


async def get(stack: Stack, path: str, **params: str) -> Any:
    return await stack.http.get(f"{stack.api}{path}", params=params, headers=AUTH)


async def test_polled_raw_is_the_continue_answer(tmp_path: Path, database_url: str) -> None:
    async with running_stack(tmp_path, database_url, min_poll_interval=0.2) as stack:
        account = await stack.new_account("polled@example.com")
        instance = await stack.connect(account, "polled", **POLLING)
        await stack.upload(account, "/p.txt", b"p")
        await stack.receiver.wait_for(lambda r: len(r.events()) >= 1)
        item = stack.receiver.received[0].json()
        message = item["message"]
        assert set(message["raw"]) == {"entries", "cursor", "has_more"}
        assert message["raw"]["entries"] == message["relaybox"]["entries"]
        assert [e["path_lower"] for e in message["raw"]["entries"]] == ["/p.txt"]
        assert message["raw"]["has_more"] is False and message["raw"]["cursor"]

        answer = await get(stack, f"/instances/{instance['id']}/events/{message['eventId']}")
        assert answer.status_code == 200, answer.text
        entry = answer.json()
        assert entry["id"] == entry["notificationId"] == message["eventId"]
        assert json.loads(entry["providerData"]) == message["raw"]
        assert entry["notifiedData"] == message["events"]
        assert entry["instanceId"] == instance["id"] and entry["eventCount"] == 1
        assert entry["notification"]["body"] == stack.receiver.received[0].body.decode()


async def test_ids_from_earlier_releases_and_scoping(tmp_path: Path, database_url: str) -> None:
    async with running_stack(tmp_path, database_url) as stack:
        ada = await stack.connect(await stack.new_account("ada@example.com"), "ada")
        bob_account = await stack.new_account("bob@example.com")
        bob = await stack.connect(bob_account, "bob")
        await stack.upload(bob_account, "/b.txt", b"b")
        await stack.receiver.wait_for(lambda r: len(r.events()) >= 1)
        event_id = stack.receiver.received[0].json()["message"]["eventId"]
        (number,) = await event_row_ids(database_url, bob["id"])

        for path in (f"/instances/events/{number}", f"/instances/{bob['id']}/events/{number}"):
            answer = await get(stack, path)
            assert answer.status_code == 200, (path, answer.text)
            assert answer.json()["id"] == event_id

        # Another instance's entry is not found through this one; neither is nonsense.
        for path in (
            f"/instances/{ada['id']}/events/{event_id}",
            f"/instances/{ada['id']}/events/{number}",
            f"/instances/events/{2**70}",
            "/instances/events/no-such-event",
        ):
            answer = await get(stack, path)
            assert answer.status_code == 404, (path, answer.text)
            assert answer.json()["message"]


async def test_status_filter_takes_both_vocabularies(tmp_path: Path, database_url: str) -> None:
    async with running_stack(tmp_path, database_url) as stack:
        account = await stack.new_account("filter@example.com")
        instance = await stack.connect(account)
        await stack.upload(account, "/f.txt", b"f")
        await stack.receiver.wait_for(lambda r: len(r.events()) >= 1)
        path = f"/instances/{instance['id']}/events"

        async def notified() -> None:
            # The receiver has the notification before relaybox records its answer.
            while len((await get(stack, path, status="NOTIFIED")).json()) != 1:
                await asyncio.sleep(0.05)

        await asyncio.wait_for(notified(), 10)
        assert len((await get(stack, path, status="delivered")).json()) == 1
        for status in ("RECEIVED", "DISPATCHED", "FAILED", "pending"):
            assert (await get(stack, path, status=status)).json() == [], status
        refused = await get(stack, path, status="CONSUMED")
        assert refused.status_code == 400 and "status" in refused.json()["message"]
