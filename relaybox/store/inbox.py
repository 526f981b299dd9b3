"""The inbox: verified provider notifications, written with group commit.

A webhook is answered 200 only once its notification and the pass requests it makes are
committed: nothing acknowledged can be lost. Committing each webhook alone costs a whole
transaction per request, so webhooks that arrive while a commit is under way wait for the
next one and share it: one transaction for the whole group, one UPDATE per distinct
notification. Nothing waits on a timer; a webhook that arrives alone is committed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, insert, literal, or_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaybox.core.clock import utcnow
from relaybox.store import tables
from relaybox.store.db import transaction

log = logging.getLogger(__name__)

MAX_GROUP = 500


@dataclass
class Received:
    """One verified notification and whom it asks for a pass."""

    element_key: str
    body: dict[str, Any]
    accounts: Sequence[str]
    # Only instances of the app keys whose secret signed the body are asked.
    app_keys: Sequence[str]
    done: asyncio.Future[int] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class InboxWriter:
    """Stores received notifications in groups; `store` returns once its group committed."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._queue: asyncio.Queue[Received] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def store(
        self,
        element_key: str,
        body: dict[str, Any],
        accounts: Sequence[str],
        app_keys: Sequence[str],
    ) -> int:
        """Store one notification and request its passes; how many instances were asked."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        item = Received(element_key, body, accounts, app_keys)
        self._queue.put_nowait(item)
        return await item.done

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            group = [await self._queue.get()]
            while len(group) < MAX_GROUP and not self._queue.empty():
                group.append(self._queue.get_nowait())
            try:
                counts = await self._commit(group)
            except Exception as exc:  # every waiter hears of it; Dropbox will retry
                log.exception("storing %s received notifications failed", len(group))
                for item in group:
                    if not item.done.done():
                        item.done.set_exception(exc)
                continue
            for item, count in zip(group, counts, strict=True):
                if not item.done.done():
                    item.done.set_result(count)

    async def _commit(self, group: list[Received]) -> list[int]:
        now = utcnow()
        # The newest notification naming an account is the one its pass reports as raw;
        # asking for a pass once per account and group is enough (requests coalesce).
        newest: dict[str, int] = {}
        for number, item in enumerate(group):
            for account in item.accounts:
                newest[account] = number
        asked: Counter[str] = Counter()
        async with transaction(self.sessions) as session:
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
