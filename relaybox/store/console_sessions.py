"""Console sessions: started at sign-in, ended by sign-out, by the user's revocation (the
rows go with the user) and by a rotation of the user's or the organization's secret
(services/credentials.py). A session id is random (256 bits) and lives only in the
encrypted cookie (web/session.py); the table keeps its hash, so a copy of the table opens
no session."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from relaybox.crypto import secret_hash
from relaybox.store.tables import ConsoleSession, User


async def start(
    session: AsyncSession, user_id: int, session_id: str, *, now: datetime, expires: datetime
) -> None:
    """Record a new session of `user_id`; expired sessions are removed on the way."""
    await session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))
    session.add(
        ConsoleSession(
            id_hash=secret_hash(session_id), user_id=user_id, created_at=now, expires_at=expires
        )
    )


async def user_of(session: AsyncSession, session_id: str, *, now: datetime) -> User | None:
    """The user whose live session `session_id` is, or None (ended, expired, unknown)."""
    found: User | None = await session.scalar(
        select(User)
        .join(ConsoleSession, ConsoleSession.user_id == User.id)
        .where(ConsoleSession.id_hash == secret_hash(session_id), ConsoleSession.expires_at > now)
    )
    return found


async def end(session: AsyncSession, session_id: str) -> None:
    """Sign-out: this session only."""
    await session.execute(
        delete(ConsoleSession).where(ConsoleSession.id_hash == secret_hash(session_id))
    )


async def end_for_user(session: AsyncSession, user_id: int) -> int:
    """Every session of one user; returns how many were live or expired."""
    done = await session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user_id))
    return int(done.rowcount)  # type: ignore[attr-defined]


async def end_for_org(session: AsyncSession, org_id: int) -> int:
    """Every session of every user of one organization."""
    users = select(User.id).where(User.org_id == org_id)
    done = await session.execute(delete(ConsoleSession).where(ConsoleSession.user_id.in_(users)))
    return int(done.rowcount)  # type: ignore[attr-defined]
