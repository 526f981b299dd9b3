"""Change passes: fetch what changed since an instance's cursor and turn it into events.

One pass per instance at a time (a lease on the instance row). The new cursor, the index
changes, the events and the notifications that carry them are written in ONE transaction,
guarded by the lease, so a crash anywhere repeats the pass instead of losing or doubling it
(store/pass_results.py; passes that finish together share that transaction).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from relaybox.connectors.base import Connector
from relaybox.connectors.paging import Fetched, read_changes, with_parents
from relaybox.core.backoff import backoff
from relaybox.core.errors import (
    ProviderAuthError,
    ProviderError,
    RateLimited,
    TokenExpired,
)
from relaybox.metrics import EVENTS, PASS_SECONDS, PASSES
from relaybox.runtime import Runtime
from relaybox.services.access import AccessTokens
from relaybox.services.instances import InstanceService
from relaybox.store import index as index_store
from relaybox.store import leases, tables
from relaybox.store.db import transaction
from relaybox.store.groups import GroupCommit
from relaybox.store.pass_results import (
    QUIET_PASS_PAUSE,
    Applied,
    PassResult,
    apply_passes,
)
from relaybox.store.passes import fetchable

log = logging.getLogger(__name__)

# Back-off after a failed pass (5xx, timeout, a 400), doubled per consecutive failure, capped.
OUTAGE_BACKOFF_BASE = 2.0
OUTAGE_BACKOFF_CAP = 600.0
MAX_PASS_ENTRIES = 5000
UNREADABLE_SECRETS = "the instance's secrets cannot be decrypted with the configured key"


PassCommits = GroupCommit[PassResult, Applied]
"""Where finished passes are written, several to a transaction (store/groups.py)."""


def pass_commits(runtime: Runtime) -> PassCommits:
    return GroupCommit(runtime.sessions, apply_passes, name="passes", max_group=64, linger=0.005)


class LeaseLost(Exception):
    """Another worker owns the instance now; this pass must not be applied."""


@dataclass(frozen=True)
class Claimed:
    """A leased instance and what its pass starts from, as the claim itself read it."""

    instance_id: int
    element_key: str
    token: str
    cursor: str | None
    requested: int
    notification: dict[str, Any] | None
    secrets_enc: str
    configuration: dict[str, Any]
    expires_at: datetime | None
    account_id: str | None = None  # the provider account (Connector.folders caches by it)

    def __str__(self) -> str:  # what a log line names: never the secrets
        return f"pass of instance {self.instance_id}"


async def claim(runtime: Runtime, owner: str, limit: int = 10) -> list[Claimed]:
    """Lease instances that have a pass pending, oldest request first.

    The order is `pass_queued_at` (when the oldest request not yet taken up by a pass was
    made), so an instance whose webhooks keep coming waits its turn behind the others
    instead of starving them. One statement claims the whole batch and reads what each
    pass starts from.
    """
    now = runtime.clock.now()
    instance = tables.Instance
    due = (
        select(instance.id)
        .where(
            or_(instance.sync_requested > instance.sync_done, instance.indexing.is_(True)),
            fetchable(),
            leases.free(instance, now),
            or_(instance.sync_not_before.is_(None), instance.sync_not_before <= now),
        )
        .order_by(instance.pass_queued_at.asc().nulls_first(), instance.id)
        .limit(limit)
    )
    async with transaction(runtime.sessions) as session:
        taken = await leases.take(
            session,
            instance,
            instance.id,
            due,
            owner,
            runtime.settings.lease_seconds,
            now=now,
            returning=(
                instance.element_key,
                instance.account_id,
                instance.cursor,
                instance.sync_requested,
                instance.sync_notification,
                instance.secrets_enc,
                instance.configuration,
                instance.access_token_expires_at,
            ),
            pass_queued_at=None,
        )
    return [
        Claimed(
            instance_id=row.id,
            element_key=row.element_key,
            token=token,
            cursor=row.cursor,
            requested=row.sync_requested,
            notification=row.sync_notification,
            secrets_enc=row.secrets_enc,
            configuration=row.configuration,
            expires_at=row.access_token_expires_at,
            account_id=row.account_id,
        )
        for row, token in taken
    ]


def outage_backoff(failures: int) -> timedelta:
    """How long to leave an instance alone after `failures` consecutive failed passes."""
    return timedelta(
        seconds=backoff(failures, base=OUTAGE_BACKOFF_BASE, cap=OUTAGE_BACKOFF_CAP, jitter=0.2)
    )


class ChangePass:
    """One pass over one leased instance."""

    def __init__(self, runtime: Runtime, claimed: Claimed, commits: PassCommits) -> None:
        self.runtime = runtime
        self.claimed = claimed
        self.commits = commits
        self.token = claimed.token
        self.instance_id = claimed.instance_id
        self.instances = InstanceService(runtime)
        self.connector: Connector = runtime.connector(claimed.element_key)
        self.access = AccessTokens(runtime, claimed.instance_id, self.connector)
        self.started_from = claimed.cursor or ""

    async def run(self) -> None:
        started = time.monotonic()
        claimed = self.claimed
        if not claimed.cursor:
            return
        requested, cursor = claimed.requested, claimed.cursor
        notification = claimed.notification
        expires_at = claimed.expires_at
        try:
            creds = self.instances.unseal(claimed.secrets_enc, claimed.configuration)
        except ValueError:  # sealed under a key this process does not have
            await self._release(not_before=None, failed=True, message=UNREADABLE_SECRETS)
            PASSES.labels("failed").inc()
            return
        try:
            token = await self.access.fresh(creds, expires_at)
            try:
                fetched = await self._fetch(token, cursor)
            except TokenExpired:
                token = await self.access.refresh(creds)
                fetched = await self._fetch(token, cursor)
        except LeaseLost as exc:
            log.info("%s", exc)
            PASSES.labels("lease_lost").inc()
            return
        except ProviderAuthError as exc:
            await self._mark_invalid(str(exc.message))
            PASSES.labels("invalid").inc()
            return
        except RateLimited as exc:
            await self._release(not_before=timedelta(seconds=exc.retry_after), failed=False)
            PASSES.labels("rate_limited").inc()
            return
        except ProviderError as exc:
            log.warning("instance %s: change pass failed: %s", self.instance_id, exc.message)
            await self._release(not_before=None, failed=True, message=exc.message)
            PASSES.labels("failed").inc()
            return
        try:
            await self._commit(fetched, requested, notification)
        except SQLAlchemyError:
            # Give the instance back (with back-off) rather than hold it for a whole lease;
            # after a commit that did go through, the lease is gone and this changes nothing.
            log.exception("instance %s: writing the pass failed", self.instance_id)
            await self._release(not_before=None, failed=True, message="writing the pass failed")
            PASSES.labels("failed").inc()
            return
        PASSES.labels("reset" if fetched.reset else "ok").inc()
        PASS_SECONDS.observe(time.monotonic() - started)

    async def _fetch(self, token: str, cursor: str) -> Fetched:
        fetched = await read_changes(
            self.connector, token, cursor, max_changes=MAX_PASS_ENTRIES, renew=self._renew
        )
        changes = await with_parents(
            self.connector,
            token,
            self.claimed.account_id,
            fetched.changes,
            self._held,
            renew=self._renew,
        )
        return replace(fetched, changes=changes)

    async def _held(self, object_ids: set[str]) -> set[str]:
        async with self.runtime.sessions() as session:
            return await index_store.held_ids(session, self.instance_id, object_ids)

    async def _renew(self) -> None:
        """Keep the lease through a long fetch; give up the pass when it was lost."""
        held = await leases.renew(
            self.runtime.sessions,
            tables.Instance,
            tables.Instance.id,
            self.instance_id,
            self.token,
            self.runtime.settings.lease_seconds,
            now=self.runtime.clock.now(),
        )
        if not held:
            raise LeaseLost(f"instance {self.instance_id}: lease lost during a pass")

    async def _commit(
        self, fetched: Fetched, requested: int, notification: dict[str, Any] | None
    ) -> None:
        """Write the pass, in a transaction shared with the passes finishing with it."""
        result = PassResult(
            self.instance_id,
            self.token,
            self.started_from,
            requested,
            notification,
            fetched,
            finished_at=self.runtime.clock.now(),
        )
        applied = await self.commits.submit(result)
        if not applied.applied:
            log.warning("instance %s: lease lost, pass discarded", self.instance_id)
            return
        for event in applied.events:
            EVENTS.labels(event.event_type).inc()
        if applied.notifications:
            self.runtime.wakeups.delivery.set()
        if fetched.has_more:
            self.runtime.wakeups.changes.set()
        if applied.paused:  # a request made during the pause is claimed when it ends
            wake = self.runtime.wakeups.changes
            asyncio.get_running_loop().call_later(QUIET_PASS_PAUSE.total_seconds(), wake.set)

    async def _mark_invalid(self, message: str) -> None:
        log.warning("instance %s is no longer valid: %s", self.instance_id, message)
        async with transaction(self.runtime.sessions) as session:
            await session.execute(
                update(tables.Instance)
                .where(
                    tables.Instance.id == self.instance_id,
                    tables.Instance.lease_owner == self.token,
                )
                .values(valid=False, status_message=message, lease_owner=None, lease_until=None)
            )

    async def _release(
        self, *, not_before: timedelta | None, failed: bool, message: str | None = None
    ) -> None:
        async with transaction(self.runtime.sessions) as session:
            row = await session.get(tables.Instance, self.instance_id)
            if row is None or row.lease_owner != self.token:
                return
            if failed:
                row.sync_failures += 1
                not_before = outage_backoff(row.sync_failures)
                said = f"{self.connector.name}: {message}" if message else None
                row.status_message = said or row.status_message
            row.lease_owner, row.lease_until = None, None
            row.sync_not_before = self.runtime.clock.now() + (not_before or timedelta())
            # It rejoins the queue when its back-off ends, behind whoever asked before then.
            row.pass_queued_at = row.sync_not_before
