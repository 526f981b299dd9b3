"""Push notifications of ``changes.watch`` channels, POSTed to each channel's address.

A channel gets a ``sync`` message (number 1) once it is made, then a ``change`` message
when its account's files change; numbers increase per channel. Change messages wait
``delay`` seconds before they go, and changes made meanwhile ride on the same message (Google
too sends fewer messages than changes). Nothing is sent for a channel once it is stopped or
past its expiration, not even a message queued earlier. As Google, a message is retried with
exponential backoff when the receiver answers 500, 502, 503 or 504 or cannot be reached;
any other answer than 102, 200, 201, 202 or 204 fails it for good.

Work runs as asyncio tasks on the loop that serves the sandbox, started on first use.
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from relaybox.gdrive_sandbox import ids
from relaybox.gdrive_sandbox.model import Channel
from relaybox.sandbox_kit.sender import Sender

USER_AGENT = "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"
SUCCESS = frozenset({102, 200, 201, 202, 204})
RETRIED = frozenset({500, 502, 503, 504})


@dataclass
class Message:
    channel: Channel
    state: str
    """``sync`` or ``change``."""
    number: int


def headers(message: Message) -> dict[str, str]:
    channel = message.channel
    out = {
        "User-Agent": USER_AGENT,
        "X-Goog-Channel-ID": channel.id,
        "X-Goog-Channel-Expiration": ids.http_date(channel.expiration_ms / 1000),
        "X-Goog-Resource-State": message.state,
        "X-Goog-Message-Number": str(message.number),
        "X-Goog-Resource-ID": channel.resource_id,
        "X-Goog-Resource-URI": channel.resource_uri,
    }
    if channel.token is not None:
        out["X-Goog-Channel-Token"] = channel.token
    return out


class PushSender(Sender):
    def __init__(
        self,
        now: Callable[[], float],
        on_numbered: Callable[[], None],
        delay: float = 0.2,
    ) -> None:
        super().__init__(retry_base=0.5, retry_cap=30.0)
        self.now = now
        self._on_numbered = on_numbered
        self.delay = delay
        self.attempts = 6
        self._queues: dict[str, list[Message]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._deferred: set[str] = set()

    # --------------------------------------------------------------- queueing

    def sync(self, channel: Channel) -> None:
        self._enqueue(channel, "sync")

    def change(self, channel: Channel) -> None:
        queue = self._queues.get(channel.resource_id, [])
        if any(m.state == "change" for m in queue):
            self._record(channel, state="change", skipped="coalesced with a message not yet sent")
            return
        self._enqueue(channel, "change")

    def forget(self, channel: Channel) -> None:
        """Drop what is queued for ``channel`` (stopped)."""
        for message in self._queues.pop(channel.resource_id, []):
            self._record(
                channel, state=message.state, message_number=message.number, skipped="stopped"
            )

    def _enqueue(self, channel: Channel, state: str) -> None:
        channel.message_number += 1
        message = Message(channel, state, channel.message_number)
        self._queues.setdefault(channel.resource_id, []).append(message)
        self._on_numbered()
        self._ensure_worker(channel.resource_id)

    # ------------------------------------------------------------------ tasks

    def _ensure_worker(self, key: str) -> None:
        loop = self._running_loop()
        if loop is None:
            self._deferred.add(key)
            return
        if key not in self._workers:
            self._workers[key] = loop.create_task(self._drain(key))

    def start(self) -> None:
        """Send what was queued while no event loop ran (call inside the loop)."""
        deferred, self._deferred = self._deferred, set()
        for key in deferred:
            if self._queues.get(key):
                self._ensure_worker(key)

    def _forget_tasks(self) -> None:
        self._workers.clear()

    async def aclose(self) -> None:
        await self._cancel(self._workers.values())
        self._forget_tasks()
        await self._close_client()

    async def _drain(self, key: str) -> None:
        try:
            while self._queues.get(key):
                queue = self._queues[key]
                if queue[0].state == "change" and self.delay:
                    await asyncio.sleep(self.delay)
                    if not self._queues.get(key):
                        continue
                message = queue.pop(0)
                await self._deliver(message)
            self._queues.pop(key, None)
        finally:
            self._workers.pop(key, None)

    def _dead(self, message: Message) -> str | None:
        channel = message.channel
        if channel.stopped:
            return "stopped"
        if not channel.live(self.now()):
            return "expired"
        return None

    async def _deliver(self, message: Message) -> None:
        channel = message.channel
        sent = headers(message)
        for attempt in range(self.attempts):
            dead = self._dead(message)
            if dead is not None:
                self._record(
                    channel, state=message.state, message_number=message.number, skipped=dead
                )
                return
            answer = await self._send("POST", channel.address, content=b"", headers=sent)
            status = answer.status
            self._record(
                channel,
                state=message.state,
                message_number=message.number,
                attempt=attempt + 1,
                status=status,
                error=answer.error,
            )
            if status in SUCCESS or (status is not None and status not in RETRIED):
                return
            await asyncio.sleep(self._backoff(attempt))

    def _record(self, channel: Channel, **fields: Any) -> None:
        self.log.append(
            {
                "time": time.time(),
                "channel_id": channel.id,
                "resource_id": channel.resource_id,
                "address": channel.address,
                **fields,
            }
        )
