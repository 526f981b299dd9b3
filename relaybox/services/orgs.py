"""Organizations and users: the bootstrap pair and the admin commands."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from relaybox.crypto import new_secret, secret_hash
from relaybox.runtime import Runtime
from relaybox.store import tables
from relaybox.store.db import transaction


@dataclass(frozen=True)
class NewCredentials:
    org_id: int
    user_secret: str
    org_secret: str | None


async def create_org(
    runtime: Runtime,
    name: str,
    email: str,
    user_secret: str | None = None,
    org_secret: str | None = None,
) -> NewCredentials:
    user_secret = user_secret or new_secret()
    org_secret = org_secret or new_secret()
    async with transaction(runtime.sessions) as session:
        org = tables.Organization(name=name, secret_hash=secret_hash(org_secret))
        session.add(org)
        await session.flush()
        session.add(tables.User(org_id=org.id, email=email, secret_hash=secret_hash(user_secret)))
    return NewCredentials(org.id, user_secret, org_secret)


async def create_user(runtime: Runtime, org_id: int, email: str) -> NewCredentials:
    user_secret = new_secret()
    async with transaction(runtime.sessions) as session:
        if await session.get(tables.Organization, org_id) is None:
            raise LookupError(f"no organization {org_id}")
        session.add(tables.User(org_id=org_id, email=email, secret_hash=secret_hash(user_secret)))
    return NewCredentials(org_id, user_secret, None)


async def bootstrap(runtime: Runtime) -> NewCredentials | None:
    """Seed the first organization once; returns credentials only when it created them.

    Secrets given in RELAYBOX_BOOTSTRAP_* are (re)installed if no user holds them yet, so a
    configured pair always works; generated secrets are returned once, to be printed once.
    """
    settings = runtime.settings
    user_secret, org_secret = settings.bootstrap_user_secret, settings.bootstrap_org_secret
    async with transaction(runtime.sessions) as session:
        orgs = await session.scalar(select(func.count()).select_from(tables.Organization))
        if user_secret and org_secret:
            known = await session.scalar(
                select(tables.User.id).where(tables.User.secret_hash == secret_hash(user_secret))
            )
            if known is not None:
                return None
        elif orgs:
            return None
    return await create_org(runtime, "default", "admin@localhost", user_secret, org_secret)


@dataclass(frozen=True)
class OrgSummary:
    id: int
    name: str
    users: int
    instances: int


async def list_orgs(runtime: Runtime) -> list[OrgSummary]:
    """Every organization with its number of users and instances (an operator's view)."""
    users = (
        select(func.count()).where(tables.User.org_id == tables.Organization.id).scalar_subquery()
    )
    instances = (
        select(func.count())
        .where(tables.Instance.org_id == tables.Organization.id)
        .scalar_subquery()
    )
    async with transaction(runtime.sessions) as session:
        rows = await session.execute(
            select(tables.Organization.id, tables.Organization.name, users, instances).order_by(
                tables.Organization.id
            )
        )
        return [OrgSummary(*row) for row in rows.all()]


@dataclass(frozen=True)
class UserSummary:
    id: int
    email: str
    created_at: datetime


async def list_users(runtime: Runtime, org_id: int) -> list[UserSummary]:
    """An organization's users, to name one to `revoke-user` or `rotate-user-secret`."""
    async with transaction(runtime.sessions) as session:
        if await session.get(tables.Organization, org_id) is None:
            raise LookupError(f"no organization {org_id}")
        rows = await session.execute(
            select(tables.User.id, tables.User.email, tables.User.created_at)
            .where(tables.User.org_id == org_id)
            .order_by(tables.User.id)
        )
        return [UserSummary(*row) for row in rows.all()]
