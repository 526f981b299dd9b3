"""Group commit: writes that arrive while a transaction commits share the next one.

Received webhooks, finished change passes and delivery attempts each end in a small
transaction; committing each alone costs a transaction (and on SQLite, a turn at the one
write lock) apiece. A `GroupCommit` queues them and applies every queued item in one
transaction, so a burst of N costs a handful of transactions instead of N. An item that
arrives alone is committed at once; during a burst a group may wait `linger` seconds for
more. `submit` returns only after the transaction holding its item has committed.

When a group's transaction fails, each of its items is tried again alone, so one bad item
(say, a notification whose instance was deleted meanwhile) fails by itself.

One group is in flight at a time: while it commits, the next one gathers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaybox.store.db import transaction

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

Apply = Callable[[AsyncSession, Sequence[T]], Awaitable[Sequence[R]]]
"""Writes a group of items in the given transaction; one result per item, in order."""


@dataclass
class _Waiting(Generic[T, R]):
    item: T
    done: asyncio.Future[R]


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        apply: Apply[T, R],
        *,
        name: str,
        max_group: int = 200,
        linger: float = 0.0,
        closing: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.sessions = sessions
        self.apply = apply
        self.name = name
        self.max_group = max_group
        self.linger = linger
        self.closing = closing  # run by `close`, e.g. to close the writer's own engine
        self._queue: asyncio.Queue[_Waiting[T, R]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Write `item` with whatever else is queued; its result once committed."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"group-commit-{self.name}")
        waiting: _Waiting[T, R] = _Waiting(item, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(waiting)
        return await waiting.done

    async def close(self) -> None:
        """Stop writing; whoever still waits hears that nothing was written for them."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while not self._queue.empty():
            _fail(self._queue.get_nowait(), RuntimeError(f"{self.name}: closed"))
        if self.closing is not None:
            await self.closing()

    async def _run(self) -> None:
        group: list[_Waiting[T, R]] = []
        try:
            await self._groups(group)
        except asyncio.CancelledError:
            for waiting in group:  # the transaction in flight was rolled back
                _fail(waiting, RuntimeError(f"{self.name}: closed"))
            raise

    async def _groups(self, group: list[_Waiting[T, R]]) -> None:
        """Commit group after group; `group` holds the one in flight."""
        bursting = False
        while True:
            group.clear()
            group.append(await self._queue.get())
            if self.linger and (bursting or not self._queue.empty()):
                # A burst is under way: let `linger` seconds more of it share this
                # transaction (on a quiet machine commits are quick and groups stay small,
                # which costs more per item than the wait). A lone item does not wait.
                await asyncio.sleep(self.linger)
            while len(group) < self.max_group and not self._queue.empty():
                group.append(self._queue.get_nowait())
            bursting = len(group) > 1
            try:
                results = await self._commit([waiting.item for waiting in group])
            except Exception as exc:
                if len(group) == 1:
                    _fail(group[0], exc)
                    continue
                log.info("%s: a group of %s failed; writing each alone", self.name, len(group))
                for waiting in group:
                    try:
                        (result,) = await self._commit([waiting.item])
                    except Exception as alone:
                        _fail(waiting, alone)
                    else:
                        _resolve(waiting, result)
                continue
            for waiting, result in zip(group, results, strict=True):
                _resolve(waiting, result)

    async def _commit(self, items: list[T]) -> Sequence[R]:
        async with transaction(self.sessions) as session:
            return await self.apply(session, items)


def _resolve(waiting: _Waiting[T, R], result: R) -> None:
    if not waiting.done.done():  # done already: the submitter was cancelled
        waiting.done.set_result(result)


def _fail(waiting: _Waiting[T, R], exception: BaseException) -> None:
    if not waiting.done.done():
        waiting.done.set_exception(exception)
