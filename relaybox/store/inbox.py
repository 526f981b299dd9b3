"""The inbox: verified provider notifications and the passes they ask for.

A webhook is answered 200 only once its notification and the pass requests it makes are
committed: nothing acknowledged can be lost. Webhooks that arrive while a commit is under
way share the next one (store/groups.py): one transaction for the group.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, insert, literal, or_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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
    # Only instances of the app keys whose secret signed the body are asked.
    app_keys: Sequence[str]


def inbox_writer(sessions: async_sessionmaker[AsyncSession]) -> GroupCommit[Received, int]:
    """Stores received notifications; `submit` answers how many instances were asked."""
    return GroupCommit(sessions, store_received, name="inbox", max_group=500)


async def store_received(session: AsyncSession, group: Sequence[Received]) -> list[int]:
    """The inbox rows and pass requests of a group of notifications, in one transaction."""
    now = utcnow()
    # The newest notification naming an account is the one its pass reports as raw;
    # asking for a pass once per account and group is enough (requests coalesce).
    newest: dict[str, int] = {}
    for number, item in enumerate(group):
        for account in item.accounts:
            newest[account] = number
    asked: Counter[str] = Counter()
    for number, item in enumerate(group):
        accounts = [a for a in item.accounts if newest[a] == number]
        if accounts:
            asked.update(await request_webhook_passes(session, item, accounts, now))
    counts = [sum(asked[a] for a in item.accounts) for item in group]
    await session.execute(
        insert(tables.InboxItem),
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
    return counts


async def request_webhook_passes(
    session: AsyncSession, item: Received, accounts: Sequence[str], now: datetime
) -> list[str]:
    """One more pass for the webhook instances of these accounts whose app key signed the
    notification; the accounts of the instances asked (one per instance)."""
    instance = tables.Instance
    asked: list[str] = []
    for start in range(0, len(accounts), 500):
        result = await session.execute(
            update(instance)
            .where(
                instance.element_key == item.element_key,
                instance.account_id.in_(list(accounts[start : start + 500])),
                _of_apps(item.app_keys),
                instance.vendor_type == "webhooks",
            )
            .values(
                sync_requested=instance.sync_requested + 1,
                sync_notification=item.body,
                pass_queued_at=func.coalesce(
                    instance.pass_queued_at, literal(now, tables.UTCDateTime())
                ),
            )
            .returning(instance.account_id)
            .execution_options(synchronize_session=False)
        )
        asked.extend(str(account) for account in result.scalars())
    return asked


def _of_apps(app_keys: Sequence[str]) -> ColumnElement[bool]:
    """Instances of these app keys; "" stands for instances without one (apiKey ones)."""
    instance = tables.Instance
    named = instance.app_key.in_([key for key in app_keys if key])
    return or_(named, instance.app_key.is_(None)) if "" in app_keys else named
