"""Fairness: an instance whose changes never stop does not hold up the others.

Passes are served oldest request first. The test makes the busy instance's stream
relentless without any timing: every time relaybox fetches changes (for any instance), the
sandbox first takes another upload to the busy account and relaybox acknowledges a webhook
naming it, so a new request for the busy instance is durable before the pass ends and the
busy instance is pending at every claim. With one pass at a time, serving by instance id
(the busy one is older) would leave the quiet instance waiting until the stream ends.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relaybox.sandbox.cursors import decode
from tests.support.stack import APP_SECRET, Stack, running_stack

STREAM = 60  # passes the busy stream lasts; the quiet event must not wait for its end


class BusyStream:
    """Sandbox middleware: before each list_folder/continue, one more busy change.

    It also records whose cursor each list_folder/continue call carried, in order.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.stack: Stack | None = None
        self.account = ""
        self.left = 0
        self.fetches: list[str] = []  # the account of each list_folder/continue call
        self.http = httpx.AsyncClient(timeout=30)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/2/files/list_folder/continue":
            await self.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.fetches.append(decode(json.loads(body)["cursor"]).account_id)
        if self.stack is not None and self.left > 0:
            self.left -= 1
            await self._busy_change(self.stack)

        async def replay() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _busy_change(self, stack: Stack) -> None:
        await self.http.put(
            f"{stack.sandbox}/_sandbox/accounts/{self.account}/files",
            params={"path": f"/busy/{self.left}.txt"},
            content=b"b",
        )
        await _webhook(self.http, stack, self.account)


async def _webhook(http: httpx.AsyncClient, stack: Stack, account: str) -> None:
    """Send relaybox a signed Dropbox webhook naming `account`; return once it is stored."""
    body = json.dumps({"list_folder": {"accounts": [account]}}).encode()
    signature = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    answer = await http.post(
        f"{stack.relaybox}/elements/api-v2/events/dropbox",
        content=body,
        headers={"X-Dropbox-Signature": signature, "Content-Type": "application/json"},
    )
    assert answer.status_code == 200, answer.text


async def test_a_busy_instance_does_not_delay_another(tmp_path: Path, database_url: str) -> None:
    streams: list[BusyStream] = []

    def wrap(app: ASGIApp) -> ASGIApp:
        streams.append(BusyStream(app))
        return streams[0]

    async with running_stack(
        tmp_path, database_url, wrap_sandbox=wrap, pass_concurrency=1
    ) as stack:
        stream = streams[0]
        busy = await stack.new_account("busy@example.com")
        quiet = await stack.new_account("quiet@example.com")
        await stack.connect(busy, "busy")  # the older instance: first by id
        await stack.connect(quiet, "quiet")
        stream.stack, stream.account, stream.left = stack, busy, STREAM
        await stack.upload(busy, "/busy/start.txt", b"s")  # the stream starts
        await stack.receiver.wait_for(lambda r: _paths(r.events(), "/busy/"))

        await stack.upload(quiet, "/quiet.txt", b"q")
        await _webhook(stream.http, stack, quiet)  # the quiet request is durable from here
        started = len(stream.fetches)
        await stack.receiver.wait_for(lambda r: "/quiet.txt" in _paths(r.events(), "/"))
        assert stream.left > 0, "the quiet event waited for the busy stream to end"
        after = stream.fetches[started:]
        # Before the quiet pass, at most one busy pass: the one asked for before the quiet
        # request (made during the pass that was running when it came).
        assert quiet in after[:2], f"passes after the quiet request: {after[:10]}"

        await stack.receiver.wait_for(
            lambda r: len(_paths(r.events(), "/busy/")) == STREAM + 1, timeout=60
        )
        await stream.http.aclose()


def _paths(events: list[dict[str, Any]], prefix: str) -> set[str]:
    return {e["path"] for e in events if e["path"].startswith(prefix)}
