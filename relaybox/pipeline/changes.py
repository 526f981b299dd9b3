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

from sqlalchemy import or_, select, update
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


async def claim(runtime: Runtime, owner: str, limit: int = 10) -> list[tuple[int, str]]:
    """Lease instances that have a pass pending, oldest request first: [(id, lease token)].

    The order is `pass_queued_at` (when the oldest request not yet taken up by a pass was
    made), so an instance whose webhooks keep coming waits its turn behind the others
    instead of starving them; one statement claims the whole batch.
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
        return await leases.take(
            session,
            instance,
            instance.id,
            due,
            owner,
            runtime.settings.lease_seconds,
            pass_queued_at=None,
        )


def outage_backoff(failures: int) -> timedelta:
    """How long to leave an instance alone after `failures` consecutive failed passes."""
    return timedelta(
        seconds=backoff(failures, base=OUTAGE_BACKOFF_BASE, cap=OUTAGE_BACKOFF_CAP, jitter=0.2)
    )


class ChangePass:
    """One pass over one leased instance."""

    def __init__(self, runtime: Runtime, token: str, instance_id: int) -> None:
        self.runtime = runtime
        self.token = token
        self.instance_id = instance_id
        self.instances = InstanceService(runtime)
        self.started_from = ""

    async def run(self) -> None:
        started = time.monotonic()
        async with transaction(self.runtime.sessions) as session:
            row = await session.get(tables.Instance, self.instance_id)
            if row is None or row.lease_owner != self.token or not row.cursor:
                return
            requested, cursor = row.sync_requested, row.cursor
            self.started_from = cursor
            notification = row.sync_notification
            creds = self.instances.credentials(row)
            expires_at = row.access_token_expires_at
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
        async with transaction(self.runtime.sessions) as session:
            row = await session.get(tables.Instance, self.instance_id, with_for_update=True)
            if row is None or row.lease_owner != self.token or row.cursor != self.started_from:
                log.warning("instance %s: lease lost, pass discarded", self.instance_id)
                return
            if fetched.reset:
                index = await index_store.load_all(session, row.id)
                changes = reconcile(fetched.entries, index)
            else:
                index = await index_store.load_for(session, row.id, fetched.entries)
                changes = normalize(fetched.entries, index)
            await index_store.apply(session, row.id, changes)
            indexing = row.indexing  # still reading the initial listing: no events yet
            if indexing and not has_more:
                # The listing is read; what changed since it began comes next, as events.
                row.indexing = False
                row.sync_requested += 1
            if (
                not indexing
                and changes.events
                and row.events_enabled
                and row.configuration.get("event.notification.callback.url")
            ):
                await self._write_notifications(session, row, changes, notification)
            row.cursor = fetched.cursor
            if not has_more:
                row.sync_done = requested
            if row.sync_requested > row.sync_done or row.indexing:
                # More to fetch: back of the queue, behind the instances already waiting.
                row.pass_queued_at = row.pass_queued_at or utcnow()
            row.lease_owner, row.lease_until, row.sync_not_before = None, None, None
            row.sync_failures = 0
            if row.status_message and row.valid:
                row.status_message = None
            if row.vendor_type == "polling":
                row.last_poll_at = datetime.now(UTC)
        for event in changes.events:
            EVENTS.labels(event.event_type).inc()
        if changes.events:
            self.runtime.wakeups.delivery.set()
        if has_more:
            self.runtime.wakeups.changes.set()

    async def _write_notifications(
        self,
        session: AsyncSession,
        row: tables.Instance,
        changes: Changes,
        notification: dict[str, Any] | None,
    ) -> None:
        polled = row.vendor_type == "polling"
        size = POLLING_BATCH if polled else WEBHOOK_BATCH
        now = datetime.now(UTC)
        for start in range(0, len(changes.events), size):
            batch = changes.events[start : start + size]
            notification_id = str(uuid.uuid4())
            body = notification_body(
                notification_id=notification_id,
                instance=InstanceInfo(
                    row.id, row.name, row.element_key, list(row.tags or []), row.account_id
                ),
                events=batch,
                raw_notification=None if polled else notification,
                now=now,
            )
            outbox = tables.Notification(
                id=notification_id,
                instance_id=row.id,
                org_id=row.org_id,
                body=body,
                event_count=len(batch),
                next_attempt_at=now,
                created_at=now,
            )
            session.add(outbox)
            await session.flush()
            session.add_all(
                tables.Event(
                    instance_id=row.id,
                    org_id=row.org_id,
                    notification_pk=outbox.pk,
                    event_type=event.event_type,
                    object_type=event.object_type,
                    object_id=event.object_id,
                    path=event.path,
                    new_path=event.new_path,
                    occurred_at=now,
                )
                for event in batch
            )

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
