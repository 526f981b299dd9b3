"""The baseline relay: what a developer writes in an afternoon from Dropbox's sample webhook app.

    python -m bench.handwritten_relay --port P --sandbox URL --app-key K --app-secret S
        --accounts FILE --callback URL [--signature-key KEY]

One process (Starlette on uvicorn), no database. At start it connects every account listed
in FILE (one Dropbox account id a line) the way Dropbox's sample does, against the sandbox:
an authorization code (the sandbox's control API stands in for the user's consent),
``/oauth2/token``, then ``files/list_folder/get_latest_cursor`` (recursive) for the
starting cursor, kept in memory. ``GET /webhook?challenge=`` echoes the challenge. On a
webhook whose ``X-Dropbox-Signature`` (hex HMAC-SHA256 of the body with the app secret)
matches, it answers 200 at once and, per named account, calls
``files/list_folder/continue`` until ``has_more`` is false (one pass at a time per account,
up to 32 accounts at once), then POSTs one signed notification per entry to the callback
(``Elements-Webhook-Signature: sha256=<base64 HMAC-SHA256>``), one after the other.

What it leaves out, next to relaybox: no durability (a crash loses cursors and queued
events), no retries of failed callbacks (counted, then dropped), no created/updated
distinction or move detection (no index: a file or folder entry is ``CHANGED``), no token
refresh, one app and one callback for everybody.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

log = logging.getLogger("handwritten_relay")
REDIRECT = "https://app.example.com/auth"
PASS_CONCURRENCY = 32


class Relay:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.secret = args.app_secret.encode()
        self.key = args.signature_key.encode() if args.signature_key else None
        self.tokens: dict[str, str] = {}
        self.cursors: dict[str, str] = {}
        self.locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # At most this many passes at once: with one task per named account and no bound,
        # a webhook naming 10,000 accounts queues 20,000 requests in httpx's pool, whose
        # every request and answer scans that queue (quadratic; minutes of CPU).
        self.gate = asyncio.Semaphore(PASS_CONCURRENCY)
        self.tasks: set[asyncio.Task[None]] = set()
        self.failed_callbacks = 0
        self.http = httpx.AsyncClient(timeout=30)

    async def rpc(self, account: str, route: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = await self.http.post(
            f"{self.args.sandbox}/2/{route}",
            json=body,
            headers={"Authorization": f"Bearer {self.tokens[account]}"},
        )
        answer.raise_for_status()
        return dict(answer.json())

    async def connect(self, account: str) -> None:
        sandbox = self.args.sandbox
        consent = await self.http.post(
            f"{sandbox}/_sandbox/authorize",
            json={"app_key": self.args.app_key, "account_id": account, "redirect_uri": REDIRECT},
        )
        consent.raise_for_status()
        token = await self.http.post(
            f"{sandbox}/oauth2/token",
            data={
                "code": consent.json()["code"],
                "grant_type": "authorization_code",
                "client_id": self.args.app_key,
                "client_secret": self.args.app_secret,
                "redirect_uri": REDIRECT,
            },
        )
        token.raise_for_status()
        self.tokens[account] = token.json()["access_token"]
        latest = await self.rpc(
            account, "files/list_folder/get_latest_cursor", {"path": "", "recursive": True}
        )
        self.cursors[account] = latest["cursor"]

    async def connect_all(self) -> None:
        with open(self.args.accounts) as lines:
            accounts = [line.strip() for line in lines if line.strip()]
        gate = asyncio.Semaphore(16)

        async def one(account: str) -> None:
            async with gate:
                await self.connect(account)

        await asyncio.gather(*(one(account) for account in accounts))
        log.warning("connected %d accounts", len(accounts))

    async def process(self, account: str) -> None:
        """Fetch what changed in `account` and send one signed POST per entry."""
        async with self.locks[account], self.gate:
            has_more = True
            while has_more:
                page = await self.rpc(
                    account, "files/list_folder/continue", {"cursor": self.cursors[account]}
                )
                for entry in page["entries"]:
                    await self.send(account, entry)
                self.cursors[account] = page["cursor"]
                has_more = page["has_more"]

    async def send(self, account: str, entry: dict[str, Any]) -> None:
        tag = entry[".tag"]
        event = {
            "eventType": "DELETED" if tag == "deleted" else "CHANGED",
            "objectType": "folders" if tag == "folder" else "files",
            "objectId": entry.get("id", entry["path_lower"]),
            "path": entry.get("path_display", entry["path_lower"]),
        }
        body = json.dumps({"message": {"accountId": account, "events": [event]}}).encode()
        headers = {"Content-Type": "application/json"}
        if self.key is not None:
            digest = hmac.new(self.key, body, hashlib.sha256).digest()
            headers["Elements-Webhook-Signature"] = "sha256=" + base64.b64encode(digest).decode()
        try:
            answer = await self.http.post(self.args.callback, content=body, headers=headers)
            if not answer.is_success:
                self.failed_callbacks += 1
        except httpx.HTTPError:
            self.failed_callbacks += 1

    def spawn(self, account: str) -> None:
        task = asyncio.create_task(self.process(account))
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("pass failed: %r", task.exception())

    async def webhook(self, request: Request) -> Response:
        if request.method == "GET":
            return PlainTextResponse(
                request.query_params.get("challenge", ""),
                headers={"X-Content-Type-Options": "nosniff"},
            )
        body = await request.body()
        signature = request.headers.get("X-Dropbox-Signature", "")
        expected = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature, expected):
            return Response(status_code=403)
        for account in json.loads(body)["list_folder"]["accounts"]:
            if account in self.cursors:
                self.spawn(account)
        return Response(status_code=200)

    async def stats(self, request: Request) -> Response:
        data = {"failed_callbacks": self.failed_callbacks, "running": len(self.tasks)}
        return Response(json.dumps(data), media_type="application/json")

    def app(self) -> Starlette:
        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            await self.connect_all()
            yield
            for task in list(self.tasks):
                task.cancel()
            await self.http.aclose()

        return Starlette(
            routes=[
                Route("/webhook", self.webhook, methods=["GET", "POST"]),
                Route("/stats", self.stats, methods=["GET"]),
            ],
            lifespan=lifespan,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sandbox", required=True, help="base URL of the Dropbox sandbox")
    parser.add_argument("--app-key", required=True)
    parser.add_argument("--app-secret", required=True)
    parser.add_argument("--accounts", required=True, help="file: one account id a line")
    parser.add_argument("--callback", required=True)
    parser.add_argument("--signature-key", default=None)
    args = parser.parse_args()
    uvicorn.run(Relay(args).app(), host="127.0.0.1", port=args.port, log_level="info")


if __name__ == "__main__":
    main()
