"""Revoking and rotating credentials (`relaybox admin revoke-user`, `rotate-user-secret`,
`rotate-org-secret`).

A new secret is returned once, to be printed once; only its hash is stored. Each change
ends, in the same transaction, the console sessions made with the old secret
(store/console_sessions.py): the user's for a user's secret, every user's of the
organization for its secret (a session was opened with both). A revoked user's row is
deleted, and their sessions with it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from relaybox.crypto import new_secret, secret_hash
from relaybox.runtime import Runtime
from relaybox.store import console_sessions, tables
from relaybox.store.db import transaction


@dataclass(frozen=True)
class Rotated:
    secret: str
    sessions_ended: int


async def revoke_user(runtime: Runtime, user_id: int) -> int:
    """Delete a user: their secret stops working at once. Returns the sessions ended."""
    async with transaction(runtime.sessions) as session:
        ended = await console_sessions.end_for_user(session, user_id)
        done = await session.execute(delete(tables.User).where(tables.User.id == user_id))
        if not done.rowcount:  # type: ignore[attr-defined]
            raise LookupError(f"no user {user_id}")
    return ended


async def rotate_user_secret(runtime: Runtime, user_id: int) -> Rotated:
    """A new secret for a user; the old one, and the user's sessions, stop working at once."""
    return await _rotate(runtime, tables.User, user_id, console_sessions.end_for_user)


async def rotate_org_secret(runtime: Runtime, org_id: int) -> Rotated:
    """A new secret for an organization; the old one, and every session of its users, stop
    working at once."""
    return await _rotate(runtime, tables.Organization, org_id, console_sessions.end_for_org)


async def _rotate(
    runtime: Runtime,
    holder: type[tables.User] | type[tables.Organization],
    holder_id: int,
    end_sessions: Callable[[AsyncSession, int], Awaitable[int]],
) -> Rotated:
    secret = new_secret()
    async with transaction(runtime.sessions) as session:
        done = await session.execute(
            update(holder).where(holder.id == holder_id).values(secret_hash=secret_hash(secret))
        )
        if not done.rowcount:  # type: ignore[attr-defined]
            what = "user" if holder is tables.User else "organization"
            raise LookupError(f"no {what} {holder_id}")
        ended = await end_sessions(session, holder_id)
    return Rotated(secret, ended)
