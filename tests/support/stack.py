"""A whole relaybox deployment for integration tests: sandbox, relaybox, callback receiver."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from cryptography.fernet import Fernet
from starlette.types import ASGIApp

from relaybox.app import create_app
from relaybox.config import Settings
from relaybox.sandbox.app import create_app as create_sandbox
from tests.support.servers import CallbackReceiver, RequestLog, free_port, serving

APP_KEY = "test-app-key"
APP_SECRET = "test-app-secret"
USER_SECRET = "test-user-Kq7wZ2mX9pL4vR8sT3nB6yC1"
ORG_SECRET = "test-org-Hd5jF0gA2kM8qW4eU7rY9tP3"
AUTH = {"Authorization": f"User {USER_SECRET}, Organization {ORG_SECRET}"}
OAUTH_CALLBACK = "https://app.example.com/auth"


@dataclass
class Stack:
    relaybox: str
    sandbox: str
    receiver: CallbackReceiver
    callback_url: str
    http: httpx.AsyncClient
    settings: Settings
    sandbox_app: Any
    sandbox_log: RequestLog | None = None

    @property
    def api(self) -> str:
        return f"{self.relaybox}/elements/api-v2"

    async def control(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self.http.request(method, f"{self.sandbox}/_sandbox{path}", **kwargs)
        response.raise_for_status()
        return response

    async def deliveries(self, instance_id: int) -> list[dict[str, Any]]:
        answer = await self.http.get(f"{self.api}/instances/{instance_id}/deliveries", headers=AUTH)
        assert answer.status_code == 200, answer.text
        return list(answer.json())

    async def new_account(self, email: str) -> str:
        answer = await self.control("POST", "/accounts", json={"email": email})
        return str(answer.json()["account_id"])

    async def upload(self, account: str, path: str, content: bytes) -> None:
        await self.control(
            "PUT", f"/accounts/{account}/files", params={"path": path}, content=content
        )

    async def folder(self, account: str, path: str) -> None:
        await self.control("POST", f"/accounts/{account}/folders", json={"path": path})

    async def move(self, account: str, from_path: str, to_path: str) -> None:
        await self.control(
            "POST", f"/accounts/{account}/move", json={"from_path": from_path, "to_path": to_path}
        )

    async def remove(self, account: str, path: str) -> None:
        await self.control("DELETE", f"/accounts/{account}/files", params={"path": path})

    async def authorize_in_browser(self, account: str, state: str = "s-123") -> str:
        """Do what a user's browser does: open the OAuth URL, press Allow, read the code."""
        answer = await self.http.get(
            f"{self.api}/elements/dropbox/oauth/url",
            params={
                "apiKey": APP_KEY,
                "apiSecret": APP_SECRET,
                "callbackUrl": OAUTH_CALLBACK,
                "state": state,
            },
            headers=AUTH,
        )
        answer.raise_for_status()
        oauth_url = answer.json()["oauthUrl"]
        page = await self.http.get(oauth_url)
        page.raise_for_status()
        form = _form_fields(page.text)
        form.update({"decision": "allow", "account_id": account})
        action = urlsplit(oauth_url)._replace(query="").geturl()
        decision = await self.http.post(action, data=form)
        assert decision.status_code in (302, 303), decision.text
        location = urlsplit(decision.headers["location"])
        assert location.geturl().startswith(OAUTH_CALLBACK)
        query = parse_qs(location.query)
        assert query["state"] == [state]
        return query["code"][0]

    async def connect(
        self,
        account: str,
        name: str = "my dropbox",
        *,
        auth: dict[str, str] | None = None,
        **config: Any,
    ) -> dict[str, Any]:
        """Connect `account` as organization `auth` (default: the bootstrap one)."""
        code = await self.authorize_in_browser(account)
        configuration = {
            "authentication.type": "oauth2",
            "oauth.api.key": APP_KEY,
            "oauth.api.secret": APP_SECRET,
            "oauth.callback.url": OAUTH_CALLBACK,
            "event.notification.enabled": True,
            "event.notification.callback.url": self.callback_url,
            "event.notification.signature.key": "sig-key-123",
            "event.vendor.type": "webhooks",
            **config,
        }
        body = {
            "element": {"key": "dropbox"},
            "providerData": {"code": code},
            "configuration": configuration,
            "tags": ["team-a"],
            "name": name,
        }
        response = await self.http.post(f"{self.api}/instances", json=body, headers=auth or AUTH)
        assert response.status_code == 200, response.text
        return dict(response.json())


class _Inputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "input" and values.get("type") == "hidden" and values.get("name"):
            self.fields[str(values["name"])] = values.get("value") or ""


def _form_fields(html: str) -> dict[str, str]:
    parser = _Inputs()
    parser.feed(html)
    return parser.fields


def relaybox_settings(
    tmp_path: Path, database_url: str, sandbox: str, public_url: str, **extra: Any
) -> Settings:
    values: dict[str, Any] = dict(
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key=Fernet.generate_key().decode(),
        public_url=public_url,
        bootstrap_user_secret=USER_SECRET,
        bootstrap_org_secret=ORG_SECRET,
        dropbox_api_url=sandbox,
        dropbox_content_url=sandbox,
        dropbox_notify_url=sandbox,
        dropbox_www_url=sandbox,
        allow_private_callbacks=True,
        worker_poll_seconds=0.2,
    )
    return Settings(**{**values, **extra})


@contextlib.asynccontextmanager
async def running_stack(
    tmp_path: Path,
    database_url: str,
    *,
    webhook_delay: float = 0.05,
    wrap_sandbox: Callable[[ASGIApp], ASGIApp] | None = None,
    **extra: Any,
) -> AsyncIterator[Stack]:
    """Sandbox, relaybox and a callback receiver on free ports; `wrap_sandbox` may put a
    middleware in front of the sandbox (to act when relaybox calls a route)."""
    receiver = CallbackReceiver()
    sandbox_app = create_sandbox(webhook_delay=webhook_delay)
    sandbox_log = RequestLog(wrap_sandbox(sandbox_app) if wrap_sandbox else sandbox_app)
    relaybox_port = free_port()
    relaybox_url = f"http://127.0.0.1:{relaybox_port}"
    async with serving(sandbox_log) as sandbox_url, serving(receiver.app()) as receiver_url:
        settings = relaybox_settings(tmp_path, database_url, sandbox_url, relaybox_url, **extra)
        async with (
            serving(create_app(settings), port=relaybox_port),
            httpx.AsyncClient(timeout=30) as http,
        ):
            stack = Stack(
                relaybox_url,
                sandbox_url,
                receiver,
                f"{receiver_url}/events",
                http,
                settings,
                sandbox_app,
                sandbox_log,
            )
            await stack.control(
                "POST",
                "/apps",
                json={
                    "app_key": APP_KEY,
                    "app_secret": APP_SECRET,
                    "webhook_uri": settings.dropbox_webhook_uri,
                },
            )
            yield stack


def strip_dates(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "date"} for e in events]


ID_PATTERN = re.compile(r"^id:")
