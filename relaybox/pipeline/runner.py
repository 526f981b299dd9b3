"""The worker loops: take leased work, run it concurrently, wake on nudges or on a timer.

In `relaybox serve` they run inside the web process; `relaybox worker` runs them alone.
Any number of processes may run them against one database: leases keep them apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from relaybox.pipeline import changes, channels, delivery, housekeeping, longpoll, poller
from relaybox.runtime import Runtime

log = logging.getLogger(__name__)

Claimed = TypeVar("Claimed")
"""A claimed piece of work (a pass, a delivery attempt) with the lease that proves it."""

HOUSEKEEPING_SECONDS = 3600.0


class Workers:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self.poller = poller.Poller(runtime)
        self.channels = channels.ChannelKeeper(runtime)
        self.longpolls = longpoll.LongpollHub(runtime, self.owner)
        self.pass_commits = changes.pass_commits(runtime)
        self.attempt_records = delivery.attempt_records(runtime)

    def start(self) -> None:
        wake = self.runtime.wakeups
        self._tasks = [
            asyncio.create_task(
                self._loop(
                    "changes",
                    wake.changes,
                    self.runtime.settings.pass_concurrency,
                    self._claim_passes,
                    self._run_pass,
                )
            ),
            asyncio.create_task(
                self._loop(
                    "delivery",
                    wake.delivery,
                    self.runtime.settings.delivery_concurrency,
                    self._claim_deliveries,
                    self._deliver,
                )
            ),
            asyncio.create_task(self._polling()),
            asyncio.create_task(self.longpolls.run(self._stopping)),
            asyncio.create_task(self._housekeeping()),
        ]

    async def stop(self) -> None:
        """Stop taking work, let in-flight work finish (leases cover the rest), return."""
        self._stopping.set()
        self.runtime.wakeups.changes.set()
        self.runtime.wakeups.delivery.set()
        self.runtime.wakeups.sources.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.pass_commits.close()
        await self.attempt_records.close()

    async def _claim_passes(self, limit: int) -> list[changes.Claimed]:
        return await changes.claim(self.runtime, self.owner, limit)

    async def _run_pass(self, claimed: changes.Claimed) -> None:
        try:
            await changes.ChangePass(self.runtime, claimed, self.pass_commits).run()
        finally:
            self.longpolls.pass_finished(claimed.instance_id)

    async def _claim_deliveries(self, limit: int) -> list[delivery.Claimed]:
        return await delivery.claim(self.runtime, self.owner, limit)

    async def _deliver(self, claimed: delivery.Claimed) -> None:
        await delivery.deliver(self.runtime, claimed, self.attempt_records)

    async def _polling(self) -> None:
        """Every worker tick: turn due polls into pass requests, keep push channels."""
        while not self._stopping.is_set():
            try:
                await self.poller.tick()
            except Exception:
                log.exception("poller: requesting due polls failed")
            try:
                await self.channels.tick()
            except Exception:
                log.exception("channels: keeping push channels failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._stopping.wait(), timeout=self.runtime.settings.worker_poll_seconds
                )

    async def _housekeeping(self) -> None:
        """Prune the inbox and finished notifications once at start and then every hour."""
        while not self._stopping.is_set():
            try:
                pruned = await housekeeping.prune_inbox(self.runtime)
                if pruned:
                    log.info("housekeeping: pruned %s old inbox rows", pruned)
            except Exception:
                log.exception("housekeeping: pruning the inbox failed")
            try:
                notes = await housekeeping.prune_notifications(
                    self.runtime, stopping=self._stopping
                )
                if notes.notifications:
                    log.info(
                        "housekeeping: pruned %s finished notifications (%s events) older "
                        "than %s days, in %s batches",
                        notes.notifications,
                        notes.events,
                        self.runtime.settings.retention_days,
                        notes.batches,
                    )
            except Exception:
                log.exception("housekeeping: pruning notifications failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=HOUSEKEEPING_SECONDS)

    async def _loop(
        self,
        name: str,
        wake: asyncio.Event,
        concurrency: int,
        claim: Callable[[int], Awaitable[list[Claimed]]],
        run: Callable[[Claimed], Awaitable[None]],
    ) -> None:
        running: set[asyncio.Task[None]] = set()
        poll = self.runtime.settings.worker_poll_seconds
        # While busy, claim in batches of at least this many: one claim query per finished
        # item would cost more than the items themselves.
        batch = max(1, concurrency // 4)
        while not self._stopping.is_set():
            wake.clear()
            free = concurrency - len(running)
            if running and free < batch:
                await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                continue
            claimed: list[Claimed] = []
            if free > 0:
                try:
                    claimed = await claim(free)
                except Exception:
                    log.exception("%s worker: claiming work failed", name)
            for item in claimed:
                task = asyncio.create_task(self._guard(name, run, item, wake))
                running.add(task)
                task.add_done_callback(running.discard)
            if claimed and len(claimed) == free:
                await asyncio.sleep(0)
                if running and len(running) >= concurrency:
                    await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=poll)
        if running:
            await asyncio.gather(*running, return_exceptions=True)

    async def _guard(
        self,
        name: str,
        run: Callable[[Claimed], Awaitable[None]],
        item: Claimed,
        wake: asyncio.Event,
    ) -> None:
        try:
            await run(item)
        except Exception:
            log.exception("%s worker: item %s failed", name, item)
        finally:
            wake.set()  # a finished item may unblock the next one (ordering, coalesced passes)
