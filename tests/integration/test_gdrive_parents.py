"""Google Drive end to end: objects whose folder comes after them are delivered at their
true path (connectors/paging.with_parents).

Drive's change feed lists each file at its latest change, so files put in a new folder
that is then renamed come before the folder, and a pass boundary may fall between them;
a listing split between the foreground and the workers may bring a folder after its
content. Either way the folder is read ahead, so nothing is placed at the root by
mistake and no edit later shows up as a false move.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from relaybox.pipeline import changes
from relaybox.store import db, tables
from tests.support.gdrive import DriveStack, running_drive_stack
from tests.support.servers import eventually

# Polled every ten minutes: a poll happens only when the test moves the clock past one.
POLLING = {"event.vendor.type": "polling", "event.poller.refresh_interval": "10"}
POLL = 601.0

Summary = list[tuple[str, str, str, str | None]]


def summary(events: list[dict[str, Any]]) -> Summary:
    return sorted((e["eventType"], e["objectType"], e["path"], e.get("newPath")) for e in events)


def has_events(count: int) -> Any:
    return lambda receiver: len(receiver.events()) >= count


async def stored(stack: DriveStack, instance_id: int) -> tuple[bool, Summary]:
    """(whether the instance has no pass pending, running or listing left; its events as
    stored, which its passes write with the cursor)."""
    engine = db.create_engine(stack.settings.resolved_database_url)
    instance, event = tables.Instance, tables.Event
    try:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    select(
                        instance.sync_requested,
                        instance.sync_done,
                        instance.indexing,
                        instance.lease_owner,
                    ).where(instance.id == instance_id)
                )
            ).one()
            rows = await connection.execute(
                select(event.event_type, event.object_type, event.path, event.new_path).where(
                    event.instance_id == instance_id
                )
            )
            events = sorted((r[0], r[1], r[2], r[3]) for r in rows)
    finally:
        await engine.dispose()
    idle = row.sync_requested <= row.sync_done and not row.indexing and row.lease_owner is None
    return idle, events


async def settled(stack: DriveStack, instance_id: int) -> Summary:
    """The instance's stored events, once it has no pass left to make."""

    async def idle() -> bool:
        return (await stored(stack, instance_id))[0]

    await eventually(idle, timeout=20, interval=0.05)
    return (await stored(stack, instance_id))[1]


async def test_files_of_a_renamed_new_folder_read_before_it_keep_their_true_paths(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One change a page and a pass: the feed's order decides what each pass knows.
    monkeypatch.setattr(changes, "MAX_PASS_ENTRIES", 1)
    async with running_drive_stack(tmp_path, database_url, googledrive_page_size=1) as stack:
        account = await stack.new_account("parents@example.com")
        instance = await stack.connect(account, **POLLING)
        new = await stack.create(account, "New", folder=True)
        sub = await stack.create(account, "Sub", parent=new, folder=True)
        deep = await stack.create(account, "c.txt", parent=sub, content="c")
        top = await stack.create(account, "a.txt", parent=new, content="a")
        # Renamed last, both folders come after the files in the feed: c.txt, a.txt,
        # Photos, 2026, each in a pass of its own.
        await stack.update(account, new, name="Photos")
        await stack.update(account, sub, name="2026")
        await stack.advance(POLL)
        created = [
            ("CREATED", "files", "/Photos/2026/c.txt", None),
            ("CREATED", "files", "/Photos/a.txt", None),
            ("CREATED", "folders", "/Photos", None),
            ("CREATED", "folders", "/Photos/2026", None),
        ]
        await stack.receiver.wait_for(has_events(len(created)), timeout=20)
        assert await settled(stack, instance["id"]) == created

        # Edits afterwards are edits where the files are, not moves from the root.
        await stack.update(account, deep, content="c, revised")
        await stack.update(account, top, content="a, revised")
        await stack.advance(POLL)
        expected = sorted(
            [
                *created,
                ("UPDATED", "files", "/Photos/2026/c.txt", None),
                ("UPDATED", "files", "/Photos/a.txt", None),
            ]
        )
        await stack.receiver.wait_for(has_events(len(expected)), timeout=20)
        assert await settled(stack, instance["id"]) == expected
        assert summary(stack.receiver.events()) == expected


async def test_a_listing_split_before_a_folder_indexes_its_content_at_its_true_path(
    tmp_path: Path, database_url: str
) -> None:
    settings = {"googledrive_page_size": 1, "index_foreground_limit": 1}
    async with running_drive_stack(tmp_path, database_url, **settings) as stack:
        account = await stack.new_account("listing@example.com")
        inner = await stack.create(account, "Inner", folder=True)
        report = await stack.create(account, "report.txt", parent=inner, content="r")
        outer = await stack.create(account, "Outer", folder=True)
        await stack.update(account, inner, parent=outer)
        # The listing gives folders first, oldest first: Inner (inside Outer), then Outer,
        # then report.txt. Only Inner is listed in the foreground; the workers list the rest.
        instance = await stack.connect(account, **POLLING)
        assert await settled(stack, instance["id"]) == []  # a listing reports nothing

        await stack.update(account, report, content="r, revised")
        await stack.advance(POLL)
        await stack.receiver.wait_for(has_events(1), timeout=20)
        expected = [("UPDATED", "files", "/Outer/Inner/report.txt", None)]
        assert await settled(stack, instance["id"]) == expected
        assert summary(stack.receiver.events()) == expected
