"""Connector instances: create (code exchange, account, index), read, update, delete.

The API layer parses and authorizes; this module talks to the provider (through its
connector, connectors/base.py) and the database.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from relaybox.connectors.base import Account as ProviderAccount
from relaybox.connectors.base import Channel, ChannelPush, Connector, Tokens
from relaybox.connectors.paging import Listing, list_account, with_parents
from relaybox.core.clock import iso, iso_or_none, utcnow
from relaybox.core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    ProviderError,
    ProviderRefused,
)
from relaybox.core.instance_config import (
    KNOWN_KEYS,
    InstanceConfig,
    config_items,
    parse_config,
)
from relaybox.core.instance_request import ELEMENT_INFO, ELEMENTS, MAX_NAME, parse_request
from relaybox.crypto import new_secret, secret_hash
from relaybox.runtime import Runtime
from relaybox.services.access import AccessTokens, Credentials
from relaybox.services.callbacks import check_public
from relaybox.store import channels as stored_channels
from relaybox.store import instances as stored_instances
from relaybox.store import tables
from relaybox.store.db import transaction
from relaybox.store.index import replace_index
from relaybox.store.polls import schedule as schedule_polls

log = logging.getLogger(__name__)

__all__ = ["ELEMENTS", "MAX_NAME", "InstanceService"]


@dataclass(frozen=True)
class Account:
    """The provider account behind an instance, as its connector tells it (bounded)."""

    id: str
    email: str | None
    name: str | None

    @classmethod
    def of(cls, account: ProviderAccount) -> Account:
        email, name = account.email, account.display_name
        return cls(account.account_id, email[:320] if email else None, name[:200] if name else None)


class InstanceService:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    # --- reading -------------------------------------------------------------------

    async def get(
        self, session: AsyncSession, org_id: int, instance_id: int, *, lock: bool = False
    ) -> tables.Instance:
        """The organization's instance (`lock`: its row locked until the transaction ends,
        on PostgreSQL)."""
        row = await session.get(tables.Instance, instance_id, with_for_update=lock or None)
        if row is None or row.org_id != org_id:
            raise NotFound(f"no instance {instance_id}")
        return row

    async def all(
        self, session: AsyncSession, org_id: int, tags: Sequence[str] = ()
    ) -> Sequence[tables.Instance]:
        return await stored_instances.of_org(session, org_id, tags=tags)

    async def answers(
        self, session: AsyncSession, rows: Sequence[tables.Instance]
    ) -> list[dict[str, Any]]:
        """The API's answer for each row, with the user behind it (one query for all)."""
        users = await stored_instances.owners(session, rows)
        return [self.describe(row, users.get(row.id)) for row in rows]

    async def answer(self, session: AsyncSession, row: tables.Instance) -> dict[str, Any]:
        return (await self.answers(session, [row]))[0]

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

    def describe(self, row: tables.Instance, user: tables.User | None = None) -> dict[str, Any]:
        """The instance as the API shows it: every secret masked. The anchor's `user` has
        names; relaybox's users have an email only, so `firstName`/`lastName` are empty."""
        config = self.credentials(row).config
        number, name = ELEMENT_INFO.get(row.element_key, (0, row.element_key))
        answer: dict[str, Any] = {
            "id": row.id,
            "name": row.name,
            "token": self.runtime.box.decrypt(row.token_enc),
            "element": {"id": number, "key": row.element_key, "name": name},
            "elementId": number,
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
        if user is not None:
            answer["user"] = {
                "id": user.id,
                "emailAddress": user.email,
                "firstName": "",
                "lastName": "",
            }
        return answer

    def configuration(self, row: tables.Instance) -> list[dict[str, Any]]:
        """`GET /instances/{id}/configuration`: `{id, key, name, propertyValue}` items."""
        return config_items(self.credentials(row).config)

    def configuration_item(self, row: tables.Instance, item_id: int) -> dict[str, Any]:
        for item in self.configuration(row):
            if item["id"] == item_id:
                return item
        raise NotFound(f"no configuration {item_id} in instance {row.id}")

    # --- writing -------------------------------------------------------------------

    async def create(
        self, org_id: int, body: Any, *, user_id: int | None = None
    ) -> tables.Instance:
        request = parse_request(body, creating=True)
        config = parse_config(request.configuration)
        await self._check_callback(config)
        connector = self.runtime.connector(request.element_key or "dropbox")
        _check_source(connector, config)
        tokens = await self._authenticate(connector, config, request.code)
        account = await self._account(connector, tokens.access_token)
        listing = (
            await self._index(connector, tokens.access_token, account.id)
            if config.events_on
            else None
        )
        token = new_secret()
        row = tables.Instance(
            org_id=org_id,
            user_id=user_id,
            name=request.name or "",
            element_key=request.element_key or "dropbox",
            token_hash=secret_hash(token),
            token_enc=self.runtime.box.encrypt(token),
            configuration=config.stored(),
            secrets_enc=self._seal(config, tokens),
            tags=request.tags or [],
            app_key=config.app_key,
            account_id=account.id,
            account_email=account.email,
            account_name=account.name,
            events_enabled=config.events_on,
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
                await replace_index(session, row.id, listing.changes if listing else [])
                schedule_polls(row, self.runtime.settings.min_poll_interval)
        except IntegrityError:  # a token hash met twice: a 256-bit coincidence
            raise Conflict("the instance could not be stored; try again") from None
        self.runtime.wakeups.sources.set()
        log.info("created instance %s (%s) for account %s", row.id, row.element_key, account.id)
        return row

    async def update(
        self,
        org_id: int,
        instance_id: int,
        body: Any,
        *,
        reauth: bool,
        one_key: bool = False,
    ) -> tables.Instance:
        """PATCH, PUT (`reauth`: a code is required for oauth2) and one configuration key
        (`one_key`: events may be enabled before their callback URL is named). Any of them
        with `providerData.code` re-provisions: the code is exchanged for new tokens, which
        replace the old, and the instance is valid again."""
        request = parse_request(body, creating=False)
        async with transaction(self.runtime.sessions) as session:
            row = await self.get(session, org_id, instance_id)
            creds = self.credentials(row)
        connector = self.runtime.connector(row.element_key)
        touched = set(request.configuration or ())
        config = parse_config(
            request.configuration,
            base=creds.config,
            events_need_callback=not one_key
            and bool(touched & {"event.notification.enabled", "event.notification.callback.url"}),
        )
        if "event.notification.callback.url" in touched:
            await self._check_callback(config)
        _check_source(connector, config)
        new_tokens: Tokens | None = None
        account: Account | None = None
        reauth = reauth or request.code is not None
        if reauth:
            if config.auth_type == "oauth2" and not request.code:
                raise InvalidInput(
                    "providerData.code is required to re-authenticate", field="providerData.code"
                )
            new_tokens = await self._authenticate(connector, config, request.code)
            account = await self._account(connector, new_tokens.access_token)
            if row.account_id and account.id != row.account_id:
                raise InvalidInput(
                    f"the code belongs to another {connector.name} account than this instance's",
                    field="providerData.code",
                )
        elif config.auth_type == "apiKey" and config.access_token != creds.config.access_token:
            new_tokens = Tokens(config.access_token or "", None, None, row.account_id)
        # Enabling events starts from now, as on create: a fresh listing and its cursor.
        enabling = config.events_on and (not row.events_enabled or not row.cursor)
        fresh: Listing | None = None
        if enabling:
            access = (
                new_tokens.access_token
                if new_tokens
                else (creds.access_token or config.access_token or "")
            )
            fresh = await self._index(connector, access, account.id if account else row.account_id)
        async with transaction(self.runtime.sessions) as session:
            # Re-read the stored tokens, locked: a pass may have refreshed them meanwhile,
            # and one refreshing now waits rather than be overwritten.
            row = await self.get(session, org_id, instance_id, lock=True)
            current = self.credentials(row)
            tokens = new_tokens or Tokens(
                current.access_token or "", current.refresh_token, None, row.account_id
            )
            if request.name is not None:
                row.name = request.name
            if request.tags is not None:
                row.tags = request.tags
            row.configuration = config.stored()
            row.secrets_enc = self._seal(config, tokens)
            row.app_key = config.app_key
            row.events_enabled = config.events_on
            row.vendor_type = config.vendor_type
            row.ordered = config.ordered
            if new_tokens is not None:
                row.access_token_expires_at = new_tokens.expires_at
            if reauth:
                row.valid, row.status_message = True, None
            if account is not None:
                row.account_email, row.account_name = account.email, account.name
            if fresh is not None:
                row.cursor = fresh.cursor
                row.indexing = not fresh.complete
                if row.indexing:
                    row.sync_requested += 1
                await replace_index(session, row.id, fresh.changes)
            # Switching sources keeps the cursor: the next pass, whoever asks for it,
            # starts where the last one ended. Only the polling schedule changes.
            schedule_polls(row, self.runtime.settings.min_poll_interval)
            row.updated_at = utcnow()
        self.runtime.wakeups.changes.set()
        self.runtime.wakeups.sources.set()
        return row

    async def set_property(
        self, org_id: int, instance_id: int, item_id: int, body: Any
    ) -> dict[str, Any]:
        """`PATCH /instances/{id}/configuration/{configId}` with `propertyValue`: the key's
        new value, through `update` like any other configuration change."""
        async with transaction(self.runtime.sessions) as session:
            item = self.configuration_item(await self.get(session, org_id, instance_id), item_id)
        if not isinstance(body, Mapping) or "propertyValue" not in body:
            raise InvalidInput("propertyValue is required", field="propertyValue")
        if body.get("key", item["key"]) != item["key"]:
            raise InvalidInput(
                f"configuration {item_id} is {item['key']!r}, not {body.get('key')!r}",
                field="key",
            )
        value = body["propertyValue"]
        if value is None and item["key"] in KNOWN_KEYS:
            raise InvalidInput(f"{item['key']}: propertyValue must not be null", field=item["key"])
        row = await self.update(
            org_id, instance_id, {"configuration": {item["key"]: value}}, reauth=False, one_key=True
        )
        for now in self.configuration(row):
            if now["key"] == item["key"]:
                return now
        return {**item, "propertyValue": None}  # a key of the client's own, removed by null

    async def set_enabled(self, org_id: int, instance_id: int, enabled: bool) -> tables.Instance:
        """`PUT`/`DELETE /instances/{id}/enabled`. A disabled instance gets no passes
        (`store/passes.fetchable`) and no deliveries (`pipeline/delivery`); its cursor and
        pass requests are kept, so what changed meanwhile arrives once it is enabled again."""
        async with transaction(self.runtime.sessions) as session:
            row = await self.get(session, org_id, instance_id)
            if row.disabled == (not enabled):
                return row
            row.disabled = not enabled
            row.updated_at = utcnow()
        self.runtime.wakeups.changes.set()
        self.runtime.wakeups.delivery.set()
        self.runtime.wakeups.sources.set()
        return row

    async def delete(self, org_id: int, instance_id: int) -> None:
        async with transaction(self.runtime.sessions) as session:
            row = await self.get(session, org_id, instance_id)
            creds = self.credentials(row)
        connector = self.runtime.connector(row.element_key)
        token = await self._last_token(instance_id, connector, creds, row.access_token_expires_at)
        if token:
            await self._stop_channels(instance_id, connector, token)
            try:
                await connector.revoke(token)
            except ProviderError as exc:
                log.info("revoking the token of instance %s failed: %s", instance_id, exc)
        async with transaction(self.runtime.sessions) as session:
            await session.execute(delete(tables.Instance).where(tables.Instance.id == instance_id))
        self.runtime.wakeups.sources.set()

    # --- helpers -------------------------------------------------------------------

    async def _last_token(
        self,
        instance_id: int,
        connector: Connector,
        creds: Credentials,
        expires_at: datetime | None,
    ) -> str | None:
        """The access token to say goodbye with (stop channels, revoke): refreshed if it
        ended, as a token unused for an hour has at Google; the stored one if refreshing
        fails (the grant is gone already, or the provider is down: best effort)."""
        try:
            return await AccessTokens(self.runtime, instance_id, connector).fresh(creds, expires_at)
        except ProviderError as exc:
            log.info("instance %s: no fresh token to stop and revoke with: %s", instance_id, exc)
            return creds.access_token or creds.config.access_token

    async def _stop_channels(self, instance_id: int, connector: Connector, access: str) -> None:
        """Stop the push channels of an instance about to be deleted (best effort)."""
        if connector.channels is None:
            return
        async with transaction(self.runtime.sessions) as session:
            taken = await stored_channels.take(session, stored_channels.of_instance(instance_id))
        for _, channel in taken:
            await stop_channel(connector.channels, access, instance_id, channel)

    async def _check_callback(self, config: InstanceConfig) -> None:
        if config.callback_url:
            await check_public(
                config.callback_url, allow_private=self.runtime.settings.allow_private_callbacks
            )

    async def _authenticate(
        self, connector: Connector, config: InstanceConfig, code: str | None
    ) -> Tokens:
        if config.auth_type == "apiKey":
            return Tokens(config.access_token or "", None, None, None)
        if not code:
            raise InvalidInput(
                "providerData.code is required for oauth2", field="providerData.code"
            )
        try:
            return await connector.exchange_code(
                code=code,
                app_key=config.app_key or "",
                app_secret=config.app_secret or "",
                redirect_uri=config.oauth_callback_url,
            )
        except ProviderError as exc:
            raise ProviderRefused(
                f"providerData.code: {connector.name} refused the code exchange: {exc.message}",
                field="providerData.code",
                provider_message=exc.provider_message,
            ) from None

    async def _account(self, connector: Connector, access_token: str) -> Account:
        try:
            account = await connector.account(access_token)
        except ProviderError as exc:
            raise ProviderRefused(
                f"{connector.name} refused the account lookup: {exc.message}",
                field="providerData.code",
                provider_message=exc.provider_message,
            ) from None
        return Account.of(account)

    async def _index(
        self, connector: Connector, access_token: str, account_id: str | None
    ) -> Listing:
        """List the account; the listing's own cursor is where events start.

        A listing's cursor stands at the moment the listing began, so what changes while
        it is read comes afterwards as events: nothing is missed, nothing listed is
        reported as new. Past `index_foreground_limit` entries the rest of the listing is
        read by the workers (`indexing: true`), continuing from the page cursor; the
        folders that what was read sits in, but that come later, are read ahead
        (`with_parents`), so everything is indexed at its true path.
        """
        limit = self.runtime.settings.index_foreground_limit
        try:
            listing = await list_account(connector, access_token, limit=limit)
            changes = await with_parents(connector, access_token, account_id, listing.changes)
            return replace(listing, changes=changes)
        except ProviderError as exc:
            raise ProviderRefused(
                f"{connector.name} refused listing the account: {exc.message}",
                field="providerData.code",
                provider_message=exc.provider_message,
            ) from None

    def _seal(self, config: InstanceConfig, tokens: Tokens) -> str:
        secrets: dict[str, Any] = dict(config.secrets())
        if config.auth_type == "oauth2":
            secrets["access_token"] = tokens.access_token
            if tokens.refresh_token:
                secrets["refresh_token"] = tokens.refresh_token
        return self.runtime.box.encrypt_json(secrets)


def _check_source(connector: Connector, config: InstanceConfig) -> None:
    """Longpoll only where the provider can hold a request until something changes."""
    if config.events_on and config.vendor_type == "longpoll" and not connector.waits:
        raise InvalidInput(
            f"event.vendor.type: {connector.name} has no longpoll; use webhooks or polling",
            field="event.vendor.type",
        )


async def stop_channel(push: ChannelPush, access: str, instance_id: int, channel: Channel) -> None:
    """Ask the provider to stop a channel; a failure is logged (the channel ends at its
    expiry on its own, and its notifications find no channel here meanwhile)."""
    if not channel.resource_id:
        return
    try:
        await push.stop(access, channel)
    except ProviderError as exc:
        log.info(
            "instance %s: stopping channel %s failed (it ends on its own at %s): %s",
            instance_id,
            channel.channel_id,
            channel.expires_at,
            exc.message,
        )
