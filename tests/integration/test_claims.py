"""Claiming passes against a real database: oldest request first, exactly `limit` at a time,
and two processes claiming at once never take the same instance."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from relaybox.config import Settings
from relaybox.core.clock import utcnow
from relaybox.pipeline import changes
from relaybox.runtime import Runtime
from relaybox.store import tables
from relaybox.store.db import transaction
from relaybox.store.passes import request_pass

INSTANCES = 40


@pytest.fixture
async def runtimes(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[Runtime, Runtime]]:
    settings = Settings(
        data_dir=tmp_path, database_url=database_url, secret_key=Fernet.generate_key().decode()
    )
    first = await Runtime.start(settings)
    second = await Runtime.start(settings, migrate=False)
    async with transaction(first.sessions) as session:
        org = tables.Organization(name="org", secret_hash="x" * 64)
        session.add(org)
        await session.flush()
        session.add_all(
            tables.Instance(
                org_id=org.id,
                name=f"i{n}",
                element_key="dropbox",
                token_hash=f"{n:064d}",
                token_enc=first.box.encrypt("t"),
                secrets_enc=first.box.encrypt_json({}),
                events_enabled=True,
                cursor="cursor",
            )
            for n in range(INSTANCES)
        )
    yield first, second
    await first.close()
    await second.close()


async def ask(runtime: Runtime, instance_ids: list[int]) -> None:
    """One pass request per instance, each its own transaction, in this order."""
    for instance_id in instance_ids:
        async with transaction(runtime.sessions) as session:
            await request_pass(session, [instance_id], None, now=runtime.clock.now())


async def test_passes_are_claimed_oldest_request_first(
    runtimes: tuple[Runtime, Runtime],
) -> None:
    runtime, _ = runtimes
    order = [7, 3, 25, 1, 40, 12, 2, 9]
    await ask(runtime, order)
    await ask(runtime, [3, 7])  # asking again keeps an instance's place in the queue
    first = await changes.claim(runtime, "a", limit=3)
    assert [c.instance_id for c in first] == sorted(order[:3])
    second = await changes.claim(runtime, "a", limit=10)
    assert sorted(c.instance_id for c in second) == sorted(order[3:])
    assert await changes.claim(runtime, "a", limit=10) == []  # leased, none left


async def test_concurrent_claims_take_exactly_the_limit_and_never_the_same_instance(
    runtimes: tuple[Runtime, Runtime],
) -> None:
    await ask(runtimes[0], list(range(1, INSTANCES + 1)))
    batches = await asyncio.gather(
        *(changes.claim(runtime, f"p{n}", limit=4) for n in range(4) for runtime in runtimes)
    )
    assert all(len(batch) == 4 for batch in batches), [len(b) for b in batches]
    claimed = [c.instance_id for batch in batches for c in batch]
    assert len(claimed) == len(set(claimed)) == 32


async def test_a_backed_off_instance_waits_for_its_time(runtimes: tuple[Runtime, Runtime]) -> None:
    runtime, _ = runtimes
    await ask(runtime, [5, 6])
    async with transaction(runtime.sessions) as session:
        row = await session.get(tables.Instance, 5)
        assert row is not None
        row.sync_not_before = utcnow() + timedelta(minutes=1)
    assert [c.instance_id for c in await changes.claim(runtime, "a", limit=10)] == [6]
