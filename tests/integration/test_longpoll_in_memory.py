"""relaybox's real longpoll event source (pipeline/longpoll.py: the hub, its leases and
its held waits) on SQLite against the in-memory provider, whose waits are held until the
account changes: no HTTP, no sleep; leases end by the runtime's clock."""

from __future__ import annotations

import asyncio

from relaybox.pipeline.longpoll import LongpollHub
from tests.support.memory_world import World, connect, events, run_passes, world

__all__ = ["world"]  # the fixture

WAIT = 10  # seconds a condition may take before the test fails (it takes milliseconds)


async def asked_for_a_pass(world: World) -> None:
    """Until a longpoll asks for a pass (it wakes the change workers as it does)."""
    await asyncio.wait_for(world.runtime.wakeups.changes.wait(), WAIT)
    world.runtime.wakeups.changes.clear()


async def test_a_held_longpoll_asks_for_a_pass_each_time_the_account_changes(
    world: World,
) -> None:
    account = world.memory.add_account("lp@example.com")
    instance_id = await connect(world, account, vendor_type="longpoll")
    webhook_id = await connect(world, world.memory.add_account("wh@example.com"))
    hub = LongpollHub(world.runtime, "worker-1")
    try:
        assert await hub.reconcile() == {instance_id}  # not the webhook instance
        assert webhook_id not in hub.held
        world.runtime.wakeups.changes.clear()

        world.memory.put(account, "/first.txt")
        await asked_for_a_pass(world)
        assert await run_passes(world) == 1
        hub.pass_finished(instance_id)  # as the runner says once a pass ends
        # It waits again from the cursor the pass left: the next change asks once more.
        world.memory.put(account, "/second.txt")
        await asked_for_a_pass(world)
        world.clock.advance(1)  # past the quiet pause after a pass
        assert await run_passes(world) == 1
        assert await events(world, instance_id) == [
            ("CREATED", "/first.txt", None),
            ("CREATED", "/second.txt", None),
        ]
    finally:
        await hub.close()


async def test_the_longpolls_of_a_dead_process_are_taken_over_when_its_lease_ends(
    world: World,
) -> None:
    account = world.memory.add_account("dead@example.com")
    instance_id = await connect(world, account, vendor_type="longpoll")
    dead, alive = LongpollHub(world.runtime, "worker-1"), LongpollHub(world.runtime, "worker-2")
    try:
        assert await dead.reconcile() == {instance_id}
        assert await alive.reconcile() == set()  # held by the other process
        for task in list(dead.held.values()):  # it dies: no release, no renewal
            task.cancel()
        world.clock.advance(world.runtime.settings.lease_seconds - 1)
        assert await alive.reconcile() == set()  # its lease still holds
        world.clock.advance(2)
        assert await alive.reconcile() == {instance_id}
        world.runtime.wakeups.changes.clear()
        world.memory.put(account, "/after-the-takeover.txt")
        await asked_for_a_pass(world)
        assert await run_passes(world) == 1
        assert await events(world, instance_id) == [("CREATED", "/after-the-takeover.txt", None)]
    finally:
        await alive.close()
        await dead.close()
