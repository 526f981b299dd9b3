"""Many relaybox instances at once: real sandbox accounts, rows written straight to the database.

Creating an instance through ``POST /instances`` exchanges the code, reads the account and
indexes it, one request at a time: thousands take minutes. ``seed_instances`` does the
same Dropbox-side work (a sandbox account, a real authorization-code exchange, a real
cursor from ``files/list_folder``) concurrently and inserts the rows in one transaction,
with the secrets sealed by ``InstanceService._seal`` and the polling schedule set by the
store's own function, so each row is what ``POST /instances`` writes for an empty account
(whose index is empty).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select

from relaybox.config import Settings
from relaybox.connectors.dropbox.client import DropboxClient, DropboxURLs
from relaybox.core.instance_config import parse_config
from relaybox.crypto import new_secret, secret_hash
from relaybox.runtime import Runtime
from relaybox.services.instances import InstanceService
from relaybox.store import tables
from relaybox.store.db import transaction
from relaybox.store.polls import schedule as schedule_polls

REDIRECT = "https://app.example.com/auth"


@dataclass(frozen=True)
class Account:
    account_id: str
    uid: int


class SandboxControl:
    """The sandbox's control API (``/_sandbox``)."""

    def __init__(self, http: httpx.AsyncClient, sandbox: str) -> None:
        self.http, self.sandbox = http, sandbox

    async def control(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = await self.http.request(method, f"{self.sandbox}/_sandbox{path}", **kwargs)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    async def register_app(self, app_key: str, app_secret: str, webhook_uri: str | None) -> None:
        body = {"app_key": app_key, "app_secret": app_secret}
        if webhook_uri:
            body["webhook_uri"] = webhook_uri
        await self.control("POST", "/apps", json=body)

    async def new_account(self, email: str) -> Account:
        data = await self.control("POST", "/accounts", json={"email": email})
        return Account(str(data["account_id"]), int(data["uid"]))

    async def authorize(self, app_key: str, account_id: str, redirect: str = REDIRECT) -> str:
        body = {"app_key": app_key, "account_id": account_id, "redirect_uri": redirect}
        return str((await self.control("POST", "/authorize", json=body))["code"])

    async def new_accounts(self, prefix: str, count: int, concurrency: int = 32) -> list[Account]:
        gate = asyncio.Semaphore(concurrency)

        async def one(n: int) -> Account:
            async with gate:
                return await self.new_account(f"{prefix}-{n}@example.com")

        return list(await asyncio.gather(*(one(n) for n in range(count))))


async def seed_instances(
    settings: Settings,
    sandbox: SandboxControl,
    accounts: list[Account],
    *,
    app_key: str,
    app_secret: str,
    callback: str,
    vendor_type: str = "webhooks",
    signature_key: str | None = None,
    name_prefix: str = "seeded",
    concurrency: int = 32,
) -> None:
    """Insert one instance per account (all of the first organization), in one transaction.

    `settings` must be the relaybox server's (same database and secret key); its
    migrations must have run (start the server first).
    """
    runtime = await Runtime.start(settings, migrate=False)
    try:
        client = DropboxClient(
            DropboxURLs(api=sandbox.sandbox, notify=sandbox.sandbox), sandbox.http
        )
        service = InstanceService(runtime)
        raw: dict[str, Any] = {
            "oauth.api.key": app_key,
            "oauth.api.secret": app_secret,
            "oauth.callback.url": REDIRECT,
            "event.notification.enabled": True,
            "event.notification.callback.url": callback,
            "event.vendor.type": vendor_type,
        }
        if signature_key:
            raw["event.notification.signature.key"] = signature_key
        config = parse_config(raw)
        async with transaction(runtime.sessions) as session:
            org_id = (await session.scalars(select(tables.Organization.id))).first()
        gate = asyncio.Semaphore(concurrency)

        async def one(n: int, account: Account) -> tables.Instance:
            async with gate:
                code = await sandbox.authorize(app_key, account.account_id)
                tokens = await client.exchange_code(
                    code=code, app_key=app_key, app_secret=app_secret, redirect_uri=REDIRECT
                )
                cursor = (await client.list_folder(tokens.access_token))["cursor"]
            token = new_secret()
            row = tables.Instance(
                org_id=org_id,
                name=f"{name_prefix}-{n}",
                element_key="dropbox",
                token_hash=secret_hash(token),
                token_enc=runtime.box.encrypt(token),
                configuration=config.stored(),
                secrets_enc=service._seal(config, tokens),
                tags=[],
                app_key=app_key,
                account_id=account.account_id,
                events_enabled=True,
                vendor_type=config.vendor_type,
                ordered=config.ordered,
                cursor=str(cursor),
                access_token_expires_at=tokens.expires_at,
            )
            schedule_polls(row, settings.min_poll_interval)
            return row

        rows = await asyncio.gather(*(one(n, a) for n, a in enumerate(accounts)))
        async with transaction(runtime.sessions) as session:
            session.add_all(rows)
    finally:
        await runtime.close()
