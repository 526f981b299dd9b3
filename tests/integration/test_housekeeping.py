"""Housekeeping against a real database: old inbox rows go, recent ones stay."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import select

from relaybox.config import Settings
from relaybox.core.clock import utcnow
from relaybox.pipeline.housekeeping import prune_inbox
from relaybox.runtime import Runtime
from relaybox.store import tables
from relaybox.store.db import transaction


async def test_inbox_rows_past_the_retention_are_pruned(tmp_path: Path, database_url: str) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        secret_key=Fernet.generate_key().decode(),
        inbox_retention_days=7,
    )
    runtime = await Runtime.start(settings)
    try:
        now = utcnow()
        async with transaction(runtime.sessions) as session:
            for age_days, marker in ((8, "old"), (6, "recent"), (0, "new")):
                session.add(
                    tables.InboxItem(
                        element_key="dropbox",
                        body={"marker": marker},
                        received_at=now - timedelta(days=age_days),
                    )
                )
        assert await prune_inbox(runtime) == 1
        async with transaction(runtime.sessions) as session:
            kept = [row.body["marker"] for row in await session.scalars(select(tables.InboxItem))]
        assert sorted(kept) == ["new", "recent"]
        assert await prune_inbox(runtime) == 0
    finally:
        await runtime.close()
