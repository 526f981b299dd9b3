"""The push channel keeper (pipeline/channels.py) on SQLite against the in-memory provider
with channels (as Google Drive has them): made, renewed before they end, stopped when not
wanted, tried again after a failure; time moves with the runtime's clock, never a sleep."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from relaybox.pipeline.channels import CHANNEL_LEASE, ChannelKeeper
from relaybox.store import tables
from relaybox.store.db import transaction
from tests.support.memory_world import World, connect, events, memory_world, run_passes

LIFETIME = 86_400  # the defaults: a channel lasts a day, renewed an hour before it ends
RENEW = 3_600


@pytest.fixture
async def pushed(tmp_path: Path) -> AsyncIterator[World]:
    async with memory_world(tmp_path, push_channels=True) as made:
        yield made


async def stored_channels(world: World) -> list[str]:
    async with transaction(world.runtime.sessions) as session:
        rows = await session.execute(
            select(tables.PushChannel.channel_id).order_by(tables.PushChannel.created_at)
        )
        return [row[0] for row in rows]


async def test_a_channel_is_made_once_and_renewed_before_it_ends(pushed: World) -> None:
    keeper = ChannelKeeper(pushed.runtime)
    watches = pushed.memory.watches
    await connect(pushed, pushed.memory.add_account("a@example.com"))
    assert await keeper.tick() == 1
    [first] = watches.live()
    assert await stored_channels(pushed) == [first]
    assert watches.watches[first].token not in str(await stored_channels(pushed))
    assert await keeper.tick() == 0  # it lasts: nothing to do

    pushed.clock.advance(LIFETIME - RENEW - 60)  # a minute before the renewal margin
    assert await keeper.tick() == 0
    pushed.clock.advance(120)  # inside the margin: a new channel, the old one stopped
    assert await keeper.tick() == 1
    [second] = watches.live()
    assert second != first and watches.watches[first].stopped
    assert await stored_channels(pushed) == [second]
    assert watches.watches[second].expires_at > watches.watches[first].expires_at


async def test_channels_of_instances_that_no_longer_want_one_are_stopped(pushed: World) -> None:
    keeper = ChannelKeeper(pushed.runtime)
    watches = pushed.memory.watches
    instance_id = await connect(pushed, pushed.memory.add_account("b@example.com"))
    polled_id = await connect(
        pushed, pushed.memory.add_account("c@example.com"), vendor_type="polling"
    )
    assert await keeper.tick() == 1  # the polling instance gets none
    [channel] = watches.live()
    assert watches.watches[channel].account_id == "acct-1"
    async with transaction(pushed.runtime.sessions) as session:
        await session.execute(
            update(tables.Instance)
            .where(tables.Instance.id == instance_id)
            .values(vendor_type="polling")
        )
    assert await keeper.tick() == 0
    assert watches.live() == [] and watches.watches[channel].stopped
    assert await stored_channels(pushed) == []
    async with transaction(pushed.runtime.sessions) as session:
        await session.execute(
            update(tables.Instance)
            .where(tables.Instance.id.in_([instance_id, polled_id]))
            .values(vendor_type="webhooks")
        )
    assert await keeper.tick() == 2  # switched back: each gets a channel of its own
    assert len(watches.live()) == 2


async def test_a_failed_watch_leaves_no_row_and_is_tried_again_after_the_lease(
    pushed: World,
) -> None:
    keeper = ChannelKeeper(pushed.runtime)
    pushed.memory.watches.failures = 1
    await connect(pushed, pushed.memory.add_account("d@example.com"))
    assert await keeper.tick() == 0
    assert await stored_channels(pushed) == []
    assert await keeper.tick() == 0  # the instance's channel lease holds it back...
    pushed.clock.advance(CHANNEL_LEASE.total_seconds() + 1)
    assert await keeper.tick() == 1  # ...until it ends
    assert len(pushed.memory.watches.live()) == 1


async def test_an_expired_access_token_is_refreshed_to_make_a_channel(pushed: World) -> None:
    keeper = ChannelKeeper(pushed.runtime)
    await connect(pushed, pushed.memory.add_account("e@example.com"))
    pushed.clock.advance(2 * 3600)  # past the access token's life
    assert await keeper.tick() == 1
    assert pushed.memory.calls["refresh"] == 1


async def test_what_changed_before_the_channel_existed_is_read_once_it_does(
    pushed: World,
) -> None:
    keeper = ChannelKeeper(pushed.runtime)
    account = pushed.memory.add_account("f@example.com")
    instance_id = await connect(pushed, account)
    pushed.memory.put(account, "/before-the-channel.txt")  # no channel: nobody is told
    assert await run_passes(pushed) == 0
    assert await keeper.tick() == 1
    assert await run_passes(pushed) == 1
    assert await events(pushed, instance_id) == [("CREATED", "/before-the-channel.txt", None)]
