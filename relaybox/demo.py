"""`relaybox demo`: the whole flow against a running `relaybox serve --sandbox`, by its HTTP APIs.

It runs a callback receiver, connects the sandbox's demo account exactly as a client would
(OAuth URL, consent, `POST /instances`), optionally makes a few changes, and prints every
event that arrives with the result of checking its signature.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

DEMO_CALLBACK = "http://127.0.0.1:{port}/events"
OAUTH_CALLBACK = "http://127.0.0.1/oauth-done"


def receiver(signature_key: str, show: Callable[[str], None]) -> Starlette:
    async def events(request: Request) -> Response:
        body = await request.body()
        expected = (
            "sha256="
            + base64.b64encode(
                hmac.new(signature_key.encode(), body, hashlib.sha256).digest()
            ).decode()
        )
        signed = hmac.compare_digest(
            request.headers.get("elements-webhook-signature", ""), expected
        )
        for event in json.loads(body)["message"]["events"]:
            moved = f" -> {event['newPath']}" if "newPath" in event else ""
            show(
                f"{event['eventType']:8} {event['objectType']:8} {event['path']}{moved}"
                f"   [{event['objectId']}] signature {'ok' if signed else 'WRONG'}"
            )
        return Response(status_code=200)

    return Starlette(routes=[Route("/events", events, methods=["POST"])])


async def connect(
    http: httpx.AsyncClient,
    base: str,
    auth: str,
    app_key: str,
    app_secret: str,
    account: str,
    callback: str,
    signature_key: str,
) -> dict[str, Any]:
    api = f"{base}/elements/api-v2"
    headers = {"Authorization": auth}
    answer = await http.get(
        f"{api}/elements/dropbox/oauth/url",
        params={
            "apiKey": app_key,
            "apiSecret": app_secret,
            "callbackUrl": OAUTH_CALLBACK,
            "state": secrets.token_hex(8),
        },
        headers=headers,
    )
    answer.raise_for_status()
    oauth_url = urlsplit(answer.json()["oauthUrl"])
    query = {k: v[0] for k, v in parse_qs(oauth_url.query).items()}
    consent = await http.post(
        oauth_url._replace(query="").geturl(),
        data={**query, "account_id": account, "decision": "allow"},
    )
    code = parse_qs(urlsplit(consent.headers["location"]).query)["code"][0]
    created = await http.post(
        f"{api}/instances",
        headers=headers,
        json={
            "element": {"key": "dropbox"},
            "providerData": {"code": code},
            "name": f"demo {secrets.token_hex(3)}",
            "tags": ["demo"],
            "configuration": {
                "oauth.api.key": app_key,
                "oauth.api.secret": app_secret,
                "oauth.callback.url": OAUTH_CALLBACK,
                "event.notification.enabled": True,
                "event.notification.callback.url": callback,
                "event.notification.signature.key": signature_key,
            },
        },
    )
    if created.status_code != 200:
        raise SystemExit(f"creating the instance failed: {created.text}")
    return dict(created.json())


async def make_changes(
    http: httpx.AsyncClient, sandbox: str, account: str, token: str | None = None
) -> None:
    control = f"{sandbox}/_sandbox/accounts/{account}"
    folder = f"/demo-{secrets.token_hex(2)}"
    steps: list[httpx.Request] = [
        http.build_request(
            "PUT", f"{control}/files", params={"path": f"{folder}/hello.txt"}, content=b"hello"
        ),
        http.build_request(
            "PUT",
            f"{control}/files",
            params={"path": f"{folder}/hello.txt"},
            content=b"hello, again",
        ),
        http.build_request(
            "POST",
            f"{control}/move",
            json={"from_path": f"{folder}/hello.txt", "to_path": f"{folder}/greeting.txt"},
        ),
        http.build_request("DELETE", f"{control}/files", params={"path": folder}),
    ]
    for step in steps:
        if token:  # the sandbox's control API token (`serve --sandbox-public`)
            step.headers["Authorization"] = f"Bearer {token}"
        await asyncio.sleep(1.5)
        (await http.send(step)).raise_for_status()


async def run_demo(
    *,
    base: str,
    auth: str,
    app_key: str,
    app_secret: str,
    account: str,
    port: int,
    changes: bool,
    show: Callable[[str], None],
    sandbox_token: str | None = None,
) -> None:
    signature_key = secrets.token_urlsafe(16)
    server = uvicorn.Server(
        uvicorn.Config(
            receiver(signature_key, show), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    task = asyncio.create_task(server.serve())
    async with httpx.AsyncClient(timeout=30) as http:
        instance = await connect(
            http,
            base,
            auth,
            app_key,
            app_secret,
            account,
            DEMO_CALLBACK.format(port=port),
            signature_key,
        )
        sandbox = f"{base}/sandbox"
        show(f"instance {instance['id']} connected to {account}; events go to port {port}")
        show(f"change files at {sandbox}/_sandbox/ui and watch them arrive here (Ctrl+C stops)")
        if changes:
            await make_changes(http, sandbox, account, sandbox_token)
    await task
