"""Bytes stored per event, on SQLite and PostgreSQL, and what retention gives back.

    .venv/bin/python -m bench.storage_per_event [--events 10000] [--postgres URL]

Writes N events the way a pass and a delivery leave them: notifications of 20 events each
(the webhook batch size) whose body is `core.notification.notification_body` with Dropbox
file metadata as the raw entries, one `events` row per event, and one successful attempt
per notification (status `delivered`). Rows are written in their final state: PostgreSQL's
dead row versions from the claim and the attempt's update are autovacuum's to reclaim and
are not counted.

- SQLite: growth of the database file (WAL checkpointed and truncated before each reading).
- PostgreSQL: growth of `pg_total_relation_size` (table, TOAST and indexes) of notifications,
  events and attempts.

Then, for each of `--rounds` rounds, every notification is pruned (`store.retention.prune`,
the clock moved past the retention) and N events are written again: the size against the
first fill shows whether the freed space is used again (on PostgreSQL after a plain
`VACUUM`, which autovacuum does by itself; emptied index pages are reused only from the
VACUUM after the one that found them empty, so the first round grows the indexes).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from relaybox.core.clock import utcnow
from relaybox.core.normalize import EventType, StandardEvent
from relaybox.core.notification import InstanceInfo, notification_body
from relaybox.store import retention, tables
from relaybox.store.db import create_engine, session_factory, transaction, upgrade
from relaybox.store.pass_results import event_row

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
PER_NOTIFICATION = 20  # pipeline/changes.py WEBHOOK_BATCH
TABLES = ("notifications", "events", "attempts")
FINISHED_INDEX = "ix_notifications_finished"
ACCOUNT = "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"
INSTANCE = InstanceInfo(1, "my dropbox", "dropbox", ["team-a"], ACCOUNT)
RAW_NOTIFICATION = {"list_folder": {"accounts": [ACCOUNT]}, "delta": {"users": [12345678]}}


def dropbox_event(n: int) -> StandardEvent:
    """A realistic event: mostly files created or edited, some folders, deletions, moves."""
    folder = f"/Projects/Acme Corp/2026/Q{n % 4 + 1}/Reports-{n % 97:02d}"
    path = f"{folder}/quarterly-report-{n:06d}.pdf"
    object_id = f"id:a4ayc_80_OEAAAAAAA{n:07d}"
    kind = n % 10
    if kind == 8:  # deleted: Dropbox's DeletedMetadata, no id
        entry: dict[str, Any] = {
            ".tag": "deleted",
            "name": path.rsplit("/", 1)[1],
            "path_lower": path.lower(),
            "path_display": path,
        }
        return StandardEvent("DELETED", "files", object_id, path, None, entry)
    if kind == 9:  # a folder created
        entry = {
            ".tag": "folder",
            "name": folder.rsplit("/", 1)[1],
            "path_lower": folder.lower(),
            "path_display": folder,
            "id": object_id,
        }
        return StandardEvent("CREATED", "folders", object_id, folder, None, entry)
    moved = kind == 7
    shown = path.replace("quarterly-report", "final-report") if moved else path
    entry = {
        ".tag": "file",
        "name": shown.rsplit("/", 1)[1],
        "path_lower": shown.lower(),
        "path_display": shown,
        "id": object_id,
        "client_modified": "2026-12-01T10:15:00Z",
        "server_modified": "2026-12-01T10:15:02Z",
        "rev": f"{0x5F1A0000 + n:x}00000002a1c10ce0",
        "size": 100_000 + n * 37 % 900_000,
        "is_downloadable": True,
        "content_hash": f"{n:064x}",
    }
    event_type: EventType = "CREATED" if kind < 4 else "UPDATED"
    return StandardEvent(event_type, "files", object_id, path, shown if moved else None, entry)


async def setup(engine: AsyncEngine) -> tuple[async_sessionmaker[AsyncSession], int, int]:
    await upgrade(engine)
    sessions = session_factory(engine)
    async with transaction(sessions) as session:
        org = tables.Organization(name="bench", secret_hash=uuid.uuid4().hex * 2)
        session.add(org)
        await session.flush()
        instance = tables.Instance(
            org_id=org.id,
            name="my dropbox",
            element_key="dropbox",
            token_hash=uuid.uuid4().hex * 2,
            token_enc="x" * 140,
            secrets_enc="x" * 400,
            account_id=ACCOUNT,
        )
        session.add(instance)
        await session.flush()
        return sessions, instance.id, org.id


async def write_events(
    sessions: async_sessionmaker[AsyncSession], instance_id: int, org_id: int, count: int
) -> int:
    """`count` events in delivered notifications of 20; returns the bytes of their bodies."""
    body_bytes = 0
    now = utcnow()
    note = tables.Notification
    for first in range(0, count, 50 * PER_NOTIFICATION):
        notes, batches = [], []
        for start in range(first, min(count, first + 50 * PER_NOTIFICATION), PER_NOTIFICATION):
            batch = [dropbox_event(n) for n in range(start, min(count, start + PER_NOTIFICATION))]
            notification_id = str(uuid.uuid4())
            body = notification_body(
                notification_id=notification_id,
                instance=INSTANCE,
                events=batch,
                raw_notification=RAW_NOTIFICATION,
                now=now,
            )
            body_bytes += len(body.encode())
            notes.append(
                {
                    "id": notification_id,
                    "instance_id": instance_id,
                    "org_id": org_id,
                    "body": body,
                    "event_count": len(batch),
                    "status": "delivered",
                    "attempt_count": 1,
                    "next_attempt_at": now,
                    "last_status_code": 200,
                    "created_at": now,
                    "delivered_at": now,
                }
            )
            batches.append(batch)
        async with transaction(sessions) as session:
            pks = list(await session.scalars(insert(note).returning(note.pk), notes))
            events = [
                event_row(event, instance_id, org_id, pk, now)
                for pk, batch in zip(pks, batches, strict=True)
                for event in batch
            ]
            await session.execute(insert(tables.Event), events)
            attempts = [
                {
                    "notification_pk": pk,
                    "attempted_at": now,
                    "status_code": 200,
                    "latency_ms": 42.7,
                    "response_body": "ok",
                }
                for pk in pks
            ]
            await session.execute(insert(tables.Attempt), attempts)
    return body_bytes


async def prune_all(sessions: async_sessionmaker[AsyncSession]) -> str:
    """Prune everything (no pause between batches); says how long a batch took."""
    later = utcnow() + timedelta(days=365)
    started = time.perf_counter()
    pruned = await retention.prune(sessions, now=later, keep=timedelta(days=30))
    seconds = time.perf_counter() - started
    full_batches = max(1.0, pruned.notifications / retention.BATCH_SIZE)
    return (
        f"pruned {pruned.notifications:,} notifications in {pruned.batches} transactions: "
        f"{seconds / full_batches * 1000:.1f} ms per {retention.BATCH_SIZE} notifications"
    )


async def sqlite_size(engine: AsyncEngine, path: Path) -> int:
    async with engine.connect() as connection:
        await connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


async def sqlite_sizes(engine: AsyncEngine) -> dict[str, int]:
    """Bytes per table (with its indexes), per table's indexes, and of the retention index
    (SQLite's `dbstat` table)."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT m.tbl_name, m.type, m.name, SUM(d.pgsize) FROM dbstat d "
                "JOIN sqlite_master m ON m.name = d.name GROUP BY m.name"
            )
        )
        sizes: dict[str, int] = {}
        for table, kind, name, size in rows:
            sizes[table] = sizes.get(table, 0) + int(size)
            if kind == "index":
                sizes[f"{table} indexes"] = sizes.get(f"{table} indexes", 0) + int(size)
            sizes[name] = int(size)
    return sizes


async def postgres_sizes(engine: AsyncEngine, *, vacuum: bool = False) -> dict[str, int]:
    async with engine.connect() as connection:
        if vacuum:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("VACUUM " + ", ".join(TABLES)))
        sizes = {}
        for table in TABLES:
            sizes[table] = int(
                await connection.scalar(text(f"SELECT pg_total_relation_size('{table}')")) or 0
            )
            sizes[f"{table} indexes"] = int(
                await connection.scalar(text(f"SELECT pg_indexes_size('{table}')")) or 0
            )
        sizes[FINISHED_INDEX] = int(
            await connection.scalar(text(f"SELECT pg_relation_size('{FINISHED_INDEX}')")) or 0
        )
    return sizes


def breakdown(before: dict[str, int], after: dict[str, int], events: int) -> None:
    for table in TABLES:
        grown = after.get(table, 0) - before.get(table, 0)
        indexes = after.get(f"{table} indexes", 0) - before.get(f"{table} indexes", 0)
        print(
            f"            {table}: {grown / events:,.0f} bytes per event "
            f"(of which indexes {indexes / events:,.0f})"
        )
    index = after.get(FINISHED_INDEX, 0) - before.get(FINISHED_INDEX, 0)
    print(f"            of which {FINISHED_INDEX}: {index / events:,.1f} bytes per event")


def per_event(growth: int, events: int) -> str:
    return f"{growth:,} bytes = {growth / events:,.0f} bytes per event"


async def run_sqlite(events: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "relaybox.db"
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        try:
            sessions, instance_id, org_id = await setup(engine)
            before, tables_before = await sqlite_size(engine, path), await sqlite_sizes(engine)
            body_bytes = await write_events(sessions, instance_id, org_id, events)
            written = await sqlite_size(engine, path)
            print(f"sqlite:     {events:,} events: file grew {per_event(written - before, events)}")
            breakdown(tables_before, await sqlite_sizes(engine), events)
            print(f"            notification bodies alone: {per_event(body_bytes, events)}")
            for round_ in range(1, rounds + 1):
                print(f"            round {round_}: {await prune_all(sessions)}")
                if round_ == 1:
                    pruned = await sqlite_size(engine, path) - written
                    print(f"            file {pruned:+,} bytes (freed pages stay, for reuse)")
                await write_events(sessions, instance_id, org_id, events)
                again = await sqlite_size(engine, path)
                print(
                    f"            {events:,} written again: file {again - written:+,} bytes "
                    f"against the first {events:,}"
                )
        finally:
            await engine.dispose()


async def run_postgres(url: str, events: int, rounds: int) -> None:
    name = f"relaybox_bench_{uuid.uuid4().hex[:8]}"
    admin_url = url.replace("+asyncpg", "")
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    engine = create_engine(f"{url.rpartition('/')[0]}/{name}")
    try:
        sessions, instance_id, org_id = await setup(engine)
        before = await postgres_sizes(engine)
        await write_events(sessions, instance_id, org_id, events)
        written = await postgres_sizes(engine)
        total = sum(written[t] - before[t] for t in TABLES)
        print(f"postgresql: {events:,} events: relations grew {per_event(total, events)}")
        breakdown(before, written, events)
        for round_ in range(1, rounds + 1):
            print(f"            round {round_}: {await prune_all(sessions)}")
            await postgres_sizes(engine, vacuum=True)
            await write_events(sessions, instance_id, org_id, events)
            again = await postgres_sizes(engine)
            print(
                f"            VACUUM, {events:,} written again: "
                f"{sum(again[t] - written[t] for t in TABLES):+,} bytes against the first "
                f"{events:,}"
            )
    finally:
        await engine.dispose()
        admin = await asyncpg.connect(admin_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3, help="prune-and-refill rounds")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    args = parser.parse_args()
    await run_sqlite(args.events, args.rounds)
    await run_postgres(args.postgres, args.events, args.rounds)


if __name__ == "__main__":
    asyncio.run(main())
