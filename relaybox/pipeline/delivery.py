"""Delivery: POST due notifications from the outbox to their callback URLs, signed.

A notification is leased before its attempt, so two workers never send it at once and a
crashed worker's lease simply expires. Every attempt is recorded; what happens next is
decided by the pure `relaybox.core.retry.decide`, and applied only while the lease holds.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import httpx
from sqlalchemy import (
    String,
    Table,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from relaybox.core.errors import InvalidInput
from relaybox.core.netguard import wire_target
from relaybox.core.retry import Decision, Outcome, Verdict, decide
from relaybox.core.signing import delivery_headers
from relaybox.metrics import DELIVERIES, DELIVERY_SECONDS
from relaybox.runtime import USER_AGENT, Runtime
from relaybox.services.instances import InstanceService
from relaybox.store import leases, tables
from relaybox.store.db import transaction
from relaybox.store.groups import GroupCommit

log = logging.getLogger(__name__)

RESPONSE_BODY_LIMIT = 2048
RESPONSE_HEADERS_LIMIT = 2048  # bytes of the callback's answer headers kept per attempt
_rng = random.SystemRandom()


Headers = list[tuple[str, str]]


@dataclass(frozen=True)
class Sent:
    outcome: Outcome
    latency_ms: float
    error: str | None
    response_body: str | None
    request_headers: Headers | None = None  # exactly as sent (no secret: only signatures)
    response_headers: Headers | None = None


@dataclass(frozen=True)
class Claimed:
    """A leased notification and what its attempt needs, as the claim read it."""

    pk: int
    token: str
    notification_id: str
    body: str
    attempt_count: int
    instance_id: int
    configuration: dict[str, Any]
    secrets_enc: str

    def __str__(self) -> str:  # what a log line names: never the body or the secrets
        return f"notification {self.notification_id} of instance {self.instance_id}"


async def claim(runtime: Runtime, owner: str, limit: int) -> list[Claimed]:
    """Lease due notifications of active subscriptions, with what their attempts need.

    An ordered instance (and an instance draining its backlog after a re-activation) only
    ever has its oldest unfinished notification due. Any other instance has at most
    `max_in_flight` notifications leased at once, so one slow endpoint cannot take every
    delivery slot.
    """
    now = runtime.clock.now()
    cap = runtime.settings.max_in_flight
    note, inst = tables.Notification, tables.Instance
    other = aliased(tables.Notification)
    earlier_unfinished = (
        select(other.pk)
        .where(other.instance_id == note.instance_id, other.pk < note.pk, other.status == "pending")
        .exists()
    )
    strictly_ordered = or_(
        inst.ordered.is_(True),
        and_(inst.drain_through_pk.is_not(None), note.pk <= inst.drain_through_pk),
    )
    # Each instance's due notifications ranked oldest first, so the batch takes at most
    # `cap` of any one instance and a backlog cannot crowd the others out of it. (No
    # per-row subqueries: a backlog of thousands made those the delivery loop's main cost.)
    due = (
        select(
            note.pk,
            note.instance_id,
            note.next_attempt_at,
            inst.configuration,
            inst.secrets_enc,
            func.row_number()
            .over(partition_by=note.instance_id, order_by=(note.next_attempt_at, note.pk))
            .label("rank"),
        )
        .join(inst, inst.id == note.instance_id)
        .where(
            note.status == "pending",
            note.next_attempt_at <= now,
            leases.free(note, now),
            inst.subscription_active.is_(True),
            # A disabled instance's notifications wait until it is enabled again.
            inst.disabled.is_(False),
            # Only an ordered instance's oldest unfinished notification is due.
            case((strictly_ordered, ~earlier_unfinished), else_=true()),
        )
        .subquery()
    )
    leased = (
        select(note.instance_id, func.count())
        .where(note.status == "pending", note.lease_until > now)
        .group_by(note.instance_id)
    )
    async with transaction(runtime.sessions) as session:
        busy = {instance_id: count for instance_id, count in await session.execute(leased)}
        rows = (
            await session.execute(
                select(
                    due.c.pk, due.c.instance_id, due.c.rank, due.c.configuration, due.c.secrets_enc
                )
                .where(due.c.rank <= cap)
                .order_by(due.c.next_attempt_at, due.c.pk)
                .limit(limit)
            )
        ).all()
    chosen: list[int] = []
    per_instance: dict[int, int] = {}
    instances: dict[int, tuple[dict[str, Any], str]] = {}
    for pk, instance_id, _rank, configuration, secrets_enc in rows:
        if busy.get(instance_id, 0) + per_instance.get(instance_id, 0) < cap:
            chosen.append(pk)
            per_instance[instance_id] = per_instance.get(instance_id, 0) + 1
            instances[instance_id] = (configuration, secrets_enc)
    # A separate transaction: on SQLite a read transaction that turns into a write one
    # fails at once (SQLITE_BUSY_SNAPSHOT) when another connection wrote in between. The
    # lease re-checks that each is still due and reads its attempt count as it is now.
    async with transaction(runtime.sessions) as session:
        taken = await leases.take(
            session,
            note,
            note.pk,
            chosen,
            owner,
            runtime.settings.lease_seconds,
            note.status == "pending",
            note.next_attempt_at <= now,
            now=now,
            returning=(note.id, note.body, note.attempt_count, note.instance_id),
        )
    return [
        Claimed(
            pk=row.pk,
            token=token,
            notification_id=row.id,
            body=row.body,
            attempt_count=row.attempt_count,
            instance_id=row.instance_id,
            configuration=instances[row.instance_id][0],
            secrets_enc=instances[row.instance_id][1],
        )
        for row, token in taken
    ]


async def deliver(runtime: Runtime, claimed: Claimed, records: Records) -> None:
    """One attempt at one leased notification, recorded, then the decision applied."""
    config = InstanceService(runtime).unseal(claimed.secrets_enc, claimed.configuration).config
    attempt_number = claimed.attempt_count + 1
    if not config.callback_url:
        sent = Sent(Outcome(None), 0.0, "the instance has no callback URL", None)
    else:
        sent = await send(
            runtime,
            config.callback_url,
            claimed.body.encode(),
            claimed.notification_id,
            config.signature_key,
            key=claimed.instance_id,
        )
    now = runtime.clock.now()
    decision = decide(
        sent.outcome, attempt_number, runtime.settings.retry_delays, now=now, rng=_rng
    )
    await records.submit(Attempted(claimed, attempt_number, sent, decision, now))
    DELIVERIES.labels(decision.verdict.name).inc()
    DELIVERY_SECONDS.observe(sent.latency_ms / 1000)


async def send(
    runtime: Runtime,
    url: str,
    body: bytes,
    notification_id: str,
    signature_key: str | None,
    key: int | None = None,
) -> Sent:
    """POST once, within the delivery timeout; every failure is a `Sent` with an error.

    The callback clients connect through the SSRF guard (services/callbacks.py), which
    resolves and checks the host at connect time. `key` (the instance) picks the HTTP
    client, so one instance's callbacks share its kept-alive connections."""
    settings = runtime.settings
    started = time.perf_counter()
    sent: Headers | None = None  # the request's headers, once it is built
    try:
        # Stored before a check it now fails (an invalid internationalized name, say):
        # refused here with the reason, as at configuration.
        wire_target(url)
        headers = delivery_headers(
            notification_id=notification_id,
            body=body,
            signature_key=signature_key,
            timestamp=int(time.time()),
            user_agent=USER_AGENT,
        )
        http = runtime.http.client(key)
        request = http.build_request("POST", url, content=body, headers=headers)
        sent = list(request.headers.items())
        async with asyncio.timeout(settings.delivery_timeout):
            return await _post(http, request, sent, started)
    except InvalidInput as exc:
        return Sent(Outcome(None), _ms(started), exc.message, None, sent)
    except (TimeoutError, httpx.TimeoutException):
        return Sent(Outcome(None, timed_out=True), _ms(started), "timed out", None, sent)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return Sent(Outcome(None), _ms(started), f"{type(exc).__name__}: {exc}", None, sent)
    except Exception:
        # A bug, not the endpoint: still an attempt, so the notification follows its retry
        # schedule rather than failing unrecorded each time its lease runs out, for ever
        # (an ordered instance would stall behind it).
        log.exception("notification %s: sending failed", notification_id)
        return Sent(Outcome(None), _ms(started), "internal error while sending", None)


async def _post(
    http: httpx.AsyncClient, request: httpx.Request, sent: Headers, started: float
) -> Sent:
    """Send, and keep at most the first 2 KiB of the answer (and of its headers)."""
    response = await http.send(request, stream=True)
    try:
        kept = bytearray()
        async for chunk in response.aiter_raw():
            kept.extend(chunk[: RESPONSE_BODY_LIMIT - len(kept)])
            if len(kept) >= RESPONSE_BODY_LIMIT:
                break
    finally:
        await response.aclose()
    outcome = Outcome(response.status_code, retry_after=response.headers.get("Retry-After"))
    return Sent(
        outcome,
        _ms(started),
        None,
        kept.decode("utf-8", errors="replace"),
        sent,
        _bounded(list(response.headers.items()), RESPONSE_HEADERS_LIMIT),
    )


def _bounded(headers: Headers, limit: int) -> Headers:
    """The first headers that fit in `limit` bytes (names and values)."""
    kept: Headers = []
    size = 0
    for name, value in headers:
        size += len(name) + len(value)
        if size > limit:
            break
        kept.append((name, value))
    return kept


@dataclass(frozen=True)
class Attempted:
    """One finished attempt, to be recorded with the decision it led to."""

    claimed: Claimed
    attempt_number: int
    sent: Sent
    decision: Decision
    at: datetime


Records = GroupCommit[Attempted, None]
"""Where attempts are recorded, several to a transaction (store/groups.py)."""


def attempt_records(runtime: Runtime) -> Records:
    return GroupCommit(
        runtime.sessions, record_attempts, name="attempts", max_group=200, linger=0.005
    )


async def record_attempts(session: AsyncSession, group: Sequence[Attempted]) -> list[None]:
    """Store each attempt; apply its decision only while its lease still holds.

    Three statements for the whole group: which notifications still exist (and who holds
    them, for the log), one executemany UPDATE fenced by each lease, one insert of the
    attempts. Only a deactivation (rare) costs a statement of its own.
    """
    note = tables.Notification
    holders = {
        pk: owner
        for pk, owner in await session.execute(
            select(note.pk, note.lease_owner).where(
                note.pk.in_([attempted.claimed.pk for attempted in group])
            )
        )
    }
    # Gone: its instance was deleted meanwhile; nothing to record.
    present = [a for a in group if a.claimed.pk in holders]
    if not present:
        return [None] * len(group)
    table = cast(Table, note.__table__)
    await session.execute(
        update(table)
        .where(table.c.pk == bindparam("b_pk"), table.c.lease_owner == bindparam("b_token"))
        .values(
            attempt_count=bindparam("b_attempts"),
            last_status_code=bindparam("b_status_code"),
            lease_owner=None,
            lease_until=None,
            # NULL keeps what the notification had.
            status=func.coalesce(bindparam("b_status", type_=String), table.c.status),
            delivered_at=func.coalesce(
                bindparam("b_delivered_at", type_=tables.UTCDateTime()), table.c.delivered_at
            ),
            next_attempt_at=func.coalesce(
                bindparam("b_next_attempt_at", type_=tables.UTCDateTime()),
                table.c.next_attempt_at,
            ),
        ),
        [_outcome(attempted) for attempted in present],
    )
    await session.execute(
        insert(tables.Attempt),
        [
            {
                "notification_pk": a.claimed.pk,
                "attempted_at": a.at,
                "status_code": a.sent.outcome.status_code,
                "latency_ms": a.sent.latency_ms,
                "error": a.sent.error,
                "response_body": a.sent.response_body,
                "request_headers": a.sent.request_headers,
                "response_headers": a.sent.response_headers,
            }
            for a in present
        ],
    )
    for attempted in present:
        claimed, verdict = attempted.claimed, attempted.decision.verdict
        if holders[claimed.pk] != claimed.token:
            log.info(
                "notification %s: lease lost; attempt recorded, outcome not applied",
                claimed.notification_id,
            )
        elif verdict in (Verdict.GIVE_UP, Verdict.DEACTIVATE):
            # 410 Gone: the endpoint asked to stop; this notification stays queued with the
            # rest. Schedule exhausted: this one is given up. Either way the subscription is
            # paused and later notifications wait for `PUT .../events/subscription`.
            await session.execute(
                update(tables.Instance)
                .where(tables.Instance.id == claimed.instance_id)
                .values(subscription_active=False)
            )
            log.warning(
                "notification %s: %s after %s attempts; subscription deactivated",
                claimed.notification_id,
                "given up" if verdict is Verdict.GIVE_UP else "410 Gone",
                attempted.attempt_number,
            )
    return [None] * len(group)


def _outcome(attempted: Attempted) -> dict[str, Any]:
    """The notification's new state after an attempt, as bound values of the UPDATE."""
    decision, now = attempted.decision, attempted.at
    values: dict[str, Any] = {
        "b_pk": attempted.claimed.pk,
        "b_token": attempted.claimed.token,
        "b_attempts": attempted.attempt_number,
        "b_status_code": attempted.sent.outcome.status_code,
        "b_status": None,
        "b_delivered_at": None,
        "b_next_attempt_at": None,
    }
    if decision.verdict is Verdict.DELIVERED:
        values.update(b_status="delivered", b_delivered_at=now)
    elif decision.verdict is Verdict.RETRY:
        values["b_next_attempt_at"] = now + timedelta(seconds=decision.delay or 0)
    elif decision.verdict is Verdict.GIVE_UP:
        values["b_status"] = "failed"
    return values


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
