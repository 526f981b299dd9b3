"""Longpoll instances: hold one `files/list_folder/longpoll` per instance, fetch on changes.

Each held instance is one asyncio task (no thread), so one process holds thousands. A task
reads the instance's current cursor, waits on Dropbox's notify host (no Authorization
header) for up to `RELAYBOX_LONGPOLL_TIMEOUT` seconds, and on `changes: true` requests a
pass through `store.passes.request_pass`, exactly as the receiver does for a webhook; it
then waits for that pass to move the cursor before it longpolls again from the new one.

Which process holds which instance is a lease of its own (`longpoll_owner`,
`longpoll_until`), separate from the pass lease: taken with a conditional UPDATE, renewed
in bulk while held, released on shutdown, and taken over by another process when a
holder dies. The set of held instances is reconciled on every worker tick (new ones) and
on wake-ups or every third of a lease (renewals, switched or removed instances).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from datetime import timedelta

import httpx
from sqlalchemy import ColumnElement, and_, not_, or_, select, update

from relaybox.connectors.base import Connector
from relaybox.core.backoff import backoff
from relaybox.core.errors import CursorReset, ProviderError, RateLimited
from relaybox.runtime import USER_AGENT, Runtime
from relaybox.store import tables
from relaybox.store.db import transaction
from relaybox.store.passes import fetchable, request_pass

log = logging.getLogger(__name__)

# Database work of the held tasks at once (a pool has few connections).
DB_CONCURRENCY = 8
# New instances leased per tick.
TAKE_LIMIT = 1000
# Back-off after failed longpolls (5xx, timeouts, a 400): doubled per failure, capped.
ERROR_BACKOFF_BASE = 1.0
ERROR_BACKOFF_CAP = 300.0
# Held longpolls per connection pool: httpcore scans a pool's connections and queued
# requests on every request and answer, so one pool of thousands costs CPU quadratically.
POOL_SIZE = 50
# Spread the first longpolls of a large batch of new instances over this many seconds.
START_SPREAD_PER_1000 = 1.0


def longpolled() -> ColumnElement[bool]:
    """Instances whose events come from a held longpoll and that can be fetched now."""
    return and_(tables.Instance.vendor_type == "longpoll", fetchable())


def error_backoff(failures: int, rng: random.Random) -> float:
    """Seconds to wait after `failures` consecutive failed longpolls."""
    return backoff(failures, base=ERROR_BACKOFF_BASE, cap=ERROR_BACKOFF_CAP, rng=rng)


class LongpollHub:
    """Holds the longpolls of every longpoll instance this process has leased."""

    def __init__(self, runtime: Runtime, owner: str) -> None:
        self.runtime = runtime
        self.owner = owner
        self.timeout = runtime.settings.longpoll_timeout
        # Pools of their own (every held longpoll keeps a connection open), by id / POOL_SIZE.
        self._clients: dict[tuple[str, int], Connector] = {}
        self.held: dict[int, asyncio.Task[None]] = {}
        self._passes: dict[int, asyncio.Event] = {}
        self._db = asyncio.Semaphore(DB_CONCURRENCY)
        self._rng = random.Random()

    # --- the set of held instances -------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        """Reconcile until `stopping` is set, then let every longpoll go."""
        loop = asyncio.get_running_loop()
        wake = self.runtime.wakeups.sources
        settings = self.runtime.settings
        renew_every = settings.lease_seconds / 3
        last_full = float("-inf")
        try:
            while not stopping.is_set():
                full = wake.is_set() or loop.time() - last_full >= renew_every
                wake.clear()
                try:
                    await self.reconcile(full=full)
                    if full:
                        last_full = loop.time()
                except Exception:
                    log.exception("longpoll: reconciling held instances failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        _first(wake, stopping), timeout=settings.worker_poll_seconds
                    )
        finally:
            await self.close()

    async def reconcile(self, *, full: bool = True) -> set[int]:
        """Lease free longpoll instances; when `full`, renew and drop what is not ours."""
        instance = tables.Instance
        now = self.runtime.clock.now()
        until = now + timedelta(seconds=self.runtime.settings.lease_seconds)
        free = or_(instance.longpoll_until.is_(None), instance.longpoll_until < now)
        mine = instance.longpoll_owner == self.owner
        async with self._db, transaction(self.runtime.sessions) as session:
            if full:
                await session.execute(
                    update(instance)
                    .where(mine, not_(longpolled()))
                    .values(longpoll_owner=None, longpoll_until=None)
                )
                await session.execute(update(instance).where(mine).values(longpoll_until=until))
            candidates = list(
                await session.scalars(
                    select(instance.id).where(longpolled(), free).limit(TAKE_LIMIT)
                )
            )
            if candidates:
                await session.execute(
                    update(instance)
                    .where(instance.id.in_(candidates), longpolled(), free)
                    .values(longpoll_owner=self.owner, longpoll_until=until)
                )
            if not (full or candidates):
                return set(self.held)
            owned = set(await session.scalars(select(instance.id).where(mine)))
        for instance_id in set(self.held) - owned:
            self.held.pop(instance_id).cancel()
        new = sorted(owned - set(self.held))
        spread = START_SPREAD_PER_1000 * len(new) / 1000 if len(new) > 50 else 0.0
        for instance_id in new:
            delay = self._rng.uniform(0, spread) if spread else 0.0
            task = asyncio.create_task(self._hold(instance_id, delay))
            self.held[instance_id] = task
            task.add_done_callback(functools.partial(self._forget, instance_id))
        return owned

    def pass_finished(self, instance_id: int) -> None:
        """A pass over this instance ended in this process: its holder may go on at once."""
        event = self._passes.get(instance_id)
        if event is not None:
            event.set()

    async def close(self) -> None:
        """Cancel every held longpoll and give the leases back for another process."""
        tasks = list(self.held.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.held.clear()
        try:
            async with transaction(self.runtime.sessions) as session:
                await session.execute(
                    update(tables.Instance)
                    .where(tables.Instance.longpoll_owner == self.owner)
                    .values(longpoll_owner=None, longpoll_until=None)
                )
        except Exception:
            log.exception("longpoll: releasing leases failed (they expire on their own)")
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    def _client(self, instance_id: int, element_key: str) -> Connector:
        shard = (element_key, instance_id // POOL_SIZE)
        client = self._clients.get(shard)
        if client is None:
            http = httpx.AsyncClient(
                timeout=httpx.Timeout(30.0, connect=10.0),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
                headers={"User-Agent": USER_AGENT},
                follow_redirects=False,
            )
            # No retries inside the client: `_longpolls` backs off and re-reads the cursor.
            client = self.runtime.connector(element_key).waiting_on(http)
            self._clients[shard] = client
        return client

    def _forget(self, instance_id: int, task: asyncio.Task[None]) -> None:
        if self.held.get(instance_id) is task:
            del self.held[instance_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("longpoll of instance %s failed", instance_id, exc_info=task.exception())

    # --- one held instance ---------------------------------------------------------

    async def _hold(self, instance_id: int, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        finished = self._passes.setdefault(instance_id, asyncio.Event())
        try:
            await self._longpolls(instance_id, finished)
        finally:
            if self._passes.get(instance_id) is finished:
                del self._passes[instance_id]

    async def _longpolls(self, instance_id: int, finished: asyncio.Event) -> None:
        failures = 0
        while True:
            finished.clear()
            state = await self._state(instance_id)
            if state is None:
                return
            element_key, cursor, pending = state
            if pending:
                # Wait for the pass to move the cursor: signalled when it runs in this
                # process, re-read every worker tick when it runs in another.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        finished.wait(), timeout=self.runtime.settings.worker_poll_seconds
                    )
                continue
            try:
                answer = await self._client(instance_id, element_key).wait_for_changes(
                    cursor, self.timeout
                )
            except CursorReset:
                log.info("instance %s: longpoll cursor reset, relisting", instance_id)
                await self._request(instance_id)
                continue
            except RateLimited as exc:
                await asyncio.sleep(exc.retry_after)
                continue
            except ProviderError as exc:
                failures += 1
                wait = error_backoff(failures, self._rng)
                log.warning(
                    "instance %s: longpoll failed (%s), next in %.0f s", instance_id, exc, wait
                )
                await asyncio.sleep(wait)
                continue
            failures = 0
            if answer is None:
                log.warning("instance %s: %s cannot wait for changes", instance_id, element_key)
                return
            if answer.changes:
                await self._request(instance_id)
            if answer.backoff:
                await asyncio.sleep(answer.backoff)

    async def _state(self, instance_id: int) -> tuple[str, str, bool] | None:
        """(element key, cursor, pass pending) while this process should hold the
        instance, else None."""
        instance = tables.Instance
        async with self._db, transaction(self.runtime.sessions) as session:
            row = (
                await session.execute(
                    select(
                        instance.element_key,
                        instance.cursor,
                        instance.sync_requested > instance.sync_done,
                    ).where(
                        instance.id == instance_id,
                        instance.longpoll_owner == self.owner,
                        longpolled(),
                    )
                )
            ).first()
        if row is None or not row[1]:
            return None
        return str(row[0]), str(row[1]), bool(row[2])

    async def _request(self, instance_id: int) -> None:
        async with self._db, transaction(self.runtime.sessions) as session:
            await request_pass(session, [instance_id], None, now=self.runtime.clock.now())
        self.runtime.wakeups.changes.set()


async def _first(*events: asyncio.Event) -> None:
    """Return when any of `events` is set."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
