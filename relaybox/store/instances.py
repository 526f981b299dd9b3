"""Queries over the instances table shared by the API and the console."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from relaybox.store import tables


async def of_org(
    session: AsyncSession, org_id: int, *, tags: Collection[str] = ()
) -> Sequence[tables.Instance]:
    """The organization's instances, oldest first; with `tags`, those carrying any of them
    (`GET /instances?tags[]=a&tags[]=b`, docs/compatibility.md). Tags live in a JSON list,
    so they are matched here rather than in SQL, the same on SQLite and PostgreSQL."""
    query = select(tables.Instance).where(tables.Instance.org_id == org_id)
    rows = (await session.scalars(query.order_by(tables.Instance.id))).all()
    if not tags:
        return rows
    wanted = set(tags)
    return [row for row in rows if wanted.intersection(row.tags or ())]


async def owners(session: AsyncSession, rows: Sequence[tables.Instance]) -> dict[int, tables.User]:
    """The user behind each instance, by instance id: the one who created it or, when that
    user is gone (or the instance predates migration 0005), the organization's first."""
    if not rows:
        return {}
    wanted = {row.user_id for row in rows if row.user_id is not None}
    users = {
        user.id: user
        for user in await session.scalars(select(tables.User).where(tables.User.id.in_(wanted)))
    }
    found: dict[int, tables.User] = {}
    first: dict[int, tables.User | None] = {}
    for row in rows:
        user = users.get(row.user_id) if row.user_id is not None else None
        if user is None:
            if row.org_id not in first:
                first[row.org_id] = await session.scalar(
                    select(tables.User)
                    .where(tables.User.org_id == row.org_id)
                    .order_by(tables.User.id)
                    .limit(1)
                )
            user = first[row.org_id]
        if user is not None:
            found[row.id] = user
    return found
