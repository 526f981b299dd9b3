"""The Google Drive sandbox for tests: an app, an account that consented, and the official
client (`google-api-python-client` with `google-auth` credentials) pointed at it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from google.oauth2.credentials import Credentials
from google_auth_oauthlib.flow import Flow
from googleapiclient.discovery import build

from relaybox.app import create_app
from relaybox.config import Settings
from relaybox.gdrive_sandbox.app import create_app as create_gdrive
from tests.support.processes import Relaybox, relaybox_env
from tests.support.servers import CallbackReceiver, RequestLog, free_port, serving
from tests.support.stack import AUTH, OAUTH_CALLBACK, relaybox_settings

REDIRECT = "https://app.example.com/oauth/callback"
DRIVE_SCOPE = "https://www.googleapis.com/auth/drive"


@dataclass
class Grant:
    client_id: str
    client_secret: str
    permission_id: str
    email: str
    tokens: dict[str, Any]


def grant(http: httpx.Client, email: str) -> Grant:
    """Through the control API (`http` at the sandbox's base): register an app, let `email`
    consent to offline access; the code is exchanged by Google's own library."""
    app = http.post("/_sandbox/apps", json={"redirect_uris": [REDIRECT]}).json()
    account = http.post("/_sandbox/accounts", json={"email": email}).json()
    code = http.post(
        "/_sandbox/authorize",
        json={
            "client_id": app["client_id"],
            "permission_id": account["permission_id"],
            "redirect_uri": REDIRECT,
            "scope": DRIVE_SCOPE,
        },
    ).json()["code"]
    tokens = exchange(str(http.base_url).rstrip("/"), app["client_id"], app["client_secret"], code)
    return Grant(app["client_id"], app["client_secret"], account["permission_id"], email, tokens)


def exchange(base: str, client_id: str, client_secret: str, code: str) -> dict[str, Any]:
    """The code exchanged at the sandbox's token endpoint by Google's own OAuth library
    (`google-auth-oauthlib`'s `Flow`, as a web app's server does it); its token answer."""
    # oauthlib refuses a token endpoint over plain HTTP unless told it is a local test.
    os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    flow = Flow.from_client_config(
        {
            "web": {
                "client_id": client_id,
                "client_secret": client_secret,
                "auth_uri": f"{base}/o/oauth2/v2/auth",
                "token_uri": f"{base}/token",
                "redirect_uris": [REDIRECT],
            }
        },
        scopes=[DRIVE_SCOPE],
        redirect_uri=REDIRECT,
    )
    return dict(flow.fetch_token(code=code))


def drive_client(base: str, granted: Grant) -> tuple[Any, Credentials]:
    """The official Drive v3 client for `granted`, and its credentials (which refresh
    through the sandbox's token URI)."""
    credentials = Credentials(
        token=granted.tokens["access_token"],
        refresh_token=granted.tokens["refresh_token"],
        token_uri=f"{base}/token",
        client_id=granted.client_id,
        client_secret=granted.client_secret,
        expiry=datetime.now(UTC).replace(tzinfo=None)
        + timedelta(seconds=granted.tokens["expires_in"]),
    )
    client = build(
        "drive",
        "v3",
        credentials=credentials,
        static_discovery=True,
        client_options={"api_endpoint": f"{base}/drive/v3/"},
    )
    return client, credentials


# --- relaybox with the Google Drive sandbox ------------------------------------------

DRIVE_CLIENT_ID = "test-client.apps.googleusercontent.com"
DRIVE_CLIENT_SECRET = "test-client-secret"


class SkewedClock:
    """The system clock moved forward by `offset` seconds: relaybox reads it (`Clock`), the
    sandbox is moved by as much through its control API, so both see the same time."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset)


@dataclass
class DriveStack:
    relaybox: str
    sandbox: str
    receiver: CallbackReceiver
    callback_url: str
    http: httpx.AsyncClient
    settings: Settings
    sandbox_app: Any
    clock: SkewedClock
    sandbox_log: RequestLog

    @property
    def api(self) -> str:
        return f"{self.relaybox}/elements/api-v2"

    async def control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, f"{self.sandbox}/_sandbox{path}", **kwargs)
        assert response.status_code < 400, response.text
        return response.json()

    async def register_client(self) -> None:
        """relaybox's OAuth client, as the tests configure instances with it."""
        client = {"client_id": DRIVE_CLIENT_ID, "client_secret": DRIVE_CLIENT_SECRET}
        await self.control("POST", "/apps", json={**client, "redirect_uris": [OAUTH_CALLBACK]})

    async def new_account(self, email: str) -> str:
        return str(
            (await self.control("POST", "/accounts", json={"email": email}))["permission_id"]
        )

    async def code(self, permission_id: str) -> str:
        answer = await self.control(
            "POST",
            "/authorize",
            json={
                "client_id": DRIVE_CLIENT_ID,
                "permission_id": permission_id,
                "redirect_uri": OAUTH_CALLBACK,
                "scope": "https://www.googleapis.com/auth/drive.readonly",
            },
        )
        return str(answer["code"])

    async def connect(
        self, permission_id: str, name: str = "my drive", **config: Any
    ) -> dict[str, Any]:
        body = {
            "element": {"key": "googledrive"},
            "providerData": {"code": await self.code(permission_id)},
            "configuration": {
                "authentication.type": "oauth2",
                "oauth.api.key": DRIVE_CLIENT_ID,
                "oauth.api.secret": DRIVE_CLIENT_SECRET,
                "oauth.callback.url": OAUTH_CALLBACK,
                "event.notification.enabled": True,
                "event.notification.callback.url": self.callback_url,
                "event.notification.signature.key": "sig-key-123",
                "event.vendor.type": "webhooks",
                **config,
            },
            "name": name,
        }
        response = await self.http.post(f"{self.api}/instances", json=body, headers=AUTH)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def create(
        self,
        permission_id: str,
        name: str,
        *,
        parent: str | None = None,
        folder: bool = False,
        content: str = "",
    ) -> str:
        body: dict[str, Any] = {"name": name, "folder": folder}
        if parent:
            body["parent"] = parent
        if content:
            body["content"] = content
        made = await self.control("POST", f"/accounts/{permission_id}/files", json=body)
        return str(made["id"])

    async def update(self, permission_id: str, file_id: str, **fields: Any) -> None:
        await self.control("PATCH", f"/accounts/{permission_id}/files/{file_id}", json=fields)

    async def delete(self, permission_id: str, file_id: str) -> None:
        await self.control("DELETE", f"/accounts/{permission_id}/files/{file_id}")

    async def channels(self) -> list[dict[str, Any]]:
        return list((await self.control("GET", "/channels"))["channels"])

    async def advance(self, seconds: float) -> None:
        """Move relaybox's clock and the sandbox's by `seconds`."""
        self.clock.offset += seconds
        await self.control("POST", "/clock", json={"advance_seconds": seconds})


def drive_settings(
    tmp_path: Path, database_url: str, sandbox: str, public_url: str, **extra: Any
) -> Settings:
    return relaybox_settings(
        tmp_path,
        database_url,
        sandbox,
        public_url,
        **{
            "googledrive_api_url": sandbox,
            "googledrive_oauth_url": sandbox,
            "googledrive_accounts_url": sandbox,
            **extra,
        },
    )


@contextlib.asynccontextmanager
async def running_drive_stack(
    tmp_path: Path, database_url: str, *, push_delay: float = 0.05, **extra: Any
) -> AsyncIterator[DriveStack]:
    """The Drive sandbox, relaybox (its clock skewable) and a callback receiver, each on
    a free port; the sandbox knows relaybox's OAuth client."""
    receiver = CallbackReceiver()
    sandbox_app = create_gdrive(push_delay=push_delay)
    sandbox_log = RequestLog(sandbox_app)
    relaybox_port = free_port()
    relaybox_url = f"http://127.0.0.1:{relaybox_port}"
    clock = SkewedClock()
    async with serving(sandbox_log) as sandbox_url, serving(receiver.app()) as receiver_url:
        settings = drive_settings(tmp_path, database_url, sandbox_url, relaybox_url, **extra)
        async with (
            serving(create_app(settings, clock=clock), port=relaybox_port),
            httpx.AsyncClient(timeout=30) as http,
        ):
            stack = DriveStack(
                relaybox_url,
                sandbox_url,
                receiver,
                f"{receiver_url}/events",
                http,
                settings,
                sandbox_app,
                clock,
                sandbox_log,
            )
            await stack.register_client()
            yield stack


@contextlib.asynccontextmanager
async def drive_relaybox_process(
    tmp_path: Path, database_url: str, receiver: CallbackReceiver, *, push_delay: float = 0.1
) -> AsyncIterator[tuple[Relaybox, DriveStack]]:
    """The Drive sandbox and a callback receiver in the test, relaybox as a child process
    (`server.kill()` / `server.start()`)."""
    sandbox_app = create_gdrive(push_delay=push_delay)
    sandbox_log = RequestLog(sandbox_app)
    port = free_port()
    async with (
        serving(sandbox_log) as sandbox_url,
        serving(receiver.app()) as receiver_url,
        httpx.AsyncClient(timeout=30) as http,
    ):
        env = {
            **relaybox_env(tmp_path, database_url, port),
            **{f"RELAYBOX_GOOGLEDRIVE_{h}_URL": sandbox_url for h in ("API", "OAUTH", "ACCOUNTS")},
        }
        server = Relaybox(env, port, tmp_path / "relaybox.log")
        stack = DriveStack(
            f"http://127.0.0.1:{port}",
            sandbox_url,
            receiver,
            f"{receiver_url}/events",
            http,
            Settings(),
            sandbox_app,
            SkewedClock(),  # the child process reads the system clock
            sandbox_log,
        )
        await stack.register_client()
        await server.start()
        try:
            yield server, stack
        finally:
            server.stop()
