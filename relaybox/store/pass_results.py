"""Applying finished change passes: cursor, index, events and outbox in one transaction.

`apply_passes` writes a group of passes (store/groups.py) at once: the passes of many
instances that finished fetching together share one transaction, one insert of their index
rows, one of their notifications and one of their events. Each pass is applied only while
its lease holds and the instance's cursor is still the one the pass started from; a pass
that lost its lease is skipped, the others are written.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from relaybox.connectors.paging import Fetched
from relaybox.core.clock import utcnow
from relaybox.core.normalize import Changes, Index, StandardEvent, normalize, reconcile
from relaybox.core.notification import InstanceInfo, notification_body, provider_payload
from relaybox.store import index as index_store
from relaybox.store import tables

WEBHOOK_BATCH = 20
POLLING_BATCH = 10
QUIET_PASS_PAUSE = timedelta(milliseconds=100)
"""After a pass that found nothing, the instance's next pass waits this long. A storm of
webhooks (duplicates, or ones that a pass already served) then costs the provider at most
ten calls a second per account instead of one per webhook; a change made meanwhile waits
at most this long."""


@dataclass(frozen=True)
class PassResult:
    instance_id: int
    token: str  # the lease the pass holds
    started_from: str  # the cursor it fetched from
    requested: int  # sync_requested when it was claimed: the requests it served
    notification: dict[str, Any] | None  # the provider notification behind it, if any
    fetched: Fetched
    finished_at: datetime | None = None  # the runtime clock's time (None: the system's)


@dataclass(frozen=True)
class Applied:
    applied: bool  # False: the lease was lost; nothing was written
    events: list[StandardEvent]
    notifications: int
    paused: bool = False  # found nothing: the next pass waits QUIET_PASS_PAUSE


LOST = Applied(False, [], 0)


async def apply_passes(session: AsyncSession, results: Sequence[PassResult]) -> list[Applied]:
    now = max((r.finished_at for r in results if r.finished_at), default=None) or utcnow()
    rows = await _lock(session, results)
    applied: list[Applied] = []
    updates: list[dict[str, Any]] = []
    index_rows: list[dict[str, Any]] = []
    outbox: list[_Outgoing] = []
    # A pass applies only while its own lease holds (one token per instance can, so at
    # most one pass per instance in the group) and the cursor is the one it started from.
    holds = [
        (row := rows.get(result.instance_id)) is not None
        and row.lease_owner == result.token
        and row.cursor == result.started_from
        for result in results
    ]
    indexes = await index_store.load_for_many(
        session,
        {
            result.instance_id: result.fetched.changes
            for result, held in zip(results, holds, strict=True)
            if held and not result.fetched.reset
        },
    )
    for result, held in zip(results, holds, strict=True):
        if not held:
            applied.append(LOST)
            continue
        row = rows[result.instance_id]
        changes = await _changes(session, result, indexes.get(result.instance_id))
        index_rows.extend(index_store.rows(result.instance_id, changes))
        indexing = row.indexing  # still reading the initial listing: no events yet
        wanted = not indexing and row.events_enabled
        if wanted and changes.events and row.configuration.get("event.notification.callback.url"):
            outbox.extend(_outgoing(row, result, changes.events, now))
        finished = _finish(row, result, now)
        paused = finished["sync_not_before"] is not None
        applied.append(Applied(True, changes.events, 0, paused))
        updates.append(finished)
    await index_store.insert_rows(session, index_rows)
    counts = await _write_outbox(session, outbox)
    if updates:
        # Core executemany (the ORM would read a list as a bulk update by primary key);
        # bound names must differ from column names.
        table = cast(Table, tables.Instance.__table__)
        await session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values({key: bindparam(f"b_{key}") for key in updates[0] if key != "id"}),
            [{f"b_{key}": value for key, value in row.items()} for row in updates],
        )
    return [
        Applied(a.applied, a.events, counts.get(r.instance_id, 0), a.paused) if a.applied else a
        for a, r in zip(applied, results, strict=True)
    ]


async def _lock(session: AsyncSession, results: Sequence[PassResult]) -> dict[int, Any]:
    """Take the instances' rows (on SQLite, the database) and read them, first thing."""
    instance = tables.Instance
    answer = await session.execute(
        update(instance)
        .where(
            instance.id.in_([r.instance_id for r in results]),
            instance.lease_owner.in_({r.token for r in results}),
        )
        .values(lease_until=instance.lease_until)
        .returning(
            instance.id,
            instance.lease_owner,
            instance.cursor,
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
            instance.last_poll_at,
        )
        .execution_options(synchronize_session=False)
    )
    return {row.id: row for row in answer}


async def _changes(session: AsyncSession, result: PassResult, index: Index | None) -> Changes:
    """The pass's events and index changes; removes the index rows it replaces. `index` is
    the part of the index the pass touches, loaded beforehand (None: a reset; all of it)."""
    fetched = result.fetched
    if index is None:
        index = await index_store.load_all(session, result.instance_id)
    held = {obj.object_id for obj in index}
    moves = fetched.moves_list_descendants
    if fetched.reset:
        changes = reconcile(fetched.changes, index, moves_list_descendants=moves)
    else:
        changes = normalize(fetched.changes, index, moves_list_descendants=moves)
    await index_store.delete_ids(
        session, result.instance_id, changes.removals | (held & set(changes.upserts))
    )
    return changes


def _finish(row: Any, result: PassResult, now: datetime) -> dict[str, Any]:
    """The instance's new state: cursor, requests served, lease released."""
    has_more = result.fetched.has_more
    indexing = row.indexing
    sync_requested = row.sync_requested
    if indexing and not has_more:
        # The listing is read; what changed since it began comes next, as events.
        sync_requested += 1
    sync_done = row.sync_done if has_more else result.requested
    pending = sync_requested > sync_done or (indexing and has_more)
    found_nothing = not (result.fetched.changes or result.fetched.reset or has_more or indexing)
    return {
        "id": result.instance_id,
        "cursor": result.fetched.cursor,
        "indexing": indexing and has_more,
        "sync_requested": sync_requested,
        "sync_done": sync_done,
        # More to fetch: the back of the queue, behind the instances already waiting.
        "pass_queued_at": (row.pass_queued_at or now) if pending else None,
        "lease_owner": None,
        "lease_until": None,
        "sync_not_before": now + QUIET_PASS_PAUSE if found_nothing else None,
        "sync_failures": 0,
        "status_message": None if row.valid else row.status_message,
        "last_poll_at": now if row.vendor_type == "polling" else row.last_poll_at,
    }


@dataclass
class _Outgoing:
    instance_id: int
    row: dict[str, Any]
    events: list[StandardEvent]


def _outgoing(
    row: Any, result: PassResult, events: list[StandardEvent], now: datetime
) -> list[_Outgoing]:
    """The notifications carrying a pass's events, in batches, in order."""
    polled = row.vendor_type == "polling"
    size = POLLING_BATCH if polled else WEBHOOK_BATCH
    info = InstanceInfo(
        result.instance_id, row.name, row.element_key, list(row.tags or []), row.account_id
    )
    out = []
    for start in range(0, len(events), size):
        batch = events[start : start + size]
        notification_id = str(uuid.uuid4())
        raw = provider_payload(
            webhook=None if polled else result.notification,
            events=batch,
            cursor=result.fetched.cursor,
            has_more=result.fetched.has_more,
        )
        body = notification_body(
            notification_id=notification_id, instance=info, events=batch, raw=raw, now=now
        )
        out.append(
            _Outgoing(
                result.instance_id,
                {
                    "id": notification_id,
                    "instance_id": result.instance_id,
                    "org_id": row.org_id,
                    "body": body,
                    "event_count": len(batch),
                    "next_attempt_at": now,
                    "created_at": now,
                },
                batch,
            )
        )
    return out


async def _write_outbox(session: AsyncSession, outbox: list[_Outgoing]) -> dict[int, int]:
    """Insert the notifications and their events; how many notifications per instance."""
    if not outbox:
        return {}
    note = tables.Notification
    pks = (
        await session.scalars(
            insert(note).returning(note.pk, sort_by_parameter_order=True),
            [item.row for item in outbox],
        )
    ).all()
    events: list[dict[str, Any]] = []
    counts: dict[int, int] = {}
    for item, pk in zip(outbox, pks, strict=True):
        counts[item.instance_id] = counts.get(item.instance_id, 0) + 1
        events.extend(
            event_row(event, item.instance_id, item.row["org_id"], pk, item.row["created_at"])
            for event in item.events
        )
    await session.execute(insert(tables.Event), events)
    return counts


def event_row(
    event: StandardEvent, instance_id: int, org_id: int, notification_pk: int, at: datetime
) -> dict[str, Any]:
    """The `events` row of one standardized event carried by a notification."""
    return {
        "instance_id": instance_id,
        "org_id": org_id,
        "notification_pk": notification_pk,
        "event_type": event.event_type,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "path": event.path,
        "new_path": event.new_path,
        "occurred_at": at,
    }
