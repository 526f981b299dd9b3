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

from sqlalchemy import ColumnElement, or_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaybox.core.clock import utcnow
from relaybox.store.db import transaction


def new_token(owner: str) -> str:
    return f"{owner}:{uuid.uuid4().hex[:12]}"


def free(model: Any, now: datetime) -> ColumnElement[bool]:
    """The row has no lease, or its lease has run out."""
    return or_(model.lease_until.is_(None), model.lease_until < now)


async def take(
    sessions: async_sessionmaker[AsyncSession],
    model: Any,
    key: Any,
    candidates: Sequence[Any],
    owner: str,
    seconds: float,
    *conditions: ColumnElement[bool],
) -> list[tuple[Any, str]]:
    """Lease each candidate that is still free (and meets `conditions`): [(key, token)]."""
    now = utcnow()
    until = now + timedelta(seconds=seconds)
    taken = []
    for candidate in candidates:
        token = new_token(owner)
        async with transaction(sessions) as session:
            result = await session.execute(
                update(model)
                .where(key == candidate, free(model, now), *conditions)
                .values(lease_owner=token, lease_until=until)
            )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            taken.append((candidate, token))
    return taken


async def renew(
    sessions: async_sessionmaker[AsyncSession],
    model: Any,
    key: Any,
    value: Any,
    token: str,
    seconds: float,
) -> bool:
    """Extend a lease still held; False when it was lost."""
    async with transaction(sessions) as session:
        result = await session.execute(
            update(model)
            .where(key == value, model.lease_owner == token)
            .values(lease_until=utcnow() + timedelta(seconds=seconds))
        )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]
