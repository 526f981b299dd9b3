"""The webhook sender: challenges, signed and coalesced notifications, retries.

Work runs as asyncio tasks on the loop that serves the sandbox. Nothing
needs starting when the sandbox runs standalone (the lifespan closes the
sender) or mounted inside another app: a task is spawned on first use, on
the running loop. Work asked for where no loop runs (``register_app`` at
import time, say) is deferred until :meth:`WebhookSender.start` or the next
use inside a loop.
"""

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlencode

from relaybox.sandbox.model import App
from relaybox.sandbox_kit.sender import Sender

USER_AGENT = "DropboxWebhooks/1.0"


def signature(secret: str, body: bytes) -> str:
    """``X-Dropbox-Signature``: hex HMAC-SHA256 of the raw body keyed with the app secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def notification_body(accounts: dict[str, int]) -> bytes:
    ordered = sorted(accounts)
    body = {
        "list_folder": {"accounts": ordered},
        "delta": {"users": [accounts[a] for a in ordered]},
    }
    return json.dumps(body).encode()


class WebhookSender(Sender):
    def __init__(
        self,
        find_app: Callable[[str], App | None],
        on_verified: Callable[[], None],
        delay: float = 0.2,
    ) -> None:
        super().__init__(retry_base=0.1, retry_cap=5.0)
        self._find_app = find_app
        self._on_verified = on_verified
        self.delay = delay
        self.notify_attempts = 8
        self.challenge_attempts = 30
        self._pending: dict[str, dict[str, int]] = {}
        self._flushers: dict[str, asyncio.Task[None]] = {}
        self._challenges: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._deferred: list[Callable[[], Coroutine[Any, Any, None]]] = []

    # ------------------------------------------------------------------ tasks

    def _spawn(self, factory: Callable[[], Coroutine[Any, Any, None]]) -> asyncio.Task[None] | None:
        if self._running_loop() is None:
            self._deferred.append(factory)
            return None
        deferred, self._deferred = self._deferred, []
        for earlier in deferred:
            self._start_task(earlier)
        return self._start_task(factory)

    def _forget_tasks(self) -> None:
        self._tasks.clear()
        self._flushers.clear()
        self._challenges.clear()

    def _start_task(self, factory: Callable[[], Coroutine[Any, Any, None]]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(factory())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def start(self) -> None:
        """Run work deferred while no event loop was running (call inside the loop)."""
        if self._deferred:
            deferred, self._deferred = self._deferred, []
            for factory in deferred:
                self._spawn(factory)

    async def aclose(self) -> None:
        """Cancel every pending challenge, notification and retry."""
        await self._cancel(self._tasks)
        self._forget_tasks()
        await self._close_client()

    def _record(self, kind: str, app: App, **fields: Any) -> None:
        self.log.append({"time": time.time(), "kind": kind, "app_key": app.key, **fields})

    # -------------------------------------------------------------- challenge

    def challenge(self, app: App) -> None:
        """Verify ``app.webhook_uri`` in the background, retrying until it answers."""
        old = self._challenges.pop(app.key, None)
        if old is not None:
            old.cancel()
        task = self._spawn(lambda: self._verify(app))
        if task is not None:
            self._challenges[app.key] = task

    async def _verify(self, app: App) -> None:
        uri = app.webhook_uri
        if uri is None:
            return
        for attempt in range(self.challenge_attempts):
            challenge = secrets.token_urlsafe(16)
            url = uri + ("&" if "?" in uri else "?") + urlencode({"challenge": challenge})
            sent = await self._send("GET", url)
            ok = sent.status == 200 and sent.text == challenge
            self._record(
                "challenge",
                app,
                url=url,
                attempt=attempt + 1,
                status=sent.status,
                response=sent.text[:2048],
                error=sent.error,
                verified=ok,
            )
            if ok:
                app.webhook_verified = True
                self._on_verified()
                return
            await asyncio.sleep(self._backoff(attempt))

    # ---------------------------------------------------------- notifications

    def notify(self, app: App, account_id: str, uid: int) -> None:
        """Queue a notification that ``account_id`` changed; sent after ``delay``."""
        if not app.webhook_uri:
            return
        self._pending.setdefault(app.key, {})[account_id] = uid
        running = self._flushers.get(app.key)
        if running is None or running.done():
            task = self._spawn(lambda: self._flush(app.key))
            if task is not None:
                self._flushers[app.key] = task

    async def _flush(self, key: str) -> None:
        try:
            await asyncio.sleep(self.delay)
            while self._pending.get(key):
                app = self._find_app(key)
                if app is None or not app.webhook_uri:
                    self._pending.pop(key, None)
                    return
                if not app.webhook_verified:
                    challenge = self._challenges.get(key)
                    if challenge is not None and not challenge.done():
                        await asyncio.wait([challenge])
                if not app.webhook_verified:
                    skipped = self._pending.pop(key, {})
                    self._record(
                        "notification",
                        app,
                        skipped="webhook not verified",
                        accounts=sorted(skipped),
                    )
                    continue
                batch = self._pending.pop(key)
                await self._deliver(app, batch)
                if self._pending.get(key):
                    await asyncio.sleep(self.delay)
        finally:
            self._flushers.pop(key, None)

    async def _deliver(self, app: App, accounts: dict[str, int]) -> None:
        assert app.webhook_uri is not None
        body = notification_body(accounts)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Dropbox-Signature": signature(app.secret, body),
        }
        for attempt in range(self.notify_attempts):
            sent = await self._send("POST", app.webhook_uri, content=body, headers=headers)
            self._record(
                "notification",
                app,
                url=app.webhook_uri,
                attempt=attempt + 1,
                body=body.decode(),
                signature=headers["X-Dropbox-Signature"],
                status=sent.status,
                response=sent.text[:2048],
                error=sent.error,
            )
            if sent.status == 200:
                return
            await asyncio.sleep(self._backoff(attempt))
