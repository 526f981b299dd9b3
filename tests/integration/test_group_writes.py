"""Group commit against a real database: notifications from different apps in one group
each reach their own instances, and a pass whose lease was taken over is not applied even
when it shares a group with the pass that holds the lease."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from relaybox.connectors.paging import Fetched
from relaybox.crypto import SecretBox
from relaybox.services.webhook_secrets import (
    INLINE_HMAC_BYTES,
    MAX_FALLBACK_SECRETS,
    WebhookSecrets,
)
from relaybox.store import tables
from relaybox.store.db import (
    autocommit_engine,
    create_engine,
    session_factory,
    transaction,
    upgrade,
)
from relaybox.store.groups import GroupCommit
from relaybox.store.inbox import Received, inbox_writer, store_received
from relaybox.store.pass_results import PassResult, apply_passes

ACCOUNT = "dbid:AAshared-by-two-apps-000000000000000"


@dataclass
class Db:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    box: SecretBox
    org_id: int


@pytest.fixture
async def db(database_url: str, tmp_path: Path) -> AsyncIterator[Db]:
    engine = create_engine(database_url)
    await upgrade(engine)
    sessions = session_factory(engine)
    box = SecretBox(Fernet.generate_key().decode())
    async with transaction(sessions) as session:
        org = tables.Organization(name="org", secret_hash="o" * 64)
        session.add(org)
        await session.flush()
        org_id = org.id
    yield Db(engine, sessions, box, org_id)
    await engine.dispose()


async def add_instance(db: Db, name: str, app_key: str, app_secret: str) -> int:
    async with transaction(db.sessions) as session:
        row = tables.Instance(
            org_id=db.org_id,
            name=name,
            element_key="dropbox",
            token_hash=name.ljust(64, "0"),
            token_enc="t",
            secrets_enc=db.box.encrypt_json({"oauth.api.secret": app_secret}),
            app_key=app_key,
            account_id=ACCOUNT,
            events_enabled=True,
            cursor="c1",
        )
        session.add(row)
        await session.flush()
        return int(row.id)


async def requested(db: Db, instance_id: int) -> int:
    async with transaction(db.sessions) as session:
        return int(
            await session.scalar(
                select(tables.Instance.sync_requested).where(tables.Instance.id == instance_id)
            )
            or 0
        )


def received(secret: str) -> Received:
    body = {"list_folder": {"accounts": [ACCOUNT]}}
    return Received(
        "dropbox", body, [ACCOUNT], frozenset({secret}), lambda account: {"account": account}
    )


async def test_one_account_two_apps_in_one_group(db: Db) -> None:
    first = await add_instance(db, "app-one", "K1", "secret-one")
    second = await add_instance(db, "app-two", "K2", "secret-two")
    stranger = await add_instance(db, "same-key-other-secret", "K1", "not-the-signer")
    secrets = WebhookSecrets(db.sessions, db.box)
    async with transaction(db.sessions) as session:
        stored = await store_received(
            session, [received("secret-one"), received("secret-two")], secrets.secret_of
        )
    assert [s.asked for s in stored] == [1, 1]
    assert await requested(db, first) == 1
    assert await requested(db, second) == 1
    # An instance whose own secret did not sign the body is not asked, whatever its app key.
    assert await requested(db, stranger) == 0


async def test_the_inbox_writer_stores_each_notification_and_asks_each_instance_once(
    db: Db,
) -> None:
    """Through the writer the receiver uses (on PostgreSQL: autocommit, one statement per
    group): every notification is stored; an instance asked twice before its pass starts
    is written once, and keeps the newest notification."""
    instance = await add_instance(db, "app", "K1", "secret-one")
    secrets = WebhookSecrets(db.sessions, db.box)
    writer = inbox_writer(db.engine, db.sessions, secrets.secret_of)
    try:

        def numbered(n: int) -> Received:
            body = {"list_folder": {"accounts": [ACCOUNT]}, "n": n}
            return Received(
                "dropbox", body, [ACCOUNT], frozenset({"secret-one"}), lambda a: {"n": n}
            )

        first = await writer.submit(numbered(1))
        together = await asyncio.gather(*(writer.submit(numbered(n)) for n in (2, 3, 4)))
    finally:
        await writer.close()
    assert first.asked == 1 and first.idle == 1
    assert [s.asked for s in together] == [1, 1, 1]
    async with transaction(db.sessions) as session:
        row = (
            await session.execute(
                select(tables.Instance.sync_requested, tables.Instance.sync_notification).where(
                    tables.Instance.id == instance
                )
            )
        ).one()
        stored = (
            await session.execute(
                select(tables.InboxItem.body, tables.InboxItem.instance_count).order_by(
                    tables.InboxItem.id
                )
            )
        ).all()
    # The first request still waits for its pass: the later ones wrote nothing more.
    assert row.sync_requested == 1
    assert row.sync_notification == {"n": 1}
    assert [(body["n"], count) for body, count in stored] == [(n, 1) for n in (1, 2, 3, 4)]


async def test_a_group_whose_inbox_row_fails_asks_for_no_pass(db: Db) -> None:
    """The pass requests and the inbox rows of a group are written all or nothing: on
    PostgreSQL one autocommitted statement (as the inbox writer runs it), on SQLite one
    transaction."""
    instance = await add_instance(db, "app", "K1", "secret-one")
    secrets = WebhookSecrets(db.sessions, db.box)
    engine = db.engine
    if engine.dialect.name == "postgresql":
        engine = autocommit_engine(engine)
    # A notification the database refuses (no element key: NOT NULL) after the one that
    # asks for a pass, in the same group.
    refused = Received(None, {}, [], frozenset(), dict)  # type: ignore[arg-type]
    try:
        with pytest.raises(IntegrityError):
            async with transaction(session_factory(engine)) as session:
                group = [received("secret-one"), refused]
                await store_received(session, group, secrets.secret_of)
    finally:
        if engine is not db.engine:
            await engine.dispose()
    assert await requested(db, instance) == 0


async def test_a_pass_whose_lease_was_taken_over_is_not_applied(db: Db) -> None:
    instance_id = await add_instance(db, "leased", "K1", "secret-one")
    async with transaction(db.sessions) as session:
        row = await session.get(tables.Instance, instance_id)
        assert row is not None
        row.lease_owner = "holder"
        row.sync_requested = 1

    def result(token: str, cursor: str) -> PassResult:
        fetched = Fetched(changes=[], cursor=cursor, reset=False, has_more=False)
        return PassResult(instance_id, token, "c1", 1, None, fetched)

    # The holder's pass first, then one whose lease was lost (it read further, to c2).
    group = [result("holder", "c3"), result("lost", "c2")]
    async with transaction(db.sessions) as session:
        applied = await apply_passes(session, group)
    assert [a.applied for a in applied] == [True, False]
    async with transaction(db.sessions) as session:
        row = await session.get(tables.Instance, instance_id)
        assert row is not None
        assert (row.cursor, row.lease_owner, row.sync_done) == ("c3", None, 1)


async def test_closing_tells_every_waiter(db: Db) -> None:
    """A group in flight when the writer closes is rolled back; its submitters and those
    still queued hear of it instead of waiting forever."""
    started, never = asyncio.Event(), asyncio.Event()

    async def stuck(session: AsyncSession, items: Sequence[int]) -> list[int]:
        started.set()
        await never.wait()
        return list(items)

    writer: GroupCommit[int, int] = GroupCommit(db.sessions, stuck, name="test")
    in_flight = asyncio.create_task(writer.submit(1))
    await started.wait()
    queued = asyncio.create_task(writer.submit(2))
    await asyncio.sleep(0)
    await writer.close()
    for task in (in_flight, queued):
        with pytest.raises(RuntimeError, match="closed"):
            await task


async def test_a_body_no_app_signed_costs_a_bounded_number_of_hmacs(db: Db) -> None:
    """An unsigned (forged) webhook is checked against the element's cached app secrets
    (one per app key) and, naming accounts, against at most MAX_FALLBACK_SECRETS more."""
    for number in range(3):
        await add_instance(db, f"app-{number}", f"K{number}", f"cached-{number}")
    for number in range(MAX_FALLBACK_SECRETS + 5):  # one app key, stale secrets
        await add_instance(db, f"stale-{number:02}", "K0", f"stale-{number:02}")
    secrets = WebhookSecrets(db.sessions, db.box)
    tried: list[str] = []

    def forged(secret: str) -> bool:
        tried.append(secret)
        return False

    assert await secrets.signers("dropbox", forged, 100) == []
    assert sorted(tried) == ["cached-0", "cached-1", "cached-2"]
    tried.clear()
    assert await secrets.signers_among("dropbox", [ACCOUNT], forged, 100) == []
    assert len(tried) == MAX_FALLBACK_SECRETS
    assert not set(tried) & {"cached-0", "cached-1", "cached-2"}, "tried twice"

    def signed_by_a_stale_one(secret: str) -> bool:
        return secret == "stale-00"

    assert await secrets.signers_among("dropbox", [ACCOUNT], signed_by_a_stale_one, 100) == [
        "stale-00"
    ]


async def test_hashing_a_large_body_runs_off_the_event_loop(db: Db) -> None:
    await add_instance(db, "app", "K1", "secret-one")
    secrets = WebhookSecrets(db.sessions, db.box)
    threads: list[threading.Thread] = []

    def verify(secret: str) -> bool:
        threads.append(threading.current_thread())
        return secret == "secret-one"

    assert await secrets.signers("dropbox", verify, 1000) == ["secret-one"]
    assert threads == [threading.current_thread()]  # small: inline, no thread hop
    threads.clear()
    assert await secrets.signers("dropbox", verify, INLINE_HMAC_BYTES + 1) == ["secret-one"]
    assert threads and threading.current_thread() not in threads
