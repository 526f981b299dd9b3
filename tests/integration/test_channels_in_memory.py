"""The push channel keeper (pipeline/channels.py) on SQLite against the in-memory provider
with channels (as Google Drive has them): made, renewed before they end, stopped when not
wanted, tried again after a failure; time moves with the runtime's clock, never a sleep."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from relaybox.crypto import secret_hash
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
    return [channel_id for channel_id, _ in await stored_rows(world)]


async def stored_rows(world: World) -> list[tuple[str, str]]:
    """(channel id, token hash) of every stored channel, oldest first."""
    async with transaction(world.runtime.sessions) as session:
        rows = await session.execute(
            select(tables.PushChannel.channel_id, tables.PushChannel.token_hash).order_by(
                tables.PushChannel.created_at
            )
        )
        return [(row[0], row[1]) for row in rows]


async def instance_row(world: World, instance_id: int) -> tables.Instance:
    async with transaction(world.runtime.sessions) as session:
        row = await session.get(tables.Instance, instance_id)
        assert row is not None
        return row


async def test_a_channel_is_made_once_and_renewed_before_it_ends(pushed: World) -> None:
    keeper = ChannelKeeper(pushed.runtime)
    watches = pushed.memory.watches
    await connect(pushed, pushed.memory.add_account("a@example.com"))
    assert await keeper.tick() == 1
    [first] = watches.live()
    # Stored: the channel and the hash of its secret token, never the token itself.
    token = watches.watches[first].token
    assert await stored_rows(pushed) == [(first, secret_hash(token))]
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


async def test_a_channel_made_while_its_instance_stops_wanting_one_is_stopped(
    pushed: World,
) -> None:
    """While the provider makes a channel, the instance switches to polling and another
    worker's keeper takes the channel's row (not yet confirmed, so it has nothing to
    stop): the provider's channel is stopped by the keeper that made it."""
    keeper, other_worker = ChannelKeeper(pushed.runtime), ChannelKeeper(pushed.runtime)
    watches = pushed.memory.watches
    instance_id = await connect(pushed, pushed.memory.add_account("g@example.com"))

    async def switch_to_polling() -> None:
        async with transaction(pushed.runtime.sessions) as session:
            await session.execute(
                update(tables.Instance)
                .where(tables.Instance.id == instance_id)
                .values(vendor_type="polling")
            )
        await other_worker.tick()

    watches.meanwhile = switch_to_polling
    assert await keeper.tick() == 0
    [made] = watches.watches
    assert watches.watches[made].stopped and watches.live() == []
    assert await stored_channels(pushed) == []
    assert (await instance_row(pushed, instance_id)).channel_lease_until is None


async def test_a_revoked_grant_makes_the_instance_invalid_and_an_outage_is_shown(
    pushed: World,
) -> None:
    keeper = ChannelKeeper(pushed.runtime)
    down = await connect(pushed, pushed.memory.add_account("h@example.com"))
    pushed.memory.watches.failures = 1
    assert await keeper.tick() == 0
    row = await instance_row(pushed, down)
    assert row.valid and row.status_message is not None
    assert "push notifications could not be set up" in row.status_message
    assert "503" in row.status_message

    revoked_account = pushed.memory.add_account("i@example.com")
    revoked = await connect(pushed, revoked_account)
    pushed.memory.revoke_grants(revoked_account)
    pushed.clock.advance(CHANNEL_LEASE.total_seconds() + 1)
    assert await keeper.tick() == 1  # the first instance's channel, made now
    row = await instance_row(pushed, revoked)
    assert not row.valid and "revoked" in (row.status_message or "")
    pushed.clock.advance(CHANNEL_LEASE.total_seconds() + 1)
    assert await keeper.tick() == 0  # an invalid instance wants no channel
    assert len(pushed.memory.watches.live()) == 1
