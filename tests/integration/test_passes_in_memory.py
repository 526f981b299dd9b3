"""relaybox's real pass code (claim, pass, index, outbox, poller) on SQLite, against the
in-memory provider of tests/support/memory_connector.py: no HTTP, no sleep; time moves
with the runtime's clock."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from sqlalchemy import select, update

from relaybox.pipeline import changes
from relaybox.pipeline.poller import Poller
from relaybox.services.instances import InstanceService
from relaybox.store import tables
from relaybox.store.db import transaction
from relaybox.store.inbox import Received
from tests.support.memory_world import (
    OWNER,
    World,
    ask,
    connect,
    events,
    instance,
    run_passes,
    world,
)

__all__ = ["world"]  # the fixture


async def test_requests_made_before_a_pass_coalesce_into_one(world: World) -> None:
    account = world.memory.add_account("ada@example.com")
    instance_id = await connect(world, account)
    for name in ("/a.txt", "/b.txt", "/c.txt"):
        world.memory.put(account, name)
    await ask(world, instance_id, times=5)
    assert await run_passes(world) == 1
    assert await events(world, instance_id) == [
        ("CREATED", "/a.txt", None),
        ("CREATED", "/b.txt", None),
        ("CREATED", "/c.txt", None),
    ]
    # Three changes over pages of two: two calls, one pass; nothing is left to claim.
    assert world.memory.calls["changes"] == 2
    assert await run_passes(world) == 0


async def test_webhooks_stored_together_ask_for_one_pass_that_reports_the_newest(
    world: World,
) -> None:
    """Through the receiver's own write path (the inbox's group commit): five webhooks
    naming the account while no pass ran yet make one pass, whose notification carries
    the newest webhook as its raw."""
    account = world.memory.add_account("wen@example.com")
    instance_id = await connect(world, account)
    for name in ("/a.txt", "/b.txt"):
        world.memory.put(account, name)

    def webhook(number: int) -> Received:
        body = {"accounts": [account], "number": number}
        return Received("memory", body, [account], frozenset({"memory-secret"}), lambda _: body)

    stored = await asyncio.gather(*(world.runtime.inbox.submit(webhook(n)) for n in range(5)))
    assert sum(s.asked for s in stored) == 5
    assert await run_passes(world) == 1
    assert await events(world, instance_id) == [
        ("CREATED", "/a.txt", None),
        ("CREATED", "/b.txt", None),
    ]
    async with transaction(world.runtime.sessions) as session:
        [body] = (await session.execute(select(tables.Notification.body))).scalars()
    assert json.loads(body)["message"]["raw"] == {"accounts": [account], "number": 4}
    unsigned = Received("memory", {}, [account], frozenset({"another-app"}), lambda _: {})
    assert (await world.runtime.inbox.submit(unsigned)).asked == 0  # not its app's


async def test_a_pass_that_found_nothing_spaces_the_next_one(world: World) -> None:
    account = world.memory.add_account("bo@example.com")
    instance_id = await connect(world, account)
    await ask(world, instance_id)
    assert await run_passes(world) == 1
    world.memory.put(account, "/late.txt")
    await ask(world, instance_id)
    assert await run_passes(world) == 0  # within the quiet pause after an empty pass
    world.clock.advance(1)
    assert await run_passes(world) == 1
    assert await events(world, instance_id) == [("CREATED", "/late.txt", None)]


async def test_a_cursor_reset_relists_and_reconciles(world: World) -> None:
    account = world.memory.add_account("cy@example.com")
    world.memory.put(account, "/kept.txt")
    world.memory.put(account, "/gone.txt")
    instance_id = await connect(world, account)
    world.memory.reset(account)
    world.memory.remove(account, "/gone.txt")
    world.memory.put(account, "/new.txt")
    await ask(world, instance_id)
    assert await run_passes(world) == 1
    assert await events(world, instance_id) == [
        ("DELETED", "/gone.txt", None),
        ("CREATED", "/new.txt", None),
    ]
    assert world.memory.calls["list_all"] >= 2  # the connect's listing, then the relist


async def test_an_expired_access_token_is_refreshed_before_the_pass(world: World) -> None:
    account = world.memory.add_account("di@example.com")
    instance_id = await connect(world, account)
    world.memory.put(account, "/after-an-hour.txt")
    world.clock.advance(2 * 3600)  # past the token's hour
    await ask(world, instance_id)
    assert await run_passes(world) == 1
    assert world.memory.calls["refresh"] == 1
    assert await events(world, instance_id) == [("CREATED", "/after-an-hour.txt", None)]
    row = await instance(world, instance_id)
    creds = InstanceService(world.runtime).credentials(row)
    assert creds.access_token in world.memory.access  # the new token is stored, sealed
    assert row.access_token_expires_at is not None
    assert row.access_token_expires_at > world.clock.now()


async def test_a_token_the_provider_calls_expired_is_refreshed_and_the_read_repeated(
    world: World,
) -> None:
    account = world.memory.add_account("ed@example.com")
    instance_id = await connect(world, account)
    row = await instance(world, instance_id)
    token = InstanceService(world.runtime).credentials(row).access_token
    assert token is not None
    world.memory.access[token] = (account, world.clock.now())  # expired early
    world.memory.put(account, "/x.txt")
    await ask(world, instance_id)
    assert await run_passes(world) == 1
    assert world.memory.calls["refresh"] == 1
    assert await events(world, instance_id) == [("CREATED", "/x.txt", None)]


async def test_a_revoked_grant_marks_the_instance_invalid(world: World) -> None:
    account = world.memory.add_account("fy@example.com")
    instance_id = await connect(world, account)
    world.memory.put(account, "/never.txt")
    world.memory.revoke_grants(account)
    await ask(world, instance_id)
    assert await run_passes(world) == 1
    row = await instance(world, instance_id)
    assert row.valid is False
    assert "revoked" in (row.status_message or "")
    assert await events(world, instance_id) == []
    assert await run_passes(world) == 0  # an invalid instance gets no passes


async def test_a_pass_whose_lease_was_taken_over_writes_nothing(world: World) -> None:
    account = world.memory.add_account("gu@example.com")
    instance_id = await connect(world, account)
    before = (await instance(world, instance_id)).cursor
    world.memory.put(account, "/contested.txt")
    await ask(world, instance_id)
    [claimed] = await changes.claim(world.runtime, OWNER)
    async with transaction(world.runtime.sessions) as session:
        await session.execute(
            update(tables.Instance)
            .where(tables.Instance.id == instance_id)
            .values(lease_owner="another-worker")
        )
    commits = changes.pass_commits(world.runtime)
    try:
        await changes.ChangePass(world.runtime, claimed, commits).run()
    finally:
        await commits.close()
    assert await events(world, instance_id) == []
    row = await instance(world, instance_id)
    assert row.cursor == before and row.lease_owner == "another-worker"


async def test_polling_asks_for_a_pass_when_the_clock_says_it_is_due(world: World) -> None:
    account = world.memory.add_account("ha@example.com")
    instance_id = await connect(world, account, vendor_type="polling")
    poller = Poller(world.runtime)
    await poller.tick()  # schedules the new polling instance
    world.memory.put(account, "/polled.txt")
    assert await run_passes(world) == 0
    due = (await instance(world, instance_id)).next_poll_at
    assert due is not None
    world.clock.at = due + timedelta(seconds=1)
    assert await poller.tick() == 1
    assert await run_passes(world) == 1
    assert await events(world, instance_id) == [("CREATED", "/polled.txt", None)]


async def test_a_refresh_the_provider_refuses_marks_the_instance_invalid(world: World) -> None:
    account = world.memory.add_account("io@example.com")
    instance_id = await connect(world, account)
    world.memory.refresh_tokens.clear()  # the refresh token was revoked
    world.clock.advance(2 * 3600)  # and the access token has expired
    await ask(world, instance_id)
    assert await run_passes(world) == 1
    row = await instance(world, instance_id)
    assert row.valid is False and "invalid_grant" in (row.status_message or "")
