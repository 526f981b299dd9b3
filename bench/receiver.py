"""The callback receiver of the benchmarks, as its own process.

    python -m bench.receiver --port P [--key SIGNATURE_KEY]

A bare ASGI app on uvicorn (no framework, no access log), so that it costs little next to
the relay it measures. Every POST is a notification in relaybox's shape
(``{"message": {"accountId": ..., "events": [{"path": ..., ...}]}}``; the handwritten relay
sends the same shape with one event); for each event it records the arrival time
(``time.monotonic()``, the same clock in every process of the machine), the account and the
path. With ``--key`` it checks ``Elements-Webhook-Signature`` and counts the bad ones.

Control routes for the driver:
``GET /_stats``; ``GET /_wait?unique=N&timeout=S`` (answers once N distinct
(account, path) pairs arrived, or after S seconds); ``GET /_dump`` (every first arrival:
``[[time, account, path], ...]``); ``POST /_reset``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import parse_qs

import uvicorn

Scope = dict[str, Any]


class Recorder:
    def __init__(self, key: str | None) -> None:
        self.key = key.encode() if key else None
        self.reset()

    def reset(self) -> None:
        self.first: dict[tuple[str, str], float] = {}
        self.events = self.posts = self.bad_signatures = self.unparsable = 0
        self.last_arrival = 0.0
        self.changed = asyncio.Event()

    def record(self, body: bytes, signature: str | None) -> None:
        now = time.monotonic()
        self.posts += 1
        if self.key is not None:
            expected = (
                "sha256="
                + base64.b64encode(hmac.new(self.key, body, hashlib.sha256).digest()).decode()
            )
            if signature is None or not hmac.compare_digest(signature, expected):
                self.bad_signatures += 1
        try:
            message = json.loads(body)["message"]
            account = str(message.get("accountId"))
            paths = [str(event.get("path")) for event in message["events"]]
        except (ValueError, KeyError, TypeError, AttributeError):
            self.unparsable += 1
            return
        for path in paths:
            self.events += 1
            self.first.setdefault((account, path), now)
        self.last_arrival = now
        self.changed.set()

    def stats(self) -> dict[str, Any]:
        return {
            "posts": self.posts,
            "events": self.events,
            "unique": len(self.first),
            "bad_signatures": self.bad_signatures,
            "unparsable": self.unparsable,
            "last_arrival": self.last_arrival,
        }

    async def wait(self, unique: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.first) < unique:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))


def application(recorder: Recorder) -> Any:
    async def send_json(send: Any, data: Any, status: int = 200) -> None:
        body = json.dumps(data).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        path, method = scope["path"], scope["method"]
        if method == "POST" and not path.startswith("/_"):
            chunks = []
            while True:
                message = await receive()
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
            signature = None
            for name, value in scope["headers"]:
                if name == b"elements-webhook-signature":
                    signature = value.decode()
            recorder.record(b"".join(chunks), signature)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        elif path == "/_stats":
            await send_json(send, recorder.stats())
        elif path == "/_wait":
            query = parse_qs(scope["query_string"].decode())
            await recorder.wait(int(query["unique"][0]), float(query.get("timeout", ["60"])[0]))
            await send_json(send, recorder.stats())
        elif path == "/_dump":
            await send_json(send, [[t, a, p] for (a, p), t in recorder.first.items()])
        elif path == "/_reset" and method == "POST":
            recorder.reset()
            await send_json(send, recorder.stats())
        else:
            await send_json(send, {"error": "not found"}, 404)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", default=None, help="signature key to check")
    args = parser.parse_args()
    uvicorn.run(
        application(Recorder(args.key)),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
