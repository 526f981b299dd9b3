"""store/health.py against a real database (SQLite and PostgreSQL): each instance's health,
last event and queued and failed deliveries, its attempts counted per clock hour over the
last day, in two statements however many instances there are. Time is passed as `now`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from relaybox.core.health import Health
from relaybox.store import health, tables
from relaybox.store.db import create_engine, session_factory, transaction, upgrade

NOW = datetime(2026, 12, 5, 10, 20, tzinfo=UTC)
FIRST_HOUR = datetime(2026, 12, 4, 11, 0, tzinfo=UTC)  # the oldest of the 24 hours to NOW


@dataclass
class Db:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    org_id: int
    other_org_id: int


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Db]:
    engine = create_engine(database_url)
    await upgrade(engine)
    sessions = session_factory(engine)
    async with transaction(sessions) as session:
        ours, theirs = (
            tables.Organization(name="ours", secret_hash="o" * 64),
            tables.Organization(name="theirs", secret_hash="t" * 64),
        )
        session.add_all([ours, theirs])
        await session.flush()
        ids = ours.id, theirs.id
    yield Db(engine, sessions, *ids)
    await engine.dispose()


async def add_instance(db: Db, name: str, *, org_id: int | None = None, **state: Any) -> int:
    async with transaction(db.sessions) as session:
        row = tables.Instance(
            org_id=org_id or db.org_id,
            name=name,
            element_key="dropbox",
            token_hash=uuid.uuid4().hex * 2,
            token_enc="token",
            secrets_enc="secrets",
            **state,
        )
        session.add(row)
        await session.flush()
        return row.id


async def add_notification(
    db: Db,
    instance_id: int,
    *,
    status: str,
    attempts: tuple[tuple[datetime, int | None], ...] = (),
    event_at: datetime | None = None,
    org_id: int | None = None,
) -> None:
    """One notification with its attempts (time, status code) and, at `event_at`, an event."""
    async with transaction(db.sessions) as session:
        note = tables.Notification(
            id=str(uuid.uuid4()),
            instance_id=instance_id,
            org_id=org_id or db.org_id,
            body="{}",
            event_count=1,
            status=status,
            attempt_count=len(attempts),
            next_attempt_at=NOW,
            created_at=NOW,
        )
        session.add(note)
        await session.flush()
        session.add_all(
            tables.Attempt(notification_pk=note.pk, attempted_at=at, status_code=code, latency_ms=1)
            for at, code in attempts
        )
        if event_at is not None:
            session.add(
                tables.Event(
                    instance_id=instance_id,
                    org_id=org_id or db.org_id,
                    notification_pk=note.pk,
                    event_type="CREATED",
                    object_type="files",
                    object_id="id:x",
                    path="/x.txt",
                    occurred_at=event_at,
                )
            )


async def test_health_last_event_and_hours(db: Db) -> None:
    healthy = await add_instance(db, "healthy")
    retrying = await add_instance(db, "retrying")
    paused = await add_instance(db, "paused", subscription_active=False)
    disabled = await add_instance(db, "disabled", disabled=True)
    invalid = await add_instance(db, "invalid", valid=False, subscription_active=False)
    quiet = await add_instance(db, "quiet")
    theirs = await add_instance(db, "theirs", org_id=db.other_org_id)

    older, newer = NOW - timedelta(hours=5), NOW - timedelta(minutes=3)
    # In the first hour, at its very start; just before it (not counted); in the last one.
    await add_notification(
        db, healthy, status="delivered", attempts=((FIRST_HOUR, 200),), event_at=older
    )
    await add_notification(
        db,
        healthy,
        status="delivered",
        attempts=((FIRST_HOUR - timedelta(seconds=1), 204),),
        event_at=newer,
    )
    await add_notification(
        db, healthy, status="failed", attempts=((NOW - timedelta(minutes=10), None),)
    )
    await add_notification(db, healthy, status="pending")  # queued, never tried: still healthy
    await add_notification(
        db,
        retrying,
        status="pending",
        attempts=((NOW - timedelta(hours=1, minutes=1), 500),),
    )
    await add_notification(db, invalid, status="pending", attempts=((NOW, 503),))
    await add_notification(
        db, theirs, status="pending", attempts=((NOW, 500),), org_id=db.other_org_id
    )

    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        async with transaction(db.sessions) as session:
            found = await health.of_org(session, db.org_id, now=NOW, with_hours=True)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert len(statements) == 2, statements

    by_name = {item.instance.name: item for item in found}
    assert [item.instance.name for item in found] == [
        "healthy",
        "retrying",
        "paused",
        "disabled",
        "invalid",
        "quiet",
    ]
    assert {name: item.health for name, item in by_name.items()} == {
        "healthy": Health.HEALTHY,
        "retrying": Health.RETRYING,
        "paused": Health.PAUSED,
        "disabled": Health.PAUSED,
        "invalid": Health.INVALID,
        "quiet": Health.HEALTHY,
    }
    ok = by_name["healthy"]
    assert ok.last_event_at == newer
    assert (ok.pending, ok.failed) == (1, 1)
    assert [hour.start for hour in ok.hours] == [FIRST_HOUR + timedelta(hours=n) for n in range(24)]
    assert (ok.hours[0].delivered, ok.hours[0].failed) == (1, 0)
    assert (ok.hours[23].delivered, ok.hours[23].failed) == (0, 1)
    assert (ok.delivered_recently, ok.failed_recently) == (1, 1)
    late = by_name["retrying"]
    assert (late.hours[22].failed, late.failed_recently, late.last_event_at) == (1, 1, None)
    assert by_name["quiet"].hours == health.empty_hours(FIRST_HOUR)

    all_hours = health.totals(found)
    assert (all_hours[23].delivered, all_hours[23].failed) == (0, 2)  # theirs is not counted
    assert sum(hour.delivered + hour.failed for hour in all_hours) == 4

    # The instance list needs no hours: one statement.
    async with transaction(db.sessions) as session:
        listed = await health.of_org(session, db.org_id, now=NOW)
    assert [item.hours for item in listed] == [[]] * 6
    assert [(i.instance.id, i.health, i.last_event_at) for i in listed] == [
        (i.instance.id, i.health, i.last_event_at) for i in found
    ]
    assert {retrying, paused, disabled, invalid, quiet} < {item.instance.id for item in listed}
