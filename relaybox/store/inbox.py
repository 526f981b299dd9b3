"""The inbox: verified provider notifications and the passes they ask for.

A webhook is answered 200 only once its notification and the pass requests it makes are
committed: nothing acknowledged can be lost. Webhooks that arrive while a commit is under
way share the next one (store/groups.py): one transaction for the group.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    JSON,
    BigInteger,
    Integer,
    Table,
    Text,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from relaybox.core.clock import Clock, utcnow
from relaybox.store import tables
from relaybox.store.db import autocommit_engine, session_factory
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
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    secret_of: SecretOf,
    clock: Clock | None = None,
) -> GroupCommit[Received, Stored]:
    """Stores received notifications; `submit` answers whom they asked for a pass.

    One writer, no linger: each 200 waits for its group, and under wrk's 32 connections
    both a 2 ms linger and a second writer (smaller groups) cost more acks/s than they
    saved (docs/BENCHMARKS.md). On PostgreSQL the groups are written on a connection of
    their own in autocommit mode, each group's writes in one statement (`_ASK_AND_STORE`):
    no BEGIN, COMMIT or checkout ping, two round trips for a group instead of seven.
    """
    closing = None
    if engine.dialect.name == "postgresql":
        writer = autocommit_engine(engine)
        sessions, closing = session_factory(writer), writer.dispose

    async def store(session: AsyncSession, group: Sequence[Received]) -> list[Stored]:
        now = clock.now() if clock is not None else utcnow()
        return await store_received(session, group, secret_of, now=now)

    return GroupCommit(sessions, store, name="inbox", max_group=500, closing=closing)


async def store_received(
    session: AsyncSession,
    group: Sequence[Received],
    secret_of: SecretOf,
    *,
    now: datetime | None = None,
) -> list[Stored]:
    """The inbox rows and pass requests of a group of notifications, written together."""
    now = now or utcnow()
    connection = await session.connection()
    # The newest notification naming an account (from the same signers) is the one its
    # pass reports as raw; asking once per account, signers and group is enough
    # (requests coalesce). Notifications signed by other apps ask other instances.
    newest: dict[tuple[str, frozenset[str]], int] = {}
    for number, item in enumerate(group):
        for account in item.accounts:
            newest[account, item.signers] = number
    asked: Counter[tuple[str, frozenset[str]]] = Counter()
    idle: Counter[tuple[str, frozenset[str]]] = Counter()
    asks: dict[int, dict[str, Any]] = {}  # by instance: the newest notification asking
    for number, item in enumerate(group):
        accounts = [a for a in item.accounts if newest[a, item.signers] == number]
        for row in await webhook_instances(connection, item, accounts, secret_of):
            account = str(row.account_id)
            asked[account, item.signers] += 1
            idle[account, item.signers] += _claimable(row.lease_until, row.sync_not_before, now)
            if not _waiting(row, now):
                asks[row.id] = item.raw_for(account)
    counts = [sum(asked[a, item.signers] for a in item.accounts) for item in group]
    await _write(
        connection,
        asks,
        [(item.element_key, item.body, count) for item, count in zip(group, counts, strict=True)],
        now,
    )
    return [
        Stored(count, sum(idle[a, item.signers] for a in item.accounts))
        for item, count in zip(group, counts, strict=True)
    ]


async def webhook_instances(
    connection: AsyncConnection, item: Received, accounts: Sequence[str], secret_of: SecretOf
) -> list[Any]:
    """The webhook instances of these accounts whose own app secret signed the
    notification: the ones it asks for one more pass.

    An instance whose last request is still waiting for a pass (one that no pass holds
    yet) is not written to (`_waiting`): the pass it waits for starts after this webhook
    arrived, so it fetches this change too. Besides saving a write, that keeps a storm of
    webhooks from holding the instance's row locked all the time, where PostgreSQL's
    claims (SKIP LOCKED) would pass over it again and again.

    Each instance keeps the notification as its own account would have received it
    (`Received.raw_for`): a webhook names every account of the app that changed, and
    neither another tenant's account ids nor a copy of the whole list belong with it.
    """
    found: list[Any] = []
    for start in range(0, len(accounts), 500):
        chunk = list(accounts[start : start + 500])
        candidates = await connection.execute(
            _CANDIDATES, {"element_key": item.element_key, "accounts": chunk}
        )
        found += [row for row in candidates if secret_of(row.secrets_enc) in item.signers]
    return found


async def _write(
    connection: AsyncConnection,
    asks: dict[int, dict[str, Any]],
    received: list[tuple[str, dict[str, Any], int]],
    now: datetime,
) -> None:
    """The pass requests and the inbox rows, all or nothing."""
    if connection.dialect.name == "postgresql":  # autocommit: one statement is atomic
        await connection.execute(
            _ASK_AND_STORE,
            {
                "ask_ids": list(asks),
                "ask_notifications": [json.dumps(n) for n in asks.values()],
                "keys": [key for key, _, _ in received],
                "bodies": [json.dumps(body) for _, body, _ in received],
                "counts": [count for _, _, count in received],
                "now": now,
            },
        )
        return
    # SQLite (inside the group's transaction).
    if asks:
        await connection.execute(
            _ASK,
            [{"b_id": i, "b_notification": n, "b_now": now} for i, n in asks.items()],
        )
    await connection.execute(
        _STORE,
        [
            {"element_key": key, "body": body, "instance_count": count, "received_at": now}
            for key, body, count in received
        ],
    )


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
# PostgreSQL: `_ASK` and `_STORE` for a whole group as one statement (the UPDATE runs as
# a data-modifying CTE), so the group needs no transaction of its own.
_ASK_AND_STORE = text(
    """
    WITH asked AS (
        UPDATE instances AS i
        SET sync_requested = i.sync_requested + 1,
            sync_notification = a.notification,
            pass_queued_at = coalesce(i.pass_queued_at, :now)
        FROM unnest(CAST(:ask_ids AS BIGINT[]), CAST(:ask_notifications AS JSON[]))
            AS a (id, notification)
        WHERE i.id = a.id AND i.vendor_type = 'webhooks'
    )
    INSERT INTO inbox (element_key, body, instance_count, received_at)
    SELECT r.element_key, r.body, r.instance_count, :now
    FROM unnest(CAST(:keys AS VARCHAR[]), CAST(:bodies AS JSON[]), CAST(:counts AS INTEGER[]))
        AS r (element_key, body, instance_count)
    """
).bindparams(
    bindparam("ask_ids", type_=ARRAY(BigInteger)),
    bindparam("ask_notifications", type_=ARRAY(Text)),
    bindparam("keys", type_=ARRAY(Text)),
    bindparam("bodies", type_=ARRAY(Text)),
    bindparam("counts", type_=ARRAY(Integer)),
    bindparam("now", type_=tables.UTCDateTime()),
)


def _held(lease_until: datetime | None, now: datetime) -> bool:
    return lease_until is not None and lease_until >= now


def _waiting(row: Any, now: datetime) -> bool:
    """Asked for a pass that has not started yet."""
    return bool(row.sync_requested > row.sync_done) and not _held(row.lease_until, now)


def _claimable(lease_until: datetime | None, not_before: datetime | None, now: datetime) -> bool:
    return not _held(lease_until, now) and (not_before is None or not_before <= now)
