"""Delivery: POST due notifications from the outbox to their callback URLs, signed.

A notification is leased before its attempt, so two workers never send it at once and a
crashed worker's lease simply expires. Every attempt is recorded; what happens next is
decided by the pure `relaybox.core.retry.decide`.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import aliased

from relaybox.core.errors import InvalidCallbackURL
from relaybox.core.retry import Decision, Outcome, Verdict, decide
from relaybox.core.signing import delivery_headers
from relaybox.runtime import USER_AGENT, Runtime
from relaybox.services.callbacks import pin
from relaybox.services.instances import InstanceService
from relaybox.store import tables
from relaybox.store.db import transaction

log = logging.getLogger(__name__)

RESPONSE_BODY_LIMIT = 2048
_rng = random.SystemRandom()


@dataclass(frozen=True)
class Sent:
    outcome: Outcome
    latency_ms: float
    error: str | None
    response_body: str | None


async def claim(runtime: Runtime, owner: str, limit: int) -> list[int]:
    """Lease due notifications of active subscriptions; returns their primary keys.

    An ordered instance (and an instance draining its backlog after a re-activation) only
    ever has its oldest unfinished notification due. Any other instance has at most
    `max_in_flight` notifications leased at once, so one slow endpoint cannot take every
    delivery slot.
    """
    now = datetime.now(UTC)
    lease_until = now + timedelta(seconds=runtime.settings.lease_seconds)
    cap = runtime.settings.max_in_flight
    note, inst = tables.Notification, tables.Instance
    other = aliased(tables.Notification)
    earlier_unfinished = (
        select(other.pk)
        .where(other.instance_id == note.instance_id, other.pk < note.pk, other.status == "pending")
        .exists()
    )
    in_flight = (
        select(func.count(other.pk))
        .where(other.instance_id == note.instance_id, other.lease_until > now)
        .scalar_subquery()
    )
    strictly_ordered = or_(
        inst.ordered.is_(True),
        and_(inst.drain_through_pk.is_not(None), note.pk <= inst.drain_through_pk),
    )
    async with transaction(runtime.sessions) as session:
        rows = (
            await session.execute(
                select(note.pk, note.instance_id, in_flight)
                .join(inst, inst.id == note.instance_id)
                .where(
                    note.status == "pending",
                    note.next_attempt_at <= now,
                    or_(note.lease_until.is_(None), note.lease_until < now),
                    inst.subscription_active.is_(True),
                    ~and_(strictly_ordered, earlier_unfinished),
                    in_flight < cap,
                )
                .order_by(note.next_attempt_at, note.pk)
                .limit(limit)
            )
        ).all()
    taken: dict[int, int] = {}
    claimed = []
    for pk, instance_id, busy in rows:
        if busy + taken.get(instance_id, 0) >= cap:
            continue
        async with transaction(runtime.sessions) as session:
            result = await session.execute(
                update(note)
                .where(
                    note.pk == pk,
                    note.status == "pending",
                    or_(note.lease_until.is_(None), note.lease_until < now),
                )
                .values(lease_owner=owner, lease_until=lease_until)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append(pk)
                taken[instance_id] = taken.get(instance_id, 0) + 1
    return claimed


async def deliver(runtime: Runtime, owner: str, pk: int) -> None:
    """One attempt at one leased notification, recorded, then the decision applied."""
    async with transaction(runtime.sessions) as session:
        note = await session.get(tables.Notification, pk)
        if note is None or note.lease_owner != owner or note.status != "pending":
            return
        instance = await session.get(tables.Instance, note.instance_id)
        if instance is None:
            return
        signature_key = InstanceService(runtime).credentials(instance).config.signature_key
        url, body, notification_id = note.callback_url, note.body.encode(), note.id
        attempt_number = note.attempt_count + 1

    sent = await send(runtime, url, body, notification_id, signature_key)
    decision = decide(
        sent.outcome, attempt_number, runtime.settings.retry_delays, now=datetime.now(UTC), rng=_rng
    )
    await record(runtime, owner, pk, attempt_number, sent, decision)


async def send(
    runtime: Runtime, url: str, body: bytes, notification_id: str, signature_key: str | None
) -> Sent:
    settings = runtime.settings
    headers = delivery_headers(
        notification_id=notification_id,
        body=body,
        signature_key=signature_key,
        timestamp=int(time.time()),
        user_agent=USER_AGENT,
    )
    started = time.perf_counter()
    try:
        target = await pin(url, allow_private=settings.allow_private_callbacks)
        response = await runtime.http.post(
            target.url,
            content=body,
            headers={**headers, **target.headers},
            extensions=dict(target.extensions),
            timeout=settings.delivery_timeout,
        )
    except InvalidCallbackURL as exc:
        return Sent(Outcome(None), _ms(started), exc.message, None)
    except httpx.TimeoutException:
        return Sent(Outcome(None, timed_out=True), _ms(started), "timed out", None)
    except httpx.HTTPError as exc:
        return Sent(Outcome(None), _ms(started), f"{type(exc).__name__}: {exc}", None)
    text = response.content[:RESPONSE_BODY_LIMIT].decode("utf-8", errors="replace")
    outcome = Outcome(response.status_code, retry_after=response.headers.get("Retry-After"))
    return Sent(outcome, _ms(started), None, text)


async def record(
    runtime: Runtime, owner: str, pk: int, attempt_number: int, sent: Sent, decision: Decision
) -> None:
    now = datetime.now(UTC)
    async with transaction(runtime.sessions) as session:
        note = await session.get(tables.Notification, pk)
        if note is None:
            return
        session.add(
            tables.Attempt(
                notification_pk=pk,
                attempted_at=now,
                status_code=sent.outcome.status_code,
                latency_ms=sent.latency_ms,
                error=sent.error,
                response_body=sent.response_body,
            )
        )
        note.attempt_count = attempt_number
        note.last_status_code = sent.outcome.status_code
        note.lease_owner, note.lease_until = None, None
        if decision.verdict is Verdict.DELIVERED:
            note.status, note.delivered_at = "delivered", now
        elif decision.verdict is Verdict.RETRY:
            note.next_attempt_at = now + timedelta(seconds=decision.delay or 0)
        else:
            # 410 Gone: the endpoint asked to stop; this notification stays queued with the
            # rest. Schedule exhausted: this one is given up. Either way the subscription is
            # paused and later notifications wait for `PUT .../events/subscription`.
            if decision.verdict is Verdict.GIVE_UP:
                note.status = "failed"
            await session.execute(
                update(tables.Instance)
                .where(tables.Instance.id == note.instance_id)
                .values(subscription_active=False)
            )
            log.warning(
                "notification %s given up after %s attempts (%s); subscription deactivated",
                note.id,
                attempt_number,
                decision.verdict.name,
            )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
