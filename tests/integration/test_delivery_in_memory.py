"""relaybox's real delivery code (claim, send, record, retry schedule, ordering) on SQLite
after real passes over the in-memory provider, with the callback answered in memory
(httpx's MockTransport): no server, no sleep; retries come due by the runtime's clock."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from relaybox.core.signing import elements_signature
from relaybox.pipeline import delivery
from relaybox.store import tables
from relaybox.store.db import transaction
from tests.support.memory_world import OWNER, World, ask, connect, memory_world, run_passes

KEY = "the-signature-key"


class Callback:
    """The app's endpoint: answers each POST with the next status given, 200 after."""

    def __init__(self, *statuses: int, retry_after: str | None = None) -> None:
        self.statuses = list(statuses)
        self.retry_after = retry_after
        self.received: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.received.append(request)
        status = self.statuses.pop(0) if self.statuses else 200
        headers = {"Retry-After": self.retry_after} if self.retry_after else {}
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(b"noted"))

    def paths(self) -> list[list[str]]:
        return [
            [e["path"] for e in json.loads(r.content)["message"]["events"]] for r in self.received
        ]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with memory_world(tmp_path) as made:
        yield made


def answer_with(world: World, callback: Callable[[httpx.Request], httpx.Response]) -> None:
    """Every callback client of the runtime answers in memory."""
    transport = httpx.MockTransport(callback)
    world.runtime.http.clients = [httpx.AsyncClient(transport=transport)]


async def deliver_due(world: World) -> int:
    """Claim and attempt every notification due at the clock's time; how many."""
    records = delivery.attempt_records(world.runtime)
    try:
        claimed = await delivery.claim(world.runtime, OWNER, 50)
        for one in claimed:
            await delivery.deliver(world.runtime, one, records)
    finally:
        await records.close()
    return len(claimed)


async def notifications(world: World) -> list[tuple[str, int, int | None]]:
    """(status, attempts, last status code) of every notification, oldest first."""
    async with transaction(world.runtime.sessions) as session:
        rows = await session.execute(
            select(
                tables.Notification.status,
                tables.Notification.attempt_count,
                tables.Notification.last_status_code,
            ).order_by(tables.Notification.pk)
        )
        return [(s, a, c) for s, a, c in rows]


async def test_a_failing_callback_gets_the_same_signed_event_on_the_clock_schedule(
    world: World,
) -> None:
    first, second = world.runtime.settings.retry_delays[:2]
    callback = Callback(500, 404)  # neither throttling: the schedule's own delays
    answer_with(world, callback)
    account = world.memory.add_account("ada@example.com")
    instance_id = await connect(world, account, signature_key=KEY)
    world.memory.put(account, "/report.txt")
    await ask(world, instance_id)
    assert await run_passes(world) == 1

    assert await deliver_due(world) == 1
    assert await notifications(world) == [("pending", 1, 500)]
    assert await deliver_due(world) == 0  # not due before its retry
    world.clock.advance(first * 1.25)  # past the first delay and its jitter
    assert await deliver_due(world) == 1
    assert await notifications(world) == [("pending", 2, 404)]
    world.clock.advance(second * 1.25)
    assert await deliver_due(world) == 1
    assert await notifications(world) == [("delivered", 3, 200)]
    assert await deliver_due(world) == 0

    # Three attempts of one notification: the same body and id, each signed.
    bodies = {r.content for r in callback.received}
    assert len(callback.received) == 3 and len(bodies) == 1
    assert len({r.headers["webhook-id"] for r in callback.received}) == 1
    for request in callback.received:
        expected = elements_signature(KEY, request.content)
        assert request.headers["Elements-Webhook-Signature"] == expected
    assert callback.paths() == [["/report.txt"]] * 3


async def test_retry_after_of_a_throttling_callback_is_honoured(world: World) -> None:
    """A 429 asking for 180 s, where the schedule says 100 (jittered up to 120): the
    next attempt waits the 180 (never more than twice the schedule's)."""
    world.runtime.settings.retry_schedule = "100,400"
    callback = Callback(429, retry_after="180")
    answer_with(world, callback)
    account = world.memory.add_account("bo@example.com")
    instance_id = await connect(world, account)
    world.memory.put(account, "/a.txt")
    await ask(world, instance_id)
    await run_passes(world)
    assert await deliver_due(world) == 1
    world.clock.advance(125)  # the schedule alone would be due now
    assert await deliver_due(world) == 0
    world.clock.advance(56)  # past what the callback asked for
    assert await deliver_due(world) == 1
    assert await notifications(world) == [("delivered", 2, 200)]


async def test_an_ordered_instance_sends_nothing_past_a_notification_still_failing(
    world: World,
) -> None:
    first = world.runtime.settings.retry_delays[0]
    callback = Callback(500)
    answer_with(world, callback)
    account = world.memory.add_account("cy@example.com")
    instance_id = await connect(world, account, ordered=True)
    for path in ("/1.txt", "/2.txt"):
        world.memory.put(account, path)
        await ask(world, instance_id)
        assert await run_passes(world) == 1
        world.clock.advance(1)  # past the quiet pause after a pass

    assert await deliver_due(world) == 1  # only the oldest
    assert await notifications(world) == [("pending", 1, 500), ("pending", 0, None)]
    world.clock.advance(first * 1.25)
    assert await deliver_due(world) == 1  # the oldest again, now delivered
    assert await deliver_due(world) == 1  # then the next
    assert await notifications(world) == [("delivered", 2, 200), ("delivered", 1, 200)]
    assert callback.paths() == [["/1.txt"], ["/1.txt"], ["/2.txt"]]
