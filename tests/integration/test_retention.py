"""Retention against a real database: finished notifications past the retention go with
their events and attempts, in batches that are each their own transaction; pending ones stay
whatever their age. Time is moved by passing `now`, never by sleeping."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError
from sqlalchemy import func, insert, inspect, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from relaybox.config import Settings
from relaybox.core.clock import utcnow
from relaybox.pipeline.housekeeping import prune_notifications
from relaybox.runtime import Runtime
from relaybox.store import retention, tables
from relaybox.store.db import create_engine, session_factory, transaction, upgrade

KEEP = timedelta(days=30)
DAY = timedelta(days=1)


@dataclass
class Db:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    instance_id: int
    org_id: int
    dialect: str


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Db]:
    engine = create_engine(database_url)
    await upgrade(engine)
    sessions = session_factory(engine)
    async with transaction(sessions) as session:
        org = tables.Organization(name="org", secret_hash="o" * 64)
        session.add(org)
        await session.flush()
        instance = tables.Instance(
            org_id=org.id,
            name="instance",
            element_key="dropbox",
            token_hash="t" * 64,
            token_enc="token",
            secrets_enc="secrets",
        )
        session.add(instance)
        await session.flush()
        ids = instance.id, org.id
    yield Db(engine, sessions, *ids, engine.dialect.name)
    await engine.dispose()


async def add_notification(
    db: Db,
    *,
    status: str,
    created: datetime,
    delivered: datetime | None = None,
    attempts: tuple[datetime, ...] = (),
    events: int = 3,
) -> str:
    """One notification with its events and attempts; returns its id."""
    notification_id = str(uuid.uuid4())
    async with transaction(db.sessions) as session:
        note = tables.Notification(
            id=notification_id,
            instance_id=db.instance_id,
            org_id=db.org_id,
            body="{}",
            event_count=events,
            status=status,
            attempt_count=len(attempts),
            next_attempt_at=attempts[-1] if attempts else created,
            created_at=created,
            delivered_at=delivered,
        )
        session.add(note)
        await session.flush()
        session.add_all(
            tables.Event(
                instance_id=db.instance_id,
                org_id=db.org_id,
                notification_pk=note.pk,
                event_type="CREATED",
                object_type="files",
                object_id=f"id:{notification_id}:{n}",
                path=f"/{notification_id}/{n}.txt",
                occurred_at=created,
            )
            for n in range(events)
        )
        session.add_all(
            tables.Attempt(notification_pk=note.pk, attempted_at=at, status_code=500, latency_ms=1)
            for at in attempts
        )
    return notification_id


async def add_many(db: Db, count: int, *, status: str, at: datetime, events: int = 2) -> None:
    """`count` notifications finished at `at`, written 500 at a time."""
    note = tables.Notification
    for start in range(0, count, 500):
        rows = [
            {
                "id": str(uuid.uuid4()),
                "instance_id": db.instance_id,
                "org_id": db.org_id,
                "body": "{}",
                "event_count": events,
                "status": status,
                "attempt_count": 1,
                "next_attempt_at": at,
                "created_at": at,
                "delivered_at": at if status == "delivered" else None,
            }
            for _ in range(min(500, count - start))
        ]
        async with transaction(db.sessions) as session:
            pks = list(await session.scalars(insert(note).returning(note.pk), rows))
            await session.execute(
                insert(tables.Event),
                [
                    {
                        "instance_id": db.instance_id,
                        "org_id": db.org_id,
                        "notification_pk": pk,
                        "event_type": "UPDATED",
                        "object_type": "files",
                        "object_id": f"id:{pk}",
                        "path": f"/many/{pk}/{n}.txt",
                        "occurred_at": at,
                    }
                    for pk in pks
                    for n in range(events)
                ],
            )
            await session.execute(
                insert(tables.Attempt),
                [
                    {"notification_pk": pk, "attempted_at": at, "status_code": 200, "latency_ms": 1}
                    for pk in pks
                ],
            )


async def counts(db: Db) -> tuple[int, int, int]:
    """Rows in (notifications, events, attempts)."""
    async with transaction(db.sessions) as session:
        return (
            int(await session.scalar(select(func.count()).select_from(tables.Notification)) or 0),
            int(await session.scalar(select(func.count()).select_from(tables.Event)) or 0),
            int(await session.scalar(select(func.count()).select_from(tables.Attempt)) or 0),
        )


async def kept_ids(db: Db) -> set[str]:
    async with transaction(db.sessions) as session:
        return set(await session.scalars(select(tables.Notification.id)))


async def children_of(db: Db, ids: set[str]) -> tuple[int, int]:
    """(events, attempts) still pointing at the notifications with these ids."""
    note = tables.Notification
    async with transaction(db.sessions) as session:
        pks = select(note.pk).where(note.id.in_(ids)).scalar_subquery()
        events = await session.scalar(
            select(func.count()).where(tables.Event.notification_pk.in_(pks))
        )
        attempts = await session.scalar(
            select(func.count()).where(tables.Attempt.notification_pk.in_(pks))
        )
    return int(events or 0), int(attempts or 0)


async def test_finished_notifications_past_the_retention_go_with_their_events_and_attempts(
    db: Db,
) -> None:
    now = utcnow()
    add = add_notification
    old_delivered = await add(
        db, status="delivered", created=now - 40 * DAY, delivered=now - 31 * DAY, attempts=(now,)
    )
    # Age is the finishing time, not the creation: delivered 29 days ago stays.
    late_delivered = await add(
        db, status="delivered", created=now - 40 * DAY, delivered=now - 29 * DAY
    )
    old_failed = await add(
        db, status="failed", created=now - 45 * DAY, attempts=(now - 35 * DAY, now - 31 * DAY)
    )
    # Created long ago, redelivered and given up again 29 days ago: its last attempt counts.
    refailed = await add(
        db, status="failed", created=now - 45 * DAY, attempts=(now - 44 * DAY, now - 29 * DAY)
    )
    failed_unattempted = await add(db, status="failed", created=now - 31 * DAY)
    young_failed_unattempted = await add(db, status="failed", created=now - 29 * DAY)
    # Pending is never pruned: not when ancient, not when redelivered after an old delivery.
    ancient_pending = await add(
        db, status="pending", created=now - 400 * DAY, attempts=(now - 399 * DAY,)
    )
    redelivered = await add(
        db, status="pending", created=now - 300 * DAY, delivered=now - 300 * DAY
    )
    recent = await add(db, status="delivered", created=now - DAY, delivered=now - DAY)
    gone = {old_delivered, old_failed, failed_unattempted}
    assert await children_of(db, gone) == (9, 3)

    pruned = await retention.prune(db.sessions, now=now, keep=KEEP, rest=None)

    assert (pruned.notifications, pruned.events) == (3, 9)
    assert await kept_ids(db) == {
        late_delivered,
        refailed,
        young_failed_unattempted,
        ancient_pending,
        redelivered,
        recent,
    }
    assert await counts(db) == (6, 18, 3)  # exactly the kept notifications' children
    assert (await retention.prune(db.sessions, now=now, keep=KEEP)).notifications == 0

    # Two days later the 29-day-old ones are past the retention too; pending ones still stay.
    later = await retention.prune(db.sessions, now=now + 2 * DAY, keep=KEEP)
    assert later.notifications == 3
    assert await kept_ids(db) == {ancient_pending, redelivered, recent}
    assert await counts(db) == (3, 9, 1)


async def test_many_rows_are_pruned_in_batches_each_its_own_transaction(db: Db) -> None:
    now = utcnow()
    old = now - 31 * DAY
    await add_many(db, 2000, status="delivered", at=old)
    await add_many(db, 300, status="failed", at=old)
    await add_many(db, 50, status="pending", at=old - 100 * DAY)
    await add_many(db, 70, status="delivered", at=now - DAY)
    assert await counts(db) == (2420, 4840, 2420)

    seen_between_batches: list[int] = []

    async def rest() -> bool:
        # No transaction is open here: what the batches before deleted is committed.
        seen_between_batches.append((await counts(db))[0])
        return False

    pruned = await retention.prune(db.sessions, now=now, keep=KEEP, batch_size=500, rest=rest)

    # Delivered: 4 full batches, then one finding nothing; failed: one batch of 300.
    assert seen_between_batches == [1920, 1420, 920, 420]
    assert (pruned.notifications, pruned.events, pruned.batches) == (2300, 4600, 6)
    assert await counts(db) == (120, 240, 120)


async def test_rest_can_end_a_prune_between_batches(db: Db) -> None:
    now = utcnow()
    await add_many(db, 1200, status="delivered", at=now - 40 * DAY)
    rests = 0

    async def rest() -> bool:
        nonlocal rests
        rests += 1
        return rests == 2  # stop before the third batch

    pruned = await retention.prune(db.sessions, now=now, keep=KEEP, batch_size=400, rest=rest)
    assert (pruned.notifications, pruned.batches) == (800, 2)
    assert (await counts(db))[0] == 400
    assert (await retention.prune(db.sessions, now=now, keep=KEEP)).notifications == 400


async def test_a_writer_commits_while_a_long_prune_runs(db: Db) -> None:
    """A new notification written while pruning runs is committed before the prune ends.

    The writer starts together with the prune and the first rest waits for it: it can only
    finish if no lock is held between two batches (on SQLite, with one writer at a time, a
    prune in one long transaction would keep it out until it ends: 'database is locked').
    """
    now = utcnow()
    await add_many(db, 2000, status="delivered", at=now - 40 * DAY)
    writer = asyncio.create_task(add_notification(db, status="pending", created=now))
    remaining_after_write: list[int] = []

    async def rest() -> bool:
        await writer
        remaining_after_write.append((await counts(db))[0])
        return False

    pruned = await retention.prune(db.sessions, now=now, keep=KEEP, batch_size=200, rest=rest)
    assert pruned.notifications == 2000
    new_id = writer.result()
    assert await kept_ids(db) == {new_id}
    # The write was committed while the prune still had most of its batches ahead of it.
    assert remaining_after_write[0] == 1801
    assert len(remaining_after_write) == 10


async def test_postgresql_locks_only_the_rows_of_an_open_batch(db: Db) -> None:
    """An uncommitted batch blocks no insert, no update of other rows, and no second
    pruner (it skips the locked rows); a row being redelivered meanwhile is skipped."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time: there, batches are short and pause")
    now = utcnow()
    old = now - 40 * DAY
    await add_many(db, 600, status="delivered", at=old)
    kept = await add_notification(db, status="delivered", created=now, delivered=now)
    being_redelivered = await add_notification(db, status="delivered", created=old, delivered=old)
    note = tables.Notification
    cutoff = now - KEEP

    async with db.engine.connect() as redeliver, db.engine.connect() as pruner:
        await redeliver.execute(
            update(note).where(note.id == being_redelivered).values(status="pending")
        )
        first = AsyncSession(bind=pruner)
        await first.begin()
        assert await retention.prune_batch(first, "delivered", cutoff, 400) == (400, 800)

        # Meanwhile, in other transactions: a new notification, an attempt on a kept one,
        # and a second pruner taking the rows the first one did not lock.
        new_id = await add_notification(db, status="pending", created=now)
        async with transaction(db.sessions) as session:
            # Fail at once instead of hanging if anything here waited for a lock.
            await session.execute(text("SET LOCAL lock_timeout = '20s'"))
            pk = await session.scalar(select(note.pk).where(note.id == kept))
            session.add(tables.Attempt(notification_pk=pk, attempted_at=now, latency_ms=1))
            second = await retention.prune_batch(session, "delivered", cutoff, 1000)
        assert second == (200, 400)

        await first.commit()
        await first.close()
        await redeliver.commit()

    assert await kept_ids(db) == {kept, being_redelivered, new_id}
    assert (await retention.prune(db.sessions, now=now, keep=KEEP)).notifications == 0


async def test_the_migration_adds_the_retention_index(db: Db) -> None:
    async with db.engine.connect() as connection:
        indexes = await connection.run_sync(
            lambda sync: {
                index["name"]: index["column_names"]
                for index in inspect(sync).get_indexes("notifications")
            }
        )
        version = await connection.scalar(text("SELECT version_num FROM alembic_version"))
    assert indexes["ix_notifications_finished"] == ["status", "delivered_at"]
    assert version >= "0003"  # this migration or a later one


async def test_housekeeping_prunes_after_the_configured_days(
    tmp_path: Path, database_url: str
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        secret_key=Fernet.generate_key().decode(),
        retention_days=10,
    )
    runtime = await Runtime.start(settings)
    try:
        async with transaction(runtime.sessions) as session:
            org = tables.Organization(name="org", secret_hash="o" * 64)
            session.add(org)
            await session.flush()
            instance = tables.Instance(
                org_id=org.id,
                name="i",
                element_key="dropbox",
                token_hash="t" * 64,
                token_enc="t",
                secrets_enc="s",
            )
            session.add(instance)
            await session.flush()
            ids = instance.id, org.id
        db = Db(runtime.engine, runtime.sessions, *ids, runtime.engine.dialect.name)
        now = utcnow()
        await add_many(db, 30, status="delivered", at=now - 11 * DAY)
        young = await add_notification(db, status="delivered", created=now, delivered=now - 9 * DAY)

        stopping = asyncio.Event()
        stopping.set()  # a worker shutting down: one batch, then it stops
        first = await prune_notifications(runtime, now=now, stopping=stopping, batch_size=10)
        assert (first.notifications, first.batches) == (10, 1)
        rest = await prune_notifications(runtime, now=now, batch_size=10, pause=0)
        assert rest.notifications == 20
        assert await kept_ids(db) == {young}
        later = await prune_notifications(runtime, now=now + 2 * DAY, pause=0)
        assert later.notifications == 1
    finally:
        await runtime.close()


def test_retention_days_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELAYBOX_RETENTION_DAYS", raising=False)
    assert Settings().retention_days == 30
    monkeypatch.setenv("RELAYBOX_RETENTION_DAYS", "7.5")
    assert Settings().retention_days == 7.5
    monkeypatch.setenv("RELAYBOX_RETENTION_DAYS", "0")
    with pytest.raises(ValidationError):
        Settings()
