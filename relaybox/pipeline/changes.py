"""Change passes: fetch what changed since an instance's cursor and turn it into events.

One pass per instance at a time (a lease on the instance row). The new cursor, the index
changes, the events and the notifications that carry them are written in ONE transaction,
guarded by the lease, so a crash anywhere repeats the pass instead of losing or doubling it.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from relaybox.connectors.dropbox.client import TokenSet
from relaybox.core.errors import (
    CursorReset,
    ProviderAuthError,
    ProviderError,
    RateLimited,
    TokenExpired,
)
from relaybox.core.normalize import Changes, StandardEvent, normalize, reconcile
from relaybox.runtime import Runtime
from relaybox.services.instances import Credentials, InstanceService
from relaybox.store import index as index_store
from relaybox.store import tables
from relaybox.store.db import transaction

log = logging.getLogger(__name__)

WEBHOOK_BATCH = 20
POLLING_BATCH = 10
# Refresh an access token this long before Dropbox says it expires.
REFRESH_MARGIN = timedelta(minutes=5)
# Back-off after a provider outage, doubled per consecutive failure, capped.
OUTAGE_BACKOFF = timedelta(seconds=5)
MAX_PASS_ENTRIES = 5000


@dataclass(frozen=True)
class Fetched:
    entries: list[dict[str, Any]]
    cursor: str
    reset: bool


async def claim(runtime: Runtime, owner: str, limit: int = 10) -> list[int]:
    """Lease instances that have a pass pending; returns the ids this worker now owns."""
    now = datetime.now(UTC)
    lease_until = now + timedelta(seconds=runtime.settings.lease_seconds)
    instance = tables.Instance
    async with transaction(runtime.sessions) as session:
        candidates = await session.scalars(
            select(instance.id)
            .where(
                instance.sync_requested > instance.sync_done,
                instance.events_enabled.is_(True),
                instance.valid.is_(True),
                instance.disabled.is_(False),
                instance.cursor.is_not(None),
                or_(instance.lease_until.is_(None), instance.lease_until < now),
                or_(instance.sync_not_before.is_(None), instance.sync_not_before <= now),
            )
            .order_by(instance.sync_not_before.is_not(None), instance.id)
            .limit(limit)
        )
        ids = list(candidates)
    claimed = []
    for instance_id in ids:
        async with transaction(runtime.sessions) as session:
            result = await session.execute(
                update(instance)
                .where(
                    instance.id == instance_id,
                    or_(instance.lease_until.is_(None), instance.lease_until < now),
                )
                .values(lease_owner=owner, lease_until=lease_until)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append(instance_id)
    return claimed


async def request_pass(
    session: AsyncSession, instance_ids: Sequence[int], notification: Mapping[str, Any] | None
) -> None:
    """Ask for one more pass over each instance (coalesces with a pass already running)."""
    if not instance_ids:
        return
    await session.execute(
        update(tables.Instance)
        .where(tables.Instance.id.in_(list(instance_ids)))
        .values(
            sync_requested=tables.Instance.sync_requested + 1,
            sync_notification=dict(notification) if notification is not None else None,
        )
    )


class ChangePass:
    """One pass over one leased instance."""

    def __init__(self, runtime: Runtime, owner: str, instance_id: int) -> None:
        self.runtime = runtime
        self.owner = owner
        self.instance_id = instance_id
        self.instances = InstanceService(runtime)

    async def run(self) -> None:
        async with transaction(self.runtime.sessions) as session:
            row = await session.get(tables.Instance, self.instance_id)
            if row is None or row.lease_owner != self.owner or not row.cursor:
                return
            requested, cursor = row.sync_requested, row.cursor
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
        except ProviderAuthError as exc:
            await self._mark_invalid(str(exc.message))
            return
        except RateLimited as exc:
            await self._release(not_before=timedelta(seconds=exc.retry_after))
            return
        except ProviderError as exc:
            log.warning("instance %s: change pass failed: %s", self.instance_id, exc.message)
            await self._release(not_before=OUTAGE_BACKOFF)
            return
        await self._commit(fetched, requested, notification)

    async def _fetch(self, token: str, cursor: str) -> Fetched:
        client = self.runtime.dropbox
        entries: list[dict[str, Any]] = []
        try:
            while True:
                page = await client.list_folder_continue(token, cursor)
                entries.extend(page.get("entries", []))
                cursor = str(page["cursor"])
                if not page.get("has_more") or len(entries) >= MAX_PASS_ENTRIES:
                    return Fetched(entries, cursor, reset=False)
        except CursorReset:
            log.info("instance %s: cursor reset, relisting", self.instance_id)
        page = await client.list_folder(token)
        entries = list(page.get("entries", []))
        while page.get("has_more"):
            page = await client.list_folder_continue(token, str(page["cursor"]))
            entries.extend(page.get("entries", []))
        return Fetched(entries, str(page["cursor"]), reset=True)

    async def _commit(
        self, fetched: Fetched, requested: int, notification: dict[str, Any] | None
    ) -> None:
        has_more = len(fetched.entries) >= MAX_PASS_ENTRIES and not fetched.reset
        async with transaction(self.runtime.sessions) as session:
            row = await session.get(tables.Instance, self.instance_id, with_for_update=True)
            if row is None or row.lease_owner != self.owner:
                log.warning("instance %s: lease lost, pass discarded", self.instance_id)
                return
            if fetched.reset:
                index = await index_store.load_all(session, row.id)
                changes = reconcile(fetched.entries, index)
            else:
                index = await index_store.load_for(session, row.id, fetched.entries)
                changes = normalize(fetched.entries, index)
            await index_store.apply(session, row.id, changes)
            if (
                changes.events
                and row.events_enabled
                and row.configuration.get("event.notification.callback.url")
            ):
                await self._write_notifications(session, row, changes, notification)
            row.cursor = fetched.cursor
            if not has_more:
                row.sync_done = requested
            row.lease_owner, row.lease_until, row.sync_not_before = None, None, None
            if row.vendor_type == "polling":
                row.last_poll_at = datetime.now(UTC)
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
        callback_url = str(row.configuration["event.notification.callback.url"])
        for start in range(0, len(changes.events), size):
            batch = changes.events[start : start + size]
            notification_id = str(uuid.uuid4())
            body = notification_body(
                notification_id=notification_id,
                row=row,
                events=batch,
                raw_notification=None if polled else notification,
                now=now,
            )
            outbox = tables.Notification(
                id=notification_id,
                instance_id=row.id,
                org_id=row.org_id,
                callback_url=callback_url,
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
                .where(tables.Instance.id == self.instance_id)
                .values(valid=False, status_message=message, lease_owner=None, lease_until=None)
            )

    async def _release(self, *, not_before: timedelta) -> None:
        async with transaction(self.runtime.sessions) as session:
            await session.execute(
                update(tables.Instance)
                .where(
                    tables.Instance.id == self.instance_id,
                    tables.Instance.lease_owner == self.owner,
                )
                .values(
                    lease_owner=None,
                    lease_until=None,
                    sync_not_before=datetime.now(UTC) + not_before,
                )
            )


def notification_body(
    *,
    notification_id: str,
    row: tables.Instance,
    events: Sequence[StandardEvent],
    raw_notification: dict[str, Any] | None,
    now: datetime,
) -> str:
    """The JSON delivered to the callback URL (SPEC section 4), fixed once for every retry."""
    date = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    standardized = []
    for event in events:
        item: dict[str, Any] = {
            "elementKey": row.element_key,
            "hubKey": "documents",
            "eventType": event.event_type,
            "objectType": event.object_type,
            "objectId": event.object_id,
            "path": event.path,
            "date": date,
        }
        if event.new_path is not None:
            item["newPath"] = event.new_path
        standardized.append(item)
    body = {
        "id": notification_id,
        "createdDate": date,
        "message": {
            "eventId": notification_id,
            "elementKey": row.element_key,
            "instanceId": row.id,
            "instance_id": row.id,
            "instanceName": row.name,
            "instanceTags": list(row.tags or []),
            "accountId": row.account_id,
            "events": standardized,
            "raw": {
                "notification": raw_notification,
                "entries": [dict(event.entry) for event in events],
            },
        },
    }
    return json.dumps(body, separators=(",", ":"))
