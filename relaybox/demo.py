"""`relaybox demo`: the whole flow against a running `relaybox serve --sandbox`, by its HTTP APIs.

It runs a callback receiver, registers an app of its own with the sandbox (its control API),
connects the sandbox's demo account exactly as a client would (OAuth URL, consent,
`POST /instances`), optionally makes a few changes, and prints every event that arrives
with the result of checking its signature. The Dropbox sandbox by default; with
`--element googledrive` the Google Drive one (`DriveDemo`: the same tour, through Google's
consent page and a push channel relaybox opens for the account). It reads nothing from
disk, so it runs from any folder. When it ends (Ctrl+C, SIGTERM) it deletes its instance.
What goes wrong is a `DemoError` whose message is one line for the user.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import signal
import socket
from collections.abc import Callable
from contextlib import nullcontext
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
DEMO_EMAIL = "demo@example.com"
STEP_SECONDS = 1.5  # between two changes of the tour, so each arrives on its own
CHANNEL_WAIT = 30.0  # seconds relaybox may take to open a Google Drive push channel
AUTH_HELP = (
    "pass the `User ..., Organization ...` value relaybox printed at its first start "
    "(--auth or RELAYBOX_DEMO_AUTH)"
)


class DemoError(Exception):
    """What stopped the demo, in one line for the user."""


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


def _message(answer: httpx.Response) -> str:
    try:
        data = answer.json()
    except ValueError:
        return answer.text[:200]
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or data)[:200]
    return str(data)[:200]


class Demo:
    """The demo's calls to relaybox (`base`) and the provider's sandbox it mounts; what
    differs between providers is in the subclasses (`DEMOS`)."""

    element = "dropbox"
    name = "Dropbox"
    mounted_at = "/sandbox"  # where `relaybox serve --sandbox` serves this sandbox
    account_field = "account_id"  # the consent page's choice of account

    def __init__(
        self, http: httpx.AsyncClient, base: str, auth: str, sandbox_token: str | None
    ) -> None:
        if not auth.strip() or "\n" in auth.strip() or "\r" in auth:
            raise DemoError(f"the credential must be one line: {AUTH_HELP}")
        self.http, self.base, self.auth = http, base, auth.strip()
        self.api = f"{base}/elements/api-v2"
        self.sandbox = f"{base}{self.mounted_at}"
        # The sandbox's control API token (RELAYBOX_SANDBOX_TOKEN, `--sandbox-public`).
        self.control_auth = {"Authorization": f"Bearer {sandbox_token}"} if sandbox_token else {}

    async def send(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self.http.send(request)
        except httpx.ConnectError:
            raise DemoError(
                f"cannot reach relaybox at {self.base}: start it with `make run` "
                "(or `relaybox serve --sandbox`), or pass its address with --url"
            ) from None
        except httpx.HTTPError as exc:
            raise DemoError(f"{request.method} {request.url.path} failed: {exc!r}") from None

    async def control(self, method: str, path: str, **kwargs: Any) -> Any:
        """A call to the sandbox's control API; its refusals said in words."""
        request = self.http.build_request(
            method, f"{self.sandbox}/_sandbox{path}", headers=self.control_auth, **kwargs
        )
        answer = await self.send(request)
        if answer.status_code == 401:
            raise DemoError(
                "the sandbox's control API wants its token: set RELAYBOX_SANDBOX_TOKEN to the "
                "token relaybox printed at start"
            )
        if answer.status_code == 404 and path in ("/apps", "/accounts"):
            raise DemoError(
                f"{self.base} serves no {self.name} sandbox: start relaybox with --sandbox"
            )
        if not answer.is_success:
            raise DemoError(
                f"the sandbox refused {path} ({answer.status_code}): {_message(answer)}"
            )
        return answer.json()

    async def platform(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A call to relaybox's API with the credential; a refused credential said in words."""
        request = self.http.build_request(
            method, f"{self.api}{path}", headers={"Authorization": self.auth}, **kwargs
        )
        answer = await self.send(request)
        if answer.status_code in (401, 429):
            raise DemoError(f"relaybox refused the credential ({_message(answer)}): {AUTH_HELP}")
        return answer

    async def register_app(self) -> tuple[str, str]:
        """A sandbox app of the demo's own, its webhooks going to relaybox's receiver."""
        key, secret = f"relaybox-demo-{secrets.token_hex(4)}", secrets.token_urlsafe(24)
        webhook = f"{self.api}/events/dropbox"
        await self.control(
            "POST", "/apps", json={"app_key": key, "app_secret": secret, "webhook_uri": webhook}
        )
        return key, secret

    async def new_account(self) -> str:
        """The sandbox's demo account (made if absent)."""
        made = await self.control("POST", "/accounts", json={"email": DEMO_EMAIL})
        return str(made["account_id"])

    def files_page(self, account: str) -> str:
        return f"{self.sandbox}/_sandbox/ui?account_id={account}"

    async def connect(
        self, app_key: str, app_secret: str, account: str, callback: str, signature_key: str
    ) -> dict[str, Any]:
        """Connect `account` as a client would: OAuth URL, consent, `POST /instances`."""
        answer = await self.platform(
            "GET",
            f"/elements/{self.element}/oauth/url",
            params={
                "apiKey": app_key,
                "apiSecret": app_secret,
                "callbackUrl": OAUTH_CALLBACK,
                "state": secrets.token_hex(8),
            },
        )
        if not answer.is_success:
            raise DemoError(f"the OAuth URL was refused ({answer.status_code}): {_message(answer)}")
        oauth_url = urlsplit(answer.json()["oauthUrl"])
        query = {k: v[0] for k, v in parse_qs(oauth_url.query).items()}
        consent = await self.send(
            self.http.build_request(
                "POST",
                oauth_url._replace(query="").geturl(),
                data={**query, self.account_field: account, "decision": "allow"},
            )
        )
        location = consent.headers.get("location", "")
        code = parse_qs(urlsplit(location).query).get("code", [""])[0]
        if not code:
            raise DemoError(
                f"the sandbox's consent page gave no code ({consent.status_code}): "
                f"{_message(consent)}"
            )
        created = await self.platform(
            "POST",
            "/instances",
            json={
                "element": {"key": self.element},
                "providerData": {"code": code},
                "name": f"demo {secrets.token_hex(3)}",
                "tags": ["demo"],
                "configuration": {
                    "oauth.api.key": app_key,
                    "oauth.api.secret": app_secret,
                    # the redirect of the consent: Google wants it again at the exchange
                    "oauth.callback.url": OAUTH_CALLBACK,
                    "event.notification.enabled": True,
                    "event.notification.callback.url": callback,
                    "event.notification.signature.key": signature_key,
                },
            },
        )
        if created.status_code != 200:
            raise DemoError(
                f"creating the instance failed ({created.status_code}): {_message(created)}"
            )
        return dict(created.json())

    async def watched(self, account: str) -> str | None:
        """Wait until the provider tells relaybox of the account's changes; what to say
        about it (Dropbox: nothing to wait for, its app's webhook is registered)."""
        return None

    async def remove(self, instance_id: int) -> None:
        answer = await self.platform("DELETE", f"/instances/{instance_id}")
        if not answer.is_success and answer.status_code != 404:
            raise DemoError(
                f"removing instance {instance_id} failed ({answer.status_code}): {_message(answer)}"
            )

    async def make_changes(self, account: str) -> None:
        one = f"/accounts/{account}"
        folder = f"/demo-{secrets.token_hex(2)}"
        hello, greeting = f"{folder}/hello.txt", f"{folder}/greeting.txt"
        steps: list[tuple[str, str, dict[str, Any]]] = [
            ("PUT", f"{one}/files", {"params": {"path": hello}, "content": b"hello"}),
            ("PUT", f"{one}/files", {"params": {"path": hello}, "content": b"hello, again"}),
            ("POST", f"{one}/move", {"json": {"from_path": hello, "to_path": greeting}}),
            ("DELETE", f"{one}/files", {"params": {"path": folder}}),
        ]
        for method, path, kwargs in steps:
            await asyncio.sleep(STEP_SECONDS)
            await self.control(method, path, **kwargs)


class DriveDemo(Demo):
    """The same tour against the Google Drive sandbox (`/sandbox/gdrive`): an OAuth client
    of the demo's own, Google's consent page, a push channel relaybox opens for the
    account, and the same changes made through the sandbox's control API."""

    element = "googledrive"
    name = "Google Drive"
    mounted_at = "/sandbox/gdrive"
    account_field = "permission_id"

    def __init__(
        self, http: httpx.AsyncClient, base: str, auth: str, sandbox_token: str | None
    ) -> None:
        super().__init__(http, base, auth, sandbox_token)
        self.channels_before: set[str] = set()

    async def register_app(self) -> tuple[str, str]:
        """An OAuth client of the demo's own; Google checks its redirect URI exactly."""
        client_id = f"relaybox-demo-{secrets.token_hex(4)}.apps.googleusercontent.com"
        secret = secrets.token_urlsafe(24)
        await self.control(
            "POST",
            "/apps",
            json={
                "client_id": client_id,
                "client_secret": secret,
                "name": "relaybox demo",
                "redirect_uris": [OAUTH_CALLBACK],
            },
        )
        return client_id, secret

    async def new_account(self) -> str:
        made = await self.control("POST", "/accounts", json={"email": DEMO_EMAIL})
        account = str(made["permission_id"])
        self.channels_before = {c["id"] for c in await self._channels(account)}
        return account

    def files_page(self, account: str) -> str:
        return f"{self.sandbox}/_sandbox/ui?account={account}"

    async def _channels(self, account: str) -> list[dict[str, Any]]:
        listed = (await self.control("GET", "/channels"))["channels"]
        return [c for c in listed if c["permission_id"] == account and c["state"] == "live"]

    async def watched(self, account: str) -> str | None:
        """Changes reach relaybox once it has opened its push channel for the account."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CHANNEL_WAIT
        while loop.time() < deadline:
            for channel in await self._channels(account):
                if channel["id"] not in self.channels_before:
                    return f"relaybox opened push channel {channel['id']} for the account"
            await asyncio.sleep(0.2)
        raise DemoError(
            f"relaybox opened no push channel for the account within {CHANNEL_WAIT:g} s: "
            "are its workers running (not --no-workers)?"
        )

    async def make_changes(self, account: str) -> None:
        files = f"/accounts/{account}/files"

        async def create(**fields: Any) -> str:
            return str((await self.control("POST", files, json=fields))["id"])

        await asyncio.sleep(STEP_SECONDS)
        folder = await create(name=f"demo-{secrets.token_hex(2)}", folder=True)
        hello = await create(name="hello.txt", parent=folder, content="hello")
        steps: list[tuple[str, str, dict[str, Any]]] = [
            ("PATCH", f"{files}/{hello}", {"json": {"content": "hello, again"}}),
            ("PATCH", f"{files}/{hello}", {"json": {"name": "greeting.txt"}}),
            ("DELETE", f"{files}/{folder}", {}),
        ]
        for method, path, kwargs in steps:
            await asyncio.sleep(STEP_SECONDS)
            await self.control(method, path, **kwargs)


DEMOS: dict[str, type[Demo]] = {"dropbox": Demo, "googledrive": DriveDemo}
"""The tour of each provider, by element key (`relaybox demo --element`)."""


class _Receiver(uvicorn.Server):
    """The callback receiver; the demo itself answers Ctrl+C and SIGTERM."""

    def capture_signals(self) -> Any:
        return nullcontext()


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise DemoError(
            f"the demo's callback receiver cannot listen on 127.0.0.1:{port} ({exc.strerror}): "
            "pass another --port"
        ) from None
    return sock


async def run_demo(
    *,
    base: str,
    auth: str,
    port: int,
    changes: bool,
    show: Callable[[str], None],
    sandbox_token: str | None = None,
    element: str = "dropbox",
) -> None:
    """Run until Ctrl+C or SIGTERM (or an error: `DemoError`), then delete the instance.
    `element` chooses the provider whose sandbox account is connected (`DEMOS`)."""
    if element not in DEMOS:
        raise DemoError(f"no demo for element {element!r} (known: {', '.join(DEMOS)})")
    signature_key = secrets.token_urlsafe(16)
    sock = _listen(port)
    server = _Receiver(
        uvicorn.Config(receiver(signature_key, show), log_level="warning", lifespan="off")
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main.cancel)
    instance: dict[str, Any] = {}
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            demo = DEMOS[element](http, base, auth, sandbox_token)
            try:
                app_key, app_secret = await demo.register_app()
                account = await demo.new_account()
                instance = await demo.connect(
                    app_key, app_secret, account, DEMO_CALLBACK.format(port=port), signature_key
                )
                show(
                    f"instance {instance['id']} connected to {demo.name} account {account}; "
                    f"events go to port {port}"
                )
                said = await demo.watched(account)
                if said:
                    show(said)
                show(
                    f"change files at {demo.files_page(account)} and watch them arrive here "
                    "(Ctrl+C stops and removes the instance)"
                )
                if changes:
                    await demo.make_changes(account)
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                pass
            finally:
                if instance:
                    await demo.remove(int(instance["id"]))
                    show(f"instance {instance['id']} removed")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        server.should_exit = True
        await serving
