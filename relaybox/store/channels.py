"""Push channels as stored (tables.PushChannel): written before the provider makes them,
confirmed with its answer, looked up by the receiver, removed when stopped or replaced."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from relaybox.connectors.base import Channel
from relaybox.store import tables

PushChannel = tables.PushChannel
Instance = tables.Instance


@dataclass(frozen=True)
class Sender:
    """What the receiver needs of a channel's notification: whose, and its token's hash."""

    instance_id: int
    token_hash: str
    account_id: str | None
    secrets_enc: str


async def sender(session: AsyncSession, element_key: str, channel_id: str) -> Sender | None:
    row = (
        await session.execute(
            select(
                PushChannel.instance_id,
                PushChannel.token_hash,
                Instance.account_id,
                Instance.secrets_enc,
            )
            .join(Instance, Instance.id == PushChannel.instance_id)
            .where(PushChannel.channel_id == channel_id, Instance.element_key == element_key)
        )
    ).first()
    return None if row is None else Sender(row[0], row[1], row[2], row[3])


def wanted() -> Any:
    """Instances that want a push channel: events on, from webhooks, valid, listed."""
    return and_(
        Instance.events_enabled.is_(True),
        Instance.vendor_type == "webhooks",
        Instance.valid.is_(True),
        Instance.cursor.is_not(None),
    )


async def due(
    session: AsyncSession,
    element_keys: Sequence[str],
    now: datetime,
    renew_before: datetime,
    limit: int,
) -> list[int]:
    """Instances with no confirmed channel lasting past `renew_before`, and no worker
    making one (their lease ended)."""
    lasting = exists().where(
        PushChannel.instance_id == Instance.id,
        PushChannel.resource_id.is_not(None),
        PushChannel.expires_at > renew_before,
    )
    rows = await session.execute(
        select(Instance.id)
        .where(
            Instance.element_key.in_(element_keys),
            wanted(),
            or_(Instance.channel_lease_until.is_(None), Instance.channel_lease_until <= now),
            ~lasting,
        )
        .order_by(Instance.id)
        .limit(limit)
    )
    return [row[0] for row in rows]


async def lease(session: AsyncSession, instance_id: int, now: datetime, until: datetime) -> bool:
    """Take the making of an instance's next channel (False: another worker has it)."""
    result = await session.execute(
        update(Instance)
        .where(
            Instance.id == instance_id,
            or_(Instance.channel_lease_until.is_(None), Instance.channel_lease_until <= now),
        )
        .values(channel_lease_until=until)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def release(session: AsyncSession, instance_id: int) -> None:
    await session.execute(
        update(Instance)
        .where(Instance.id == instance_id)
        .values(channel_lease_until=None)
        .execution_options(synchronize_session=False)
    )


def add(
    session: AsyncSession,
    instance_id: int,
    channel_id: str,
    token_hash: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    session.add(
        PushChannel(
            channel_id=channel_id,
            instance_id=instance_id,
            token_hash=token_hash,
            created_at=now,
            expires_at=expires_at,
        )
    )


async def confirm(session: AsyncSession, channel: Channel) -> bool:
    """Record the provider's answer (False: the row was taken meanwhile)."""
    result = await session.execute(
        update(PushChannel)
        .where(PushChannel.channel_id == channel.channel_id)
        .values(resource_id=channel.resource_id, expires_at=channel.expires_at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def take(session: AsyncSession, condition: Any) -> list[tuple[int, Channel]]:
    """Delete the channels matching `condition` and return them (instance id, channel):
    whoever deletes a row stops its channel, so only one worker does."""
    rows = (
        await session.execute(
            select(
                PushChannel.instance_id,
                PushChannel.channel_id,
                PushChannel.resource_id,
                PushChannel.expires_at,
            ).where(condition)
        )
    ).all()
    taken = []
    for instance_id, channel_id, resource_id, expires_at in rows:
        gone = await session.execute(
            delete(PushChannel).where(PushChannel.channel_id == channel_id)
        )
        if gone.rowcount:  # type: ignore[attr-defined]
            taken.append((instance_id, Channel(channel_id, resource_id or "", expires_at)))
    return taken


def others_of(instance_id: int, keep: str) -> Any:
    """The instance's channels but `keep` (replaced by it)."""
    return and_(PushChannel.instance_id == instance_id, PushChannel.channel_id != keep)


def of_instance(instance_id: int) -> Any:
    return PushChannel.instance_id == instance_id


def unwanted(now: datetime, unconfirmed_before: datetime) -> Any:
    """Channels to end: their instance no longer wants one, they expired, or they were
    never confirmed (a worker died between writing the row and the provider's answer)."""
    return or_(
        PushChannel.instance_id.in_(select(Instance.id).where(~wanted())),
        PushChannel.expires_at <= now,
        and_(PushChannel.resource_id.is_(None), PushChannel.created_at <= unconfirmed_before),
    )
