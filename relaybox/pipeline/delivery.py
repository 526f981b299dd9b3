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
from dataclasses import dataclass
from datetime import timedelta

import httpx
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import aliased

from relaybox.core.clock import utcnow
from relaybox.core.errors import InvalidInput
from relaybox.core.retry import Decision, Outcome, Verdict, decide
from relaybox.core.signing import delivery_headers
from relaybox.metrics import DELIVERIES, DELIVERY_SECONDS
from relaybox.runtime import USER_AGENT, Runtime
from relaybox.services.callbacks import targets
from relaybox.services.instances import InstanceService
from relaybox.store import leases, tables
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


async def claim(runtime: Runtime, owner: str, limit: int) -> list[tuple[int, str]]:
    """Lease due notifications of active subscriptions: [(notification pk, lease token)].

    An ordered instance (and an instance draining its backlog after a re-activation) only
    ever has its oldest unfinished notification due. Any other instance has at most
    `max_in_flight` notifications leased at once, so one slow endpoint cannot take every
    delivery slot.
    """
    now = utcnow()
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
                    leases.free(note, now),
                    inst.subscription_active.is_(True),
                    ~and_(strictly_ordered, earlier_unfinished),
                    in_flight < cap,
                )
                .order_by(note.next_attempt_at, note.pk)
                .limit(limit)
            )
        ).all()
    chosen: list[int] = []
    per_instance: dict[int, int] = {}
    for pk, instance_id, busy in rows:
        if busy + per_instance.get(instance_id, 0) < cap:
            chosen.append(pk)
            per_instance[instance_id] = per_instance.get(instance_id, 0) + 1
    # A separate transaction: on SQLite a read transaction that turns into a write one
    # fails at once (SQLITE_BUSY_SNAPSHOT) when another connection wrote in between.
    async with transaction(runtime.sessions) as session:
        return await leases.take(
            session,
            note,
            note.pk,
            chosen,
            owner,
            runtime.settings.lease_seconds,
            note.status == "pending",
        )


async def deliver(runtime: Runtime, token: str, pk: int) -> None:
    """One attempt at one leased notification, recorded, then the decision applied."""
    async with transaction(runtime.sessions) as session:
        note = await session.get(tables.Notification, pk)
        if note is None or note.lease_owner != token or note.status != "pending":
            return
        instance = await session.get(tables.Instance, note.instance_id)
        if instance is None:
            return
        config = InstanceService(runtime).credentials(instance).config
        body, notification_id = note.body.encode(), note.id
        attempt_number = note.attempt_count + 1
    if not config.callback_url:
        sent = Sent(Outcome(None), 0.0, "the instance has no callback URL", None)
    else:
        sent = await send(runtime, config.callback_url, body, notification_id, config.signature_key)
    decision = decide(
        sent.outcome, attempt_number, runtime.settings.retry_delays, now=utcnow(), rng=_rng
    )
    await record(runtime, token, pk, attempt_number, sent, decision)
    DELIVERIES.labels(decision.verdict.name).inc()
    DELIVERY_SECONDS.observe(sent.latency_ms / 1000)


async def send(
    runtime: Runtime, url: str, body: bytes, notification_id: str, signature_key: str | None
) -> Sent:
    """POST once, within the delivery timeout, to the first checked address that connects."""
    settings = runtime.settings
    started = time.perf_counter()
    try:
        headers = delivery_headers(
            notification_id=notification_id,
            body=body,
            signature_key=signature_key,
            timestamp=int(time.time()),
            user_agent=USER_AGENT,
        )
        async with asyncio.timeout(settings.delivery_timeout):
            candidates = await targets(url, allow_private=settings.allow_private_callbacks)
            for number, target in enumerate(candidates, start=1):
                try:
                    return await _post(
                        runtime,
                        target.url,
                        body,
                        {**headers, **target.headers},
                        target.extensions,
                        started,
                    )
                except httpx.ConnectError:
                    if number == len(candidates):
                        raise
    except InvalidInput as exc:
        return Sent(Outcome(None), _ms(started), exc.message, None)
    except (TimeoutError, httpx.TimeoutException):
        return Sent(Outcome(None, timed_out=True), _ms(started), "timed out", None)
    except httpx.HTTPError as exc:
        return Sent(Outcome(None), _ms(started), f"{type(exc).__name__}: {exc}", None)
    raise AssertionError("targets() returns at least one address")


async def _post(
    runtime: Runtime,
    url: str,
    body: bytes,
    headers: dict[str, str],
    extensions: dict[str, str],
    started: float,
) -> Sent:
    """Send, and keep at most the first 2 KiB of the answer."""
    request = runtime.http.build_request(
        "POST", url, content=body, headers=headers, extensions=dict(extensions)
    )
    response = await runtime.http.send(request, stream=True)
    try:
        kept = bytearray()
        async for chunk in response.aiter_raw():
            kept.extend(chunk[: RESPONSE_BODY_LIMIT - len(kept)])
            if len(kept) >= RESPONSE_BODY_LIMIT:
                break
    finally:
        await response.aclose()
    outcome = Outcome(response.status_code, retry_after=response.headers.get("Retry-After"))
    return Sent(outcome, _ms(started), None, kept.decode("utf-8", errors="replace"))


async def record(
    runtime: Runtime, token: str, pk: int, attempt_number: int, sent: Sent, decision: Decision
) -> None:
    now = utcnow()
    async with transaction(runtime.sessions) as session:
        note = await session.get(tables.Notification, pk, with_for_update=True)
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
        if note.lease_owner != token:
            log.info("notification %s: lease lost; attempt recorded, outcome not applied", note.id)
            return
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
                "notification %s: %s after %s attempts; subscription deactivated",
                note.id,
                "given up" if decision.verdict is Verdict.GIVE_UP else "410 Gone",
                attempt_number,
            )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
