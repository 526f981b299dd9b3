"""Change passes: fetch what changed since an instance's cursor and turn it into events.

One pass per instance at a time (a lease on the instance row). The new cursor, the index
changes, the events and the notifications that carry them are written in ONE transaction,
guarded by the lease, so a crash anywhere repeats the pass instead of losing or doubling it.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from relaybox.connectors.dropbox.client import TokenSet
from relaybox.core.backoff import backoff
from relaybox.core.clock import utcnow
from relaybox.core.errors import (
    CursorReset,
    ProviderAuthError,
    ProviderError,
    RateLimited,
    TokenExpired,
)
from relaybox.core.normalize import Changes, normalize, reconcile
from relaybox.core.notification import InstanceInfo, notification_body
from relaybox.metrics import EVENTS, PASS_SECONDS, PASSES
from relaybox.runtime import Runtime
from relaybox.services.instances import Credentials, InstanceService
from relaybox.store import index as index_store
from relaybox.store import leases, tables
from relaybox.store.db import transaction
from relaybox.store.passes import fetchable

log = logging.getLogger(__name__)

WEBHOOK_BATCH = 20
POLLING_BATCH = 10
# Refresh an access token this long before Dropbox says it expires.
REFRESH_MARGIN = timedelta(minutes=5)
# Back-off after a failed pass (5xx, timeout, a 400), doubled per consecutive failure, capped.
OUTAGE_BACKOFF_BASE = 2.0
OUTAGE_BACKOFF_CAP = 600.0
MAX_PASS_ENTRIES = 5000


@dataclass(frozen=True)
class Fetched:
    entries: list[dict[str, Any]]
    cursor: str
    reset: bool
    has_more: bool


class LeaseLost(Exception):
    """Another worker owns the instance now; this pass must not be applied."""


@dataclass(frozen=True)
class Claimed:
    """A leased instance and what its pass starts from, as the claim itself read it."""

    instance_id: int
    token: str
    cursor: str | None
    requested: int
    notification: dict[str, Any] | None
    secrets_enc: str
    configuration: dict[str, Any]
    expires_at: datetime | None


async def claim(runtime: Runtime, owner: str, limit: int = 10) -> list[Claimed]:
    """Lease instances that have a pass pending, oldest request first.

    The order is `pass_queued_at` (when the oldest request not yet taken up by a pass was
    made), so an instance whose webhooks keep coming waits its turn behind the others
    instead of starving them. One statement claims the whole batch and reads what each
    pass starts from.
    """
    now = utcnow()
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
            returning=(
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
            token=token,
            cursor=row.cursor,
            requested=row.sync_requested,
            notification=row.sync_notification,
            secrets_enc=row.secrets_enc,
            configuration=row.configuration,
            expires_at=row.access_token_expires_at,
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

    def __init__(self, runtime: Runtime, claimed: Claimed) -> None:
        self.runtime = runtime
        self.claimed = claimed
        self.token = claimed.token
        self.instance_id = claimed.instance_id
        self.instances = InstanceService(runtime)
        self.started_from = claimed.cursor or ""

    async def run(self) -> None:
        started = time.monotonic()
        claimed = self.claimed
        if not claimed.cursor:
            return
        requested, cursor = claimed.requested, claimed.cursor
        notification = claimed.notification
        creds = self.instances.unseal(claimed.secrets_enc, claimed.configuration)
        expires_at = claimed.expires_at
        try:
            token = await self._fresh_token(creds, expires_at)
            try:
                fetched = await self._fetch(token, cursor)
            except TokenExpired:
                token = await self._refresh(creds)
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
        await self._commit(fetched, requested, notification)
        PASSES.labels("reset" if fetched.reset else "ok").inc()
        PASS_SECONDS.observe(time.monotonic() - started)

    async def _fetch(self, token: str, cursor: str) -> Fetched:
        client = self.runtime.dropbox
        entries: list[dict[str, Any]] = []
        try:
            while True:
                page = await client.list_folder_continue(token, cursor)
                entries.extend(page.get("entries", []))
                cursor = str(page["cursor"])
                if not page.get("has_more"):
                    return Fetched(entries, cursor, reset=False, has_more=False)
                if len(entries) >= MAX_PASS_ENTRIES:
                    return Fetched(entries, cursor, reset=False, has_more=True)
                await self._renew()
        except CursorReset:
            log.info("instance %s: cursor reset, relisting", self.instance_id)
        page = await client.list_folder(token)
        entries = list(page.get("entries", []))
        while page.get("has_more"):
            await self._renew()
            page = await client.list_folder_continue(token, str(page["cursor"]))
            entries.extend(page.get("entries", []))
        return Fetched(entries, str(page["cursor"]), reset=True, has_more=False)

    async def _renew(self) -> None:
        """Keep the lease through a long fetch; give up the pass when it was lost."""
        held = await leases.renew(
            self.runtime.sessions,
            tables.Instance,
            tables.Instance.id,
            self.instance_id,
            self.token,
            self.runtime.settings.lease_seconds,
        )
        if not held:
            raise LeaseLost(f"instance {self.instance_id}: lease lost during a pass")

    async def _commit(
        self, fetched: Fetched, requested: int, notification: dict[str, Any] | None
    ) -> None:
        has_more = fetched.has_more
        instance = tables.Instance
        now = utcnow()
        async with transaction(self.runtime.sessions) as session:
            # The first statement takes the row (on SQLite, the database) for the whole
            # transaction: the pass is applied only while its lease holds and the cursor is
            # still the one it started from.
            row = (
                await session.execute(
                    update(instance)
                    .where(
                        instance.id == self.instance_id,
                        instance.lease_owner == self.token,
                        instance.cursor == self.started_from,
                    )
                    .values(lease_until=instance.lease_until)
                    .returning(
                        instance.org_id,
                        instance.name,
                        instance.element_key,
                        instance.tags,
                        instance.account_id,
                        instance.indexing,
                        instance.events_enabled,
                        instance.configuration,
                        instance.vendor_type,
                        instance.sync_requested,
                        instance.sync_done,
                        instance.pass_queued_at,
                        instance.valid,
                        instance.status_message,
                    )
                    .execution_options(synchronize_session=False)
                )
            ).one_or_none()
            if row is None:
                log.warning("instance %s: lease lost, pass discarded", self.instance_id)
                return
            if fetched.reset:
                index = await index_store.load_all(session, self.instance_id)
                changes = reconcile(fetched.entries, index)
            else:
                index = await index_store.load_for(session, self.instance_id, fetched.entries)
                changes = normalize(fetched.entries, index)
            await index_store.apply(session, self.instance_id, changes)
            indexing = row.indexing  # still reading the initial listing: no events yet
            if (
                not indexing
                and changes.events
                and row.events_enabled
                and row.configuration.get("event.notification.callback.url")
            ):
                info = InstanceInfo(
                    self.instance_id,
                    row.name,
                    row.element_key,
                    list(row.tags or []),
                    row.account_id,
                )
                polled = row.vendor_type == "polling"
                await _write_notifications(
                    session,
                    info,
                    row.org_id,
                    changes,
                    raw_notification=None if polled else notification,
                    batch_size=POLLING_BATCH if polled else WEBHOOK_BATCH,
                    now=now,
                )
            values: dict[str, Any] = {
                "cursor": fetched.cursor,
                "lease_owner": None,
                "lease_until": None,
                "sync_not_before": None,
                "sync_failures": 0,
            }
            sync_requested, sync_done = row.sync_requested, row.sync_done
            if indexing and not has_more:
                # The listing is read; what changed since it began comes next, as events.
                values["indexing"] = False
                values["sync_requested"] = sync_requested = sync_requested + 1
            if not has_more:
                values["sync_done"] = sync_done = requested
            still_indexing = indexing and has_more
            # More to fetch: back of the queue, behind the instances already waiting.
            pending = sync_requested > sync_done or still_indexing
            values["pass_queued_at"] = (row.pass_queued_at or now) if pending else None
            if row.status_message and row.valid:
                values["status_message"] = None
            if row.vendor_type == "polling":
                values["last_poll_at"] = now
            await session.execute(
                update(instance)
                .where(instance.id == self.instance_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        for event in changes.events:
            EVENTS.labels(event.event_type).inc()
        if changes.events:
            self.runtime.wakeups.delivery.set()
        if has_more:
            self.runtime.wakeups.changes.set()

    async def _fresh_token(self, creds: Credentials, expires_at: datetime | None) -> str:
        if creds.config.auth_type == "apiKey":
            return creds.config.access_token or ""
        soon = datetime.now(UTC) + REFRESH_MARGIN
        if creds.access_token and (expires_at is None or expires_at > soon):
            return creds.access_token
        return await self._refresh(creds)

    async def _refresh(self, creds: Credentials) -> str:
        if not creds.refresh_token or creds.config.auth_type != "oauth2":
            raise ProviderAuthError("the access token expired and cannot be refreshed")
        tokens = await self.runtime.dropbox.refresh(
            refresh_token=creds.refresh_token,
            app_key=creds.config.app_key or "",
            app_secret=creds.config.app_secret or "",
        )
        await self._store_tokens(tokens)
        return tokens.access_token

    async def _store_tokens(self, tokens: TokenSet) -> None:
        async with transaction(self.runtime.sessions) as session:
            row = await session.get(tables.Instance, self.instance_id)
            if row is None:
                return
            secrets = self.runtime.box.decrypt_json(row.secrets_enc)
            secrets["access_token"] = tokens.access_token
            if tokens.refresh_token:
                secrets["refresh_token"] = tokens.refresh_token
            row.secrets_enc = self.runtime.box.encrypt_json(secrets)
            row.access_token_expires_at = tokens.expires_at

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
                row.status_message = f"Dropbox: {message}" if message else row.status_message
            row.lease_owner, row.lease_until = None, None
            row.sync_not_before = utcnow() + (not_before or timedelta())
            # It rejoins the queue when its back-off ends, behind whoever asked before then.
            row.pass_queued_at = row.sync_not_before


async def _write_notifications(
    session: AsyncSession,
    instance: InstanceInfo,
    org_id: int,
    changes: Changes,
    *,
    raw_notification: dict[str, Any] | None,
    batch_size: int,
    now: datetime,
) -> None:
    """The outbox rows for a pass's events, in batches, and the event rows they carry."""
    size = batch_size
    event_rows: list[dict[str, Any]] = []
    for start in range(0, len(changes.events), size):
        batch = changes.events[start : start + size]
        notification_id = str(uuid.uuid4())
        body = notification_body(
            notification_id=notification_id,
            instance=instance,
            events=batch,
            raw_notification=raw_notification,
            now=now,
        )
        pk = (
            await session.execute(
                insert(tables.Notification)
                .values(
                    id=notification_id,
                    instance_id=instance.id,
                    org_id=org_id,
                    body=body,
                    event_count=len(batch),
                    next_attempt_at=now,
                    created_at=now,
                )
                .returning(tables.Notification.pk)
            )
        ).scalar_one()
        event_rows.extend(
            {
                "instance_id": instance.id,
                "org_id": org_id,
                "notification_pk": pk,
                "event_type": event.event_type,
                "object_type": event.object_type,
                "object_id": event.object_id,
                "path": event.path,
                "new_path": event.new_path,
                "occurred_at": now,
            }
            for event in batch
        )
    await session.execute(insert(tables.Event), event_rows)
