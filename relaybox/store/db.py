"""Engine, sessions and migrations for SQLite (embedded) and PostgreSQL (scale-out)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from relaybox.files import private_dir, private_file


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def private_sqlite(database: Path) -> None:
    """The database file (with its folder) created 0700/0600 before SQLite opens it, which
    then gives its -wal and -shm files the same mode; an older, wider file is narrowed."""
    private_dir(database.parent)
    private_file(database, create=True)
    for suffix in ("-wal", "-shm", "-journal"):
        private_file(database.with_name(database.name + suffix))


def create_engine(url: str) -> AsyncEngine:
    """An async engine; for SQLite the file is made private (files.py) and WAL mode switched on."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1].split("?", 1)[0] if "///" in url else ""
        if path and path != ":memory:":
            private_sqlite(Path(path))
        kwargs["connect_args"] = {"timeout": 30}
        # One connection per process: SQLite has one writer at a time, and a second
        # connection of the same process waiting for the write lock sleeps in SQLite's busy
        # handler (up to 100 ms a try) instead of queueing; the latency benchmark's p99
        # went from 1.75 s to 0.6 s. Transactions never span a network call.
        kwargs["pool_size"], kwargs["max_overflow"] = 1, 0
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def autocommit_engine(engine: AsyncEngine) -> AsyncEngine:
    """One autocommit connection to `engine`'s PostgreSQL database, for a writer whose
    every write is a single statement: no BEGIN and COMMIT round trips, and no ping at
    each checkout (a connection the server dropped fails one write, which the writer
    retries, and is replaced on the next checkout)."""
    return create_async_engine(
        engine.url, pool_size=1, max_overflow=0, isolation_level="AUTOCOMMIT"
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits on success, rolls back on any exception."""
    async with sessions() as session, session.begin():
        yield session


def _alembic_config() -> Config:
    folder = resources.files("relaybox.store") / "migrations"
    config = Config()
    config.set_main_option("script_location", str(folder))
    return config


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Many processes may start at once: only one migrates, the others wait for it.
        connection.execute(text("SELECT pg_advisory_xact_lock(7147001)"))
    config = _alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _current_heads(connection: Connection) -> tuple[set[str], set[str]]:
    context = MigrationContext.configure(connection)
    current = set(context.get_current_heads())
    heads = set(ScriptDirectory.from_config(_alembic_config()).get_heads())
    return current, heads


async def upgrade(engine: AsyncEngine) -> None:
    """Apply every pending migration (idempotent).

    SQLite alters a table in batch mode by copying it and dropping the original; with
    foreign keys enforced that drop would cascade to every row referring to it (an
    instance's index, events and notifications). So on SQLite the migrations run with
    foreign keys off (a pragma that only takes effect outside a transaction), are checked
    with `foreign_key_check` before the commit, and the connection gets them back after.
    """
    if engine.dialect.name != "sqlite":
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade)
        return
    async with engine.connect() as connection:
        await connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        await connection.commit()
        try:
            async with connection.begin():
                await connection.run_sync(_upgrade)
                broken = (await connection.exec_driver_sql("PRAGMA foreign_key_check")).first()
                if broken is not None:
                    raise RuntimeError(f"a migration broke a foreign key: {tuple(broken)}")
        finally:
            await connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            await connection.commit()


async def migrations_current(engine: AsyncEngine) -> bool:
    async with engine.connect() as connection:
        current, heads = await connection.run_sync(_current_heads)
    return current == heads
