"""A relaybox runtime on SQLite whose provider is the in-memory one
(tests/support/memory_connector.py), and instances of it made as the instance service
makes them, minus the HTTP: for tests of the real pass, channel and poll code that need no
server and no sleep."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from relaybox.config import Settings
from relaybox.connectors.paging import list_account
from relaybox.core.clock import ManualClock
from relaybox.core.instance_config import parse_config
from relaybox.crypto import new_secret, secret_hash
from relaybox.pipeline import changes
from relaybox.runtime import Runtime
from relaybox.store import tables
from relaybox.store.db import transaction
from relaybox.store.index import replace_index
from relaybox.store.passes import request_pass
from tests.support.memory_connector import MemoryConnector

OWNER = "worker-1"


@dataclass
class World:
    runtime: Runtime
    memory: MemoryConnector
    clock: ManualClock
    org_id: int


@contextlib.asynccontextmanager
async def memory_world(tmp_path: Path, *, push_channels: bool = False) -> AsyncIterator[World]:
    """A runtime whose clock is a `ManualClock` and whose "memory" element is the in-memory
    provider (with push channels, as Google Drive has, when `push_channels`)."""
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'relaybox.db'}",
        secret_key=Fernet.generate_key().decode(),
        allow_private_callbacks=True,
    )
    clock = ManualClock()
    runtime = await Runtime.start(settings, clock=clock)
    memory = MemoryConnector(clock, push_channels=push_channels)
    runtime.connectors = {**runtime.connectors, "memory": memory}
    async with transaction(runtime.sessions) as session:
        org = tables.Organization(name="org", secret_hash="m" * 64)
        session.add(org)
        await session.flush()
        org_id = org.id
    try:
        yield World(runtime, memory, clock, org_id)
    finally:
        await runtime.close()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with memory_world(tmp_path) as made:
        yield made


async def connect(
    world: World,
    account_id: str,
    *,
    vendor_type: str = "webhooks",
    signature_key: str | None = None,
    ordered: bool = False,
) -> int:
    """An instance of the memory provider, indexed and at the present cursor, as
    InstanceService.create leaves one (minus the HTTP)."""
    tokens = world.memory.grant(account_id)
    configuration = {
        "authentication.type": "oauth2",
        "oauth.api.key": "memory-app",
        "oauth.api.secret": "memory-secret",
        "event.notification.enabled": True,
        "event.notification.callback.url": "https://app.example.com/events",
        "event.notification.ordered": ordered,
        "event.vendor.type": vendor_type,
    }
    if signature_key is not None:
        configuration["event.notification.signature.key"] = signature_key
    config = parse_config(configuration)
    listing = (await list_account(world.memory, tokens.access_token)).changes
    cursor = await world.memory.latest_cursor(tokens.access_token)
    secrets = {
        **config.secrets(),
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
    }
    async with transaction(world.runtime.sessions) as session:
        row = tables.Instance(
            org_id=world.org_id,
            name="memory",
            element_key="memory",
            token_hash=secret_hash(token := new_secret()),
            token_enc=world.runtime.box.encrypt(token),
            configuration=config.stored(),
            secrets_enc=world.runtime.box.encrypt_json(secrets),
            app_key="memory-app",
            account_id=account_id,
            events_enabled=True,
            vendor_type=vendor_type,
            ordered=ordered,
            cursor=cursor,
            access_token_expires_at=tokens.expires_at,
        )
        session.add(row)
        await session.flush()
        await replace_index(session, row.id, listing)
        return row.id


async def ask(world: World, instance_id: int, times: int = 1) -> None:
    for _ in range(times):
        async with transaction(world.runtime.sessions) as session:
            await request_pass(session, [instance_id], None, now=world.runtime.clock.now())


async def run_passes(world: World) -> int:
    """Claim and run every pass due now (at the clock's time); how many ran."""
    commits = changes.pass_commits(world.runtime)
    ran = 0
    try:
        while claimed := await changes.claim(world.runtime, OWNER):
            for one in claimed:
                await changes.ChangePass(world.runtime, one, commits).run()
                ran += 1
    finally:
        await commits.close()
    return ran


async def events(world: World, instance_id: int) -> list[tuple[str, str, str | None]]:
    async with transaction(world.runtime.sessions) as session:
        rows = await session.execute(
            select(tables.Event.event_type, tables.Event.path, tables.Event.new_path)
            .where(tables.Event.instance_id == instance_id)
            .order_by(tables.Event.id)
        )
        return [(t, p, n) for t, p, n in rows]


async def instance(world: World, instance_id: int) -> tables.Instance:
    async with transaction(world.runtime.sessions) as session:
        row = await session.get(tables.Instance, instance_id)
        assert row is not None
        return row
