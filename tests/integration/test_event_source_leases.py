"""Several worker processes on one database: each due poll is requested once, each longpoll
is held by one process. Two runtimes with their own engines stand for two processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, update

from relaybox.config import Settings
from relaybox.core.clock import utcnow
from relaybox.pipeline.longpoll import LongpollHub
from relaybox.pipeline.poller import Poller
from relaybox.runtime import Runtime
from relaybox.store import tables
from relaybox.store.db import transaction

POLLED = 20
HELD = 30


@pytest.fixture
async def runtimes(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[Runtime, Runtime]]:
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        secret_key=Fernet.generate_key().decode(),
        # Nothing listens here: held longpolls fail and back off, which these tests ignore.
        dropbox_notify_url="http://127.0.0.1:9",
        min_poll_interval=60,
    )
    first = await Runtime.start(settings)
    second = await Runtime.start(settings, migrate=False)
    async with transaction(first.sessions) as session:
        org = tables.Organization(name="org", secret_hash="x" * 64)
        session.add(org)
        await session.flush()
        for n in range(POLLED + HELD + 1):
            source = "polling" if n < POLLED else "longpoll" if n < POLLED + HELD else "webhooks"
            session.add(
                tables.Instance(
                    org_id=org.id,
                    name=f"i{n}",
                    element_key="dropbox",
                    token_hash=f"{n:064d}",
                    token_enc=first.box.encrypt("t"),
                    configuration={"event.poller.refresh_interval": "1"},
                    secrets_enc=first.box.encrypt_json({}),
                    events_enabled=True,
                    vendor_type=source,
                    cursor="cursor",
                    next_poll_at=utcnow() - timedelta(seconds=1) if source == "polling" else None,
                )
            )
    yield first, second
    await first.close()
    await second.close()


async def column(runtime: Runtime, *columns: Any) -> list[tuple[Any, ...]]:
    async with transaction(runtime.sessions) as session:
        rows = await session.execute(select(*columns).order_by(tables.Instance.id))
        return [tuple(row) for row in rows]


async def test_each_due_poll_is_requested_once(runtimes: tuple[Runtime, Runtime]) -> None:
    first, second = runtimes
    now = utcnow()
    counts = await asyncio.gather(Poller(first).tick(), Poller(second).tick())
    assert sum(counts) == POLLED
    rows = await column(
        first,
        tables.Instance.vendor_type,
        tables.Instance.sync_requested,
        tables.Instance.next_poll_at,
    )
    polled = [row for row in rows if row[0] == "polling"]
    assert [row[1] for row in polled] == [1] * POLLED
    for _, _, due in polled:
        assert isinstance(due, type(now)) and now + timedelta(seconds=55) < due
    assert all(row[1] == 0 and row[2] is None for row in rows if row[0] != "polling")
    assert await Poller(second).tick() == 0  # nothing due any more

    # Due again while its pass is still pending: the schedule moves on, no new request.
    async with transaction(first.sessions) as session:
        await session.execute(
            update(tables.Instance)
            .where(tables.Instance.vendor_type == "polling")
            .values(next_poll_at=utcnow() - timedelta(seconds=1))
        )
    assert await Poller(first).tick() == 0
    rows = await column(first, tables.Instance.vendor_type, tables.Instance.sync_requested)
    assert [row[1] for row in rows if row[0] == "polling"] == [1] * POLLED


async def test_each_longpoll_is_held_by_one_process(runtimes: tuple[Runtime, Runtime]) -> None:
    first, second = runtimes
    one, two = LongpollHub(first, "process-one"), LongpollHub(second, "process-two")
    try:
        held_one, held_two = await asyncio.gather(one.reconcile(), two.reconcile())
        assert not held_one & held_two
        longpolled = {
            row[0]
            for row in await column(first, tables.Instance.id, tables.Instance.vendor_type)
            if row[1] == "longpoll"
        }
        assert held_one | held_two == longpolled
        assert set(one.held) == held_one and set(two.held) == held_two

        # Switched away from longpoll: let go at the next full reconcile.
        switched = min(held_one or held_two)
        holder = one if switched in held_one else two
        async with transaction(first.sessions) as session:
            await session.execute(
                update(tables.Instance)
                .where(tables.Instance.id == switched)
                .values(vendor_type="polling")
            )
        assert switched not in await holder.reconcile()
        await asyncio.sleep(0)
        assert switched not in holder.held

        # A process that stops gives its leases back; the other one takes them over.
        await one.close()
        assert await two.reconcile() == longpolled - {switched}
    finally:
        await one.close()
        await two.close()
