"""Connector instances: create (code exchange, account, index), read, update, delete.

The API layer parses and authorizes; this module talks to Dropbox and the database.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from relaybox.connectors.dropbox.client import TokenSet
from relaybox.core.clock import iso, iso_or_none, utcnow
from relaybox.core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    ProviderError,
    ProviderRefused,
)
from relaybox.core.instance_config import InstanceConfig, parse_config
from relaybox.crypto import new_secret, secret_hash
from relaybox.runtime import Runtime
from relaybox.services.callbacks import check_public
from relaybox.store import tables
from relaybox.store.db import transaction
from relaybox.store.index import replace_index
from relaybox.store.polls import schedule as schedule_polls

log = logging.getLogger(__name__)

ELEMENTS = frozenset({"dropbox"})
MAX_NAME = 200
MAX_TAGS = 50
MAX_TAG = 100


@dataclass(frozen=True)
class Listing:
    """The start of an account's index: entries read so far and the cursor after them."""

    cursor: str
    entries: list[dict[str, Any]]
    complete: bool


@dataclass(frozen=True)
class Credentials:
    """An instance's decrypted secrets."""

    config: InstanceConfig
    access_token: str | None
    refresh_token: str | None


@dataclass(frozen=True)
class InstanceRequest:
    """A create or update request, checked for shape (not yet against Dropbox)."""

    name: str | None
    tags: list[str] | None
    code: str | None
    element_key: str | None
    configuration: Mapping[str, Any] | None


def parse_request(body: Any, *, creating: bool) -> InstanceRequest:
    if not isinstance(body, Mapping):
        raise InvalidInput("the request body must be a JSON object", field="body")
    element_key = None
    if "element" in body or creating:
        element = body.get("element")
        key = element.get("key") if isinstance(element, Mapping) else None
        if not isinstance(key, str) or key not in ELEMENTS:
            raise InvalidInput(
                f"element.key must be one of: {', '.join(sorted(ELEMENTS))}", field="element.key"
            )
        element_key = key
    name = body.get("name")
    if name is not None or creating:
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput("name is required and must be a non-empty string", field="name")
        if len(name) > MAX_NAME:
            raise InvalidInput(f"name is longer than {MAX_NAME} characters", field="name")
        name = name.strip()
    tags = body.get("tags")
    if tags is not None:
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise InvalidInput("tags must be a list of strings", field="tags")
        if len(tags) > MAX_TAGS or any(len(t) > MAX_TAG for t in tags):
            raise InvalidInput(
                f"tags: at most {MAX_TAGS} tags of at most {MAX_TAG} characters", field="tags"
            )
    code = None
    provider = body.get("providerData")
    if provider is not None:
        if not isinstance(provider, Mapping):
            raise InvalidInput("providerData must be an object", field="providerData")
        code = provider.get("code")
        if code is not None and (not isinstance(code, str) or not code or len(code) > 4096):
            raise InvalidInput(
                "providerData.code must be a non-empty string", field="providerData.code"
            )
    configuration = body.get("configuration")
    if configuration is not None and not isinstance(configuration, Mapping):
        raise InvalidInput("configuration must be an object", field="configuration")
    return InstanceRequest(name, tags, code, element_key, configuration)


class InstanceService:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    # --- reading -------------------------------------------------------------------

    async def get(self, session: AsyncSession, org_id: int, instance_id: int) -> tables.Instance:
        row = await session.get(tables.Instance, instance_id)
        if row is None or row.org_id != org_id:
            raise NotFound(f"no instance {instance_id}")
        return row

    async def all(self, session: AsyncSession, org_id: int) -> Sequence[tables.Instance]:
        query = select(tables.Instance).where(tables.Instance.org_id == org_id)
        return (await session.scalars(query.order_by(tables.Instance.id))).all()

    def credentials(self, row: tables.Instance) -> Credentials:
        return self.unseal(row.secrets_enc, row.configuration)

    def unseal(self, secrets_enc: str, configuration: dict[str, Any]) -> Credentials:
        """The credentials of an instance from its stored configuration and sealed secrets."""
        secrets = self.runtime.box.decrypt_json(secrets_enc)
        config = parse_config(configuration, require_complete=False)
        config = replace(
            config,
            app_secret=secrets.get("oauth.api.secret"),
            signature_key=secrets.get("event.notification.signature.key"),
            access_token=secrets.get("dropbox.access_token"),
        )
        return Credentials(config, secrets.get("access_token"), secrets.get("refresh_token"))

    def describe(self, row: tables.Instance) -> dict[str, Any]:
        """The instance as the API shows it: every secret masked."""
        config = self.credentials(row).config
        answer: dict[str, Any] = {
            "id": row.id,
            "name": row.name,
            "token": self.runtime.box.decrypt(row.token_enc),
            "element": {"key": row.element_key},
            "tags": list(row.tags or []),
            "valid": row.valid,
            "disabled": row.disabled,
            "eventsEnabled": row.events_enabled,
            "indexing": row.indexing,
            "providerData": {"accountId": row.account_id},
            "configuration": config.public(),
            "createdDate": iso(row.created_at),
            "updatedDate": iso(row.updated_at),
        }
        if row.events_enabled:
            answer["eventSource"] = row.vendor_type
            if row.vendor_type == "polling":
                answer["lastPollDate"] = iso_or_none(row.last_poll_at)
                answer["nextPollDate"] = iso_or_none(row.next_poll_at)
        if row.status_message:
            answer["statusMessage"] = row.status_message
        return answer

    # --- writing -------------------------------------------------------------------

    async def create(self, org_id: int, body: Any) -> tables.Instance:
        request = parse_request(body, creating=True)
        config = parse_config(request.configuration)
        await self._check_callback(config)
        async with transaction(self.runtime.sessions) as session:
            await self._check_name_free(session, org_id, request.name or "", None)
        tokens = await self._authenticate(config, request.code)
        account = await self._account(tokens.access_token)
        listing = await self._index(tokens.access_token) if config.events_enabled else None
        token = new_secret()
        row = tables.Instance(
            org_id=org_id,
            name=request.name or "",
            element_key=request.element_key or "dropbox",
            token_hash=secret_hash(token),
            token_enc=self.runtime.box.encrypt(token),
            configuration=config.stored(),
            secrets_enc=self._seal(config, tokens),
            tags=request.tags or [],
            app_key=config.app_key,
            account_id=account,
            events_enabled=config.events_enabled,
            vendor_type=config.vendor_type,
            ordered=config.ordered,
            cursor=listing.cursor if listing else None,
            indexing=bool(listing and not listing.complete),
            sync_requested=1 if listing and not listing.complete else 0,
            access_token_expires_at=tokens.expires_at,
        )
        try:
            async with transaction(self.runtime.sessions) as session:
                session.add(row)
                await session.flush()
                await replace_index(session, row.id, listing.entries if listing else [])
                schedule_polls(row, self.runtime.settings.min_poll_interval)
        except IntegrityError:
            raise Conflict(f"an instance named {request.name!r} already exists") from None
        self.runtime.wakeups.sources.set()
        log.info("created instance %s (%s) for account %s", row.id, row.element_key, account)
        return row

    async def update(
        self, org_id: int, instance_id: int, body: Any, *, reauth: bool
    ) -> tables.Instance:
        request = parse_request(body, creating=False)
        async with transaction(self.runtime.sessions) as session:
            row = await self.get(session, org_id, instance_id)
            creds = self.credentials(row)
            if request.name is not None:
                await self._check_name_free(session, org_id, request.name, row.id)
        config = parse_config(request.configuration, base=creds.config)
        if request.configuration and "event.notification.callback.url" in request.configuration:
            await self._check_callback(config)
        new_tokens: TokenSet | None = None
        if reauth:
            if config.auth_type == "oauth2" and not request.code:
                raise InvalidInput(
                    "providerData.code is required to re-authenticate", field="providerData.code"
                )
            new_tokens = await self._authenticate(config, request.code)
            account = await self._account(new_tokens.access_token)
            if row.account_id and account != row.account_id:
                raise InvalidInput(
                    "the code belongs to another Dropbox account than this instance's",
                    field="providerData.code",
                )
        elif config.auth_type == "apiKey" and config.access_token != creds.config.access_token:
            new_tokens = TokenSet(config.access_token or "", None, None, row.account_id)
        # Enabling events starts from now, as on create: a fresh listing and its cursor.
        enabling = config.events_enabled and (not row.events_enabled or not row.cursor)
        fresh: Listing | None = None
        if enabling:
            access = (
                new_tokens.access_token
                if new_tokens
                else (creds.access_token or config.access_token or "")
            )
            fresh = await self._index(access)
        async with transaction(self.runtime.sessions) as session:
            row = await self.get(session, org_id, instance_id)
            # Re-read the stored tokens: a pass may have refreshed them meanwhile.
            current = self.credentials(row)
            tokens = new_tokens or TokenSet(
                current.access_token or "", current.refresh_token, None, row.account_id
            )
            if request.name is not None:
                row.name = request.name
            if request.tags is not None:
                row.tags = request.tags
            row.configuration = config.stored()
            row.secrets_enc = self._seal(config, tokens)
            row.app_key = config.app_key
            row.events_enabled = config.events_enabled
            row.vendor_type = config.vendor_type
            row.ordered = config.ordered
            if new_tokens is not None:
                row.access_token_expires_at = new_tokens.expires_at
            if reauth:
                row.valid, row.status_message = True, None
            if fresh is not None:
                row.cursor = fresh.cursor
                row.indexing = not fresh.complete
                if row.indexing:
                    row.sync_requested += 1
                await replace_index(session, row.id, fresh.entries)
            # Switching sources keeps the cursor: the next pass, whoever asks for it,
            # starts where the last one ended. Only the polling schedule changes.
            schedule_polls(row, self.runtime.settings.min_poll_interval)
            row.updated_at = utcnow()
        self.runtime.wakeups.changes.set()
        self.runtime.wakeups.sources.set()
        return row

    async def delete(self, org_id: int, instance_id: int) -> None:
        async with transaction(self.runtime.sessions) as session:
            row = await self.get(session, org_id, instance_id)
            creds = self.credentials(row)
        token = creds.access_token or creds.config.access_token
        if token:
            try:
                await self.runtime.dropbox.revoke(token)
            except ProviderError as exc:
                log.info("revoking the token of instance %s failed: %s", instance_id, exc)
        async with transaction(self.runtime.sessions) as session:
            await session.execute(delete(tables.Instance).where(tables.Instance.id == instance_id))
        self.runtime.wakeups.sources.set()

    # --- helpers -------------------------------------------------------------------

    async def _check_callback(self, config: InstanceConfig) -> None:
        if config.callback_url:
            await check_public(
                config.callback_url, allow_private=self.runtime.settings.allow_private_callbacks
            )

    async def _check_name_free(
        self, session: AsyncSession, org_id: int, name: str, own_id: int | None
    ) -> None:
        query = select(tables.Instance.id).where(
            tables.Instance.org_id == org_id, tables.Instance.name == name
        )
        found = await session.scalar(query)
        if found is not None and found != own_id:
            raise Conflict(f"an instance named {name!r} already exists")

    async def _authenticate(self, config: InstanceConfig, code: str | None) -> TokenSet:
        if config.auth_type == "apiKey":
            return TokenSet(config.access_token or "", None, None, None)
        if not code:
            raise InvalidInput(
                "providerData.code is required for oauth2", field="providerData.code"
            )
        try:
            return await self.runtime.dropbox.exchange_code(
                code=code,
                app_key=config.app_key or "",
                app_secret=config.app_secret or "",
                redirect_uri=config.oauth_callback_url,
            )
        except ProviderError as exc:
            raise ProviderRefused(
                f"providerData.code: Dropbox refused the code exchange: {exc.message}",
                field="providerData.code",
                provider_message=exc.provider_message,
            ) from None

    async def _account(self, access_token: str) -> str:
        try:
            account = await self.runtime.dropbox.get_current_account(access_token)
        except ProviderError as exc:
            raise ProviderRefused(
                f"Dropbox refused the account lookup: {exc.message}",
                field="providerData.code",
                provider_message=exc.provider_message,
            ) from None
        return str(account["account_id"])

    async def _index(self, access_token: str) -> Listing:
        """List the account; the listing's own cursor is where events start.

        A listing's cursor stands at the moment the listing began, so what changes while
        it is read comes afterwards as events: nothing is missed, nothing listed is
        reported as new. Past `index_foreground_limit` entries the rest of the listing is
        read by the workers (`indexing: true`), continuing from the page cursor.
        """
        client = self.runtime.dropbox
        limit = self.runtime.settings.index_foreground_limit
        try:
            page = await client.list_folder(access_token)
            entries = list(page["entries"])
            while page.get("has_more") and len(entries) < limit:
                page = await client.list_folder_continue(access_token, page["cursor"])
                entries.extend(page["entries"])
        except ProviderError as exc:
            raise ProviderRefused(
                f"Dropbox refused listing the account: {exc.message}",
                field="providerData.code",
                provider_message=exc.provider_message,
            ) from None
        return Listing(str(page["cursor"]), entries, complete=not page.get("has_more"))

    def _seal(self, config: InstanceConfig, tokens: TokenSet) -> str:
        secrets: dict[str, Any] = dict(config.secrets())
        if config.auth_type == "oauth2":
            secrets["access_token"] = tokens.access_token
            if tokens.refresh_token:
                secrets["refresh_token"] = tokens.refresh_token
        return self.runtime.box.encrypt_json(secrets)
