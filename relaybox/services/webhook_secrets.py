"""Which app signed a provider webhook, answered without the database on the hot path.

Each process keeps, per element, one decrypted app secret per app key, reloaded every
`ttl` seconds and at most once a second when a signature matches none of them. A cached
secret only ever decides *which app keys* signed a body; the instances asked for a pass
are chosen by the database at commit time (`store.inbox`), so a stale cache cannot send a
pass to an instance that was deleted, switched to polling or moved to another app. The
worst a stale entry does is accept, for up to `ttl` seconds, a body signed with an app
secret that was just replaced: its passes fetch with the instances' own tokens.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaybox.crypto import SecretBox
from relaybox.store import tables
from relaybox.store.db import transaction

log = logging.getLogger(__name__)

TTL_SECONDS = 30.0
MIN_RELOAD_SECONDS = 1.0


@dataclass
class _Secrets:
    loaded_at: float
    # app secret -> the app keys that use it
    apps: dict[str, set[str]] = field(default_factory=dict)


class WebhookSecrets:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        box: SecretBox,
        *,
        ttl: float = TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.box = box
        self.ttl = ttl
        self.clock = clock
        self._by_element: dict[str, _Secrets] = {}

    async def signers(self, element_key: str, verify: Callable[[str], bool]) -> list[str]:
        """The app keys whose secret `verify` accepts; [] when none of the element's does."""
        cached = self._by_element.get(element_key)
        now = self.clock()
        if cached is None or now - cached.loaded_at > self.ttl:
            cached = await self._load(element_key)
        found = _matching(cached, verify)
        if not found and now - cached.loaded_at > MIN_RELOAD_SECONDS:
            found = _matching(await self._load(element_key), verify)
        return found

    async def signers_among(
        self, element_key: str, accounts: Sequence[str], verify: Callable[[str], bool]
    ) -> list[str]:
        """The app keys, among the named accounts' instances, whose secret `verify` accepts.

        The slow path for an app key whose instances do not all share one secret.
        """
        instance = tables.Instance
        rows: list[tuple[str | None, str]] = []
        async with transaction(self.sessions) as session:
            for start in range(0, len(accounts), 500):
                query = select(instance.app_key, instance.secrets_enc).where(
                    instance.element_key == element_key,
                    instance.account_id.in_(list(accounts[start : start + 500])),
                )
                rows.extend((app_key, enc) for app_key, enc in (await session.execute(query)))
        secrets = _Secrets(self.clock())
        self._add(secrets, rows)
        return _matching(secrets, verify)

    async def _load(self, element_key: str) -> _Secrets:
        instance = tables.Instance
        one_per_app = (
            select(func.min(instance.id))
            .where(instance.element_key == element_key)
            .group_by(instance.app_key)
        )
        async with transaction(self.sessions) as session:
            rows = (
                await session.execute(
                    select(instance.app_key, instance.secrets_enc).where(
                        instance.id.in_(one_per_app)
                    )
                )
            ).all()
        secrets = _Secrets(self.clock())
        self._add(secrets, ((app_key, enc) for app_key, enc in rows))
        self._by_element[element_key] = secrets
        return secrets

    def _add(self, secrets: _Secrets, rows: Iterable[tuple[str | None, str]]) -> None:
        for app_key, secrets_enc in rows:
            try:
                secret = self.box.decrypt_json(secrets_enc).get("oauth.api.secret")
            except ValueError:
                log.error("an instance's secrets cannot be decrypted with the configured key")
                continue
            if secret:
                # "" stands for instances without an app key (apiKey instances).
                secrets.apps.setdefault(str(secret), set()).add(app_key or "")


def _matching(secrets: _Secrets, verify: Callable[[str], bool]) -> list[str]:
    found: set[str] = set()
    for secret, app_keys in secrets.apps.items():
        if verify(secret):
            found |= app_keys
    return sorted(found)
