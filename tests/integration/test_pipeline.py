"""Pipeline behaviour a callback owner sees: batching, retries with one id, the attempt log."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest

from relaybox.pipeline import changes
from tests.support.servers import eventually
from tests.support.stack import AUTH, running_stack


async def test_one_pass_is_split_into_notifications_of_at_most_20(
    tmp_path: Path, database_url: str
) -> None:
    # The sandbox holds its webhook 3 s after the first change: all 25 uploads land in one
    # window (and so one pass) even on a busy machine.
    async with running_stack(tmp_path, database_url, webhook_delay=3.0) as stack:
        account = await stack.new_account("batch@example.com")
        await stack.folder(account, "/batch")
        await stack.connect(account)
        await asyncio.gather(
            *(stack.upload(account, f"/batch/{n:02}.txt", b"x") for n in range(25))
        )
        await stack.receiver.wait_for(lambda r: len(r.events()) >= 25)
        sizes = [len(item.json()["message"]["events"]) for item in stack.receiver.received]
        assert sorted(sizes) == [5, 20]  # unordered instances may deliver them concurrently
        paths = [e["path"] for e in stack.receiver.events()]
        assert sorted(paths) == [f"/batch/{n:02}.txt" for n in range(25)]
        assert {e["eventType"] for e in stack.receiver.events()} == {"CREATED"}
        ids = {item.json()["id"] for item in stack.receiver.received}
        assert len(ids) == 2


async def test_failed_attempts_are_retried_with_the_same_id_and_listed(
    tmp_path: Path, database_url: str
) -> None:
    async with running_stack(tmp_path, database_url, retry_schedule="0.2,0.2,0.2,0.2") as stack:
        stack.receiver.statuses = [500, 500, 500]
        account = await stack.new_account("retry@example.com")
        instance = await stack.connect(account)
        await stack.upload(account, "/retry.txt", b"x")
        await stack.receiver.wait_for(lambda r: len(r.received) >= 4)
        bodies = [item.body for item in stack.receiver.received]
        assert len(set(bodies)) == 1, "every retry sends the same bytes"
        ids = {item.headers["elements-webhook-id"] for item in stack.receiver.received}
        assert len(ids) == 1

        async def delivered() -> list[dict[str, Any]] | None:
            listed = await stack.deliveries(instance["id"])
            return listed if listed and listed[0]["status"] == "delivered" else None

        listed = await eventually(delivered, 10)
        assert len(listed) == 1
        assert listed[0]["id"] in ids
        assert [a["statusCode"] for a in listed[0]["attempts"]] == [500, 500, 500, 200]
        assert all(a["latencyMs"] >= 0 and a["date"] for a in listed[0]["attempts"])
        await asyncio.sleep(0.5)
        assert len(stack.receiver.received) == 4, "nothing is sent after success"


async def test_large_accounts_are_indexed_in_the_background(
    tmp_path: Path, database_url: str
) -> None:
    async with running_stack(
        tmp_path, database_url, index_foreground_limit=5, dropbox_page_limit=3
    ) as stack:
        account = await stack.new_account("big@example.com")
        for n in range(20):
            await stack.upload(account, f"/old/{n:02}.txt", b"x")
        instance = await stack.connect(account)
        assert instance["indexing"] is True

        async def indexed() -> bool:
            answer = await stack.http.get(f"{stack.api}/instances/{instance['id']}", headers=AUTH)
            return answer.json()["indexing"] is False

        await eventually(indexed, 10, interval=0.05)
        await stack.upload(account, "/old/07.txt", b"edited")
        await stack.upload(account, "/new.txt", b"new")
        await stack.receiver.wait_for(lambda r: len(r.events()) >= 2)
        await asyncio.sleep(0.3)
        assert sorted((e["eventType"], e["path"]) for e in stack.receiver.events()) == [
            ("CREATED", "/new.txt"),
            ("UPDATED", "/old/07.txt"),
        ], "the listed account produced no events; it was indexed"


async def test_webhooks_during_a_pass_coalesce_into_one_more_pass(
    tmp_path: Path, database_url: str
) -> None:
    async with running_stack(tmp_path, database_url) as stack:
        assert stack.sandbox_log is not None
        account = await stack.new_account("coalesce@example.com")
        await stack.connect(account)
        continues = "/2/files/list_folder/continue"
        await stack.control(
            "POST",
            "/faults",
            json={
                "route": "files/list_folder/continue",
                "status": 200,
                "count": 1,
                "delay_ms": 1500,
            },
        )
        await stack.upload(account, "/first.txt", b"x")
        await asyncio.sleep(0.4)  # webhook sent, the slow pass (1.5 s) is under way
        for n in range(5):
            await stack.upload(account, f"/during-{n}.txt", b"x")
            await asyncio.sleep(0.1)
        await stack.receiver.wait_for(lambda r: len(r.events()) >= 6)
        await asyncio.sleep(0.5)
        spans = sorted(
            (start, end) for path, start, end in stack.sandbox_log.spans if path == continues
        )
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans)), (
            "never two passes over one cursor at once"
        )
        assert len(spans) == 2, "five webhooks during the first pass make exactly one more pass"
        assert sorted(e["path"] for e in stack.receiver.events()) == sorted(
            ["/first.txt", *(f"/during-{n}.txt" for n in range(5))]
        )


async def test_a_change_during_background_indexing_is_delivered(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(changes, "MAX_PASS_ENTRIES", 3)  # indexing takes several passes
    async with running_stack(
        tmp_path, database_url, index_foreground_limit=3, dropbox_page_limit=3
    ) as stack:
        account = await stack.new_account("busy@example.com")
        for n in range(30):
            await stack.upload(account, f"/old/{n:02}.txt", b"x")
        await stack.control(
            "POST",
            "/faults",
            json={
                "route": "files/list_folder/continue",
                "status": 200,
                "count": 6,
                "delay_ms": 300,
            },
        )
        instance = await stack.connect(account)
        assert instance["indexing"] is True
        await asyncio.sleep(0.2)
        await stack.upload(account, "/new-during-indexing.txt", b"n")
        await stack.receiver.wait_for(lambda r: len(r.events()) >= 1, timeout=15)
        assert [(e["eventType"], e["path"]) for e in stack.receiver.events()] == [
            ("CREATED", "/new-during-indexing.txt")
        ], "delivered without waiting for another change, and the listing itself is silent"
