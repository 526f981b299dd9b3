"""The inbox: verified provider notifications and the passes they ask for.

A webhook is answered 200 only once its notification and the pass requests it makes are
committed: nothing acknowledged can be lost. Webhooks that arrive while a commit is under
way share the next one (store/groups.py): one transaction for the group.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Table,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from relaybox.core.clock import utcnow
from relaybox.store import tables
from relaybox.store.groups import GroupCommit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Received:
    """One verified notification and whom it asks for a pass."""

    element_key: str
    body: dict[str, Any]
    accounts: Sequence[str]
    # The app secrets that verified the body: only instances holding one of them are asked.
    signers: frozenset[str]
    # The notification as one account's instances keep it (the provider's own filter).
    raw_for: Callable[[str], dict[str, Any]]


@dataclass(frozen=True)
class Stored:
    asked: int  # instances asked for a pass
    idle: int  # of those, how many a worker can claim now (no pass holds it, no pause)


SecretOf = Callable[[str], "str | None"]
"""The app secret sealed in an instance's `secrets_enc` (services/webhook_secrets.py)."""


def inbox_writer(
    sessions: async_sessionmaker[AsyncSession], secret_of: SecretOf, *, writers: int = 1
) -> GroupCommit[Received, Stored]:
    """Stores received notifications; `submit` answers whom they asked for a pass."""

    async def store(session: AsyncSession, group: Sequence[Received]) -> list[Stored]:
        return await store_received(session, group, secret_of)

    # No linger: under wrk's 32 connections a 2 ms linger cost a fifth of the acks/s
    # (each 200 waits for its group; docs/BENCHMARKS.md).
    return GroupCommit(sessions, store, name="inbox", max_group=500, writers=writers)


async def store_received(
    session: AsyncSession, group: Sequence[Received], secret_of: SecretOf
) -> list[Stored]:
    """The inbox rows and pass requests of a group of notifications, in one transaction."""
    now = utcnow()
    # The newest notification naming an account (from the same signers) is the one its
    # pass reports as raw; asking once per account, signers and group is enough
    # (requests coalesce). Notifications signed by other apps ask other instances.
    newest: dict[tuple[str, frozenset[str]], int] = {}
    for number, item in enumerate(group):
        for account in item.accounts:
            newest[account, item.signers] = number
    asked: Counter[tuple[str, frozenset[str]]] = Counter()
    idle: Counter[tuple[str, frozenset[str]]] = Counter()
    for number, item in enumerate(group):
        accounts = [a for a in item.accounts if newest[a, item.signers] == number]
        passes = await request_webhook_passes(session, item, accounts, now, secret_of)
        for account, is_idle in passes:
            asked[account, item.signers] += 1
            idle[account, item.signers] += is_idle
    counts = [sum(asked[a, item.signers] for a in item.accounts) for item in group]
    connection = await session.connection()
    await connection.execute(
        _STORE,
        [
            {
                "element_key": item.element_key,
                "body": item.body,
                "instance_count": count,
                "received_at": now,
            }
            for item, count in zip(group, counts, strict=True)
        ],
    )
    return [
        Stored(count, sum(idle[a, item.signers] for a in item.accounts))
        for item, count in zip(group, counts, strict=True)
    ]


async def request_webhook_passes(
    session: AsyncSession,
    item: Received,
    accounts: Sequence[str],
    now: datetime,
    secret_of: SecretOf,
) -> list[tuple[str, bool]]:
    """One more pass for the webhook instances of these accounts whose own app secret
    signed the notification; per instance asked, its account and whether a worker can
    claim it now (one that a pass holds is claimed again when its pass ends, one in a
    pause when the pause ends: nothing needs waking for those).

    An instance whose last request is still waiting for a pass (one that no pass holds
    yet) is not written to: the pass it waits for starts after this webhook arrived, so
    it fetches this change too. Besides saving a write, that keeps a storm of webhooks
    from holding the instance's row locked all the time, where PostgreSQL's claims
    (SKIP LOCKED) would pass over it again and again.

    Each instance keeps the notification as its own account would have received it
    (`Received.raw_for`): a webhook names every account of the app that changed, and
    neither another tenant's account ids nor a copy of the whole list belong with it.
    """
    connection = await session.connection()
    asked: list[tuple[str, bool]] = []
    for start in range(0, len(accounts), 500):
        chunk = list(accounts[start : start + 500])
        candidates = await connection.execute(
            _CANDIDATES, {"element_key": item.element_key, "accounts": chunk}
        )
        found = [row for row in candidates if secret_of(row.secrets_enc) in item.signers]
        await _ask(
            connection,
            [
                {"b_id": row.id, "b_notification": item.raw_for(str(row.account_id)), "b_now": now}
                for row in found
                if not _waiting(row, now)
            ],
        )
        asked.extend(
            (str(row.account_id), _claimable(row.lease_until, row.sync_not_before, now))
            for row in found
        )
    return asked


async def _ask(connection: AsyncConnection, requests: list[dict[str, Any]]) -> None:
    if requests:
        await connection.execute(_ASK, requests)


# Core statements, built once: this runs for every webhook group.
_INSTANCES = cast(Table, tables.Instance.__table__)
_CANDIDATES = (
    select(
        _INSTANCES.c.id,
        _INSTANCES.c.account_id,
        _INSTANCES.c.lease_until,
        _INSTANCES.c.sync_not_before,
        _INSTANCES.c.sync_requested,
        _INSTANCES.c.sync_done,
        _INSTANCES.c.secrets_enc,
    )
    .where(
        _INSTANCES.c.element_key == bindparam("element_key"),
        _INSTANCES.c.account_id.in_(bindparam("accounts", expanding=True)),
        _INSTANCES.c.vendor_type == "webhooks",
    )
    .order_by(_INSTANCES.c.id)  # rows locked in one order by every writer
)
_ASK = (
    update(_INSTANCES)
    .where(_INSTANCES.c.id == bindparam("b_id"), _INSTANCES.c.vendor_type == "webhooks")
    .values(
        sync_requested=_INSTANCES.c.sync_requested + 1,
        sync_notification=bindparam("b_notification", type_=JSON),
        pass_queued_at=func.coalesce(
            _INSTANCES.c.pass_queued_at, bindparam("b_now", type_=tables.UTCDateTime())
        ),
    )
)
_STORE = insert(cast(Table, tables.InboxItem.__table__))


def _held(lease_until: datetime | None, now: datetime) -> bool:
    return lease_until is not None and lease_until >= now


def _waiting(row: Any, now: datetime) -> bool:
    """Asked for a pass that has not started yet."""
    return bool(row.sync_requested > row.sync_done) and not _held(row.lease_until, now)


def _claimable(lease_until: datetime | None, not_before: datetime | None, now: datetime) -> bool:
    return not _held(lease_until, now) and (not_before is None or not_before <= now)
