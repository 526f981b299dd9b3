"""Leases: how a worker owns a row (an instance's pass, a notification's attempt) for a while.

Each claim gets its own token, so a worker can tell its current lease from an older one of
its own; every write that finishes the work is guarded by `lease_owner = token`, so work
whose lease expired and was taken over is discarded instead of applied twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaybox.store.db import transaction


def new_token(owner: str) -> str:
    return f"{owner}:{uuid.uuid4().hex[:12]}"


def free(model: Any, now: datetime) -> ColumnElement[bool]:
    """The row has no lease, or its lease has run out."""
    return or_(model.lease_until.is_(None), model.lease_until < now)


async def take(
    session: AsyncSession,
    model: Any,
    key: Any,
    candidates: Select[Any] | Sequence[Any],
    owner: str,
    seconds: float,
    *conditions: ColumnElement[bool],
    now: datetime,
    returning: Sequence[Any] = (),
    **values: Any,
) -> list[tuple[Row[Any], str]]:
    """Lease, in one statement, each candidate still free (and meeting `conditions`).

    `candidates` is a list of keys or a query selecting them; on PostgreSQL a query's rows
    are locked with SKIP LOCKED, so concurrent claimers divide the work instead of queueing
    behind each other. Every row of one claim shares one token (a claim is one lease
    decision); `values` are written with the lease. Returns [(row, token)], where a row holds
    the key and the `returning` columns as the lease left them, in key order.
    """
    token = new_token(owner)
    if isinstance(candidates, Select):
        if session.get_bind().dialect.name == "postgresql":
            # Materialized, so the LIMIT holds: as a plain subquery PostgreSQL may run it
            # again for each row it updates, each run skipping the rows locked so far.
            locked = candidates.with_for_update(skip_locked=True)
            due = locked.cte("due").prefix_with("MATERIALIZED")
            chosen: Any = select(due.c[0])
        else:
            chosen = candidates.scalar_subquery()
    elif candidates:
        chosen = list(candidates)
    else:
        return []
    result = await session.execute(
        update(model)
        .where(key.in_(chosen), free(model, now), *conditions)
        .values(lease_owner=token, lease_until=now + timedelta(seconds=seconds), **values)
        .returning(key, *returning)
        .execution_options(synchronize_session=False)
    )
    return [(row, token) for row in sorted(result.all(), key=lambda row: row[0])]


async def renew(
    sessions: async_sessionmaker[AsyncSession],
    model: Any,
    key: Any,
    value: Any,
    token: str,
    seconds: float,
    *,
    now: datetime,
) -> bool:
    """Extend a lease still held; False when it was lost."""
    async with transaction(sessions) as session:
        result = await session.execute(
            update(model)
            .where(key == value, model.lease_owner == token)
            .values(lease_until=now + timedelta(seconds=seconds))
        )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]
