"""Tenancy: two organizations, every platform endpoint called with the other one's ids and
tokens, with each credential form: `User, Organization`, `User, Element` and the three-part
`User, Organization, Element` (SPEC section 9). Everything foreign is 404 exactly like
something that does not exist (or 401 for credentials that do not belong together), and no
answer carries the other organization's names, account ids, notification ids, tokens or
secrets (SPEC sections 1 and 8). The OAuth URL helper answers without credentials and the
same to everyone."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from relaybox.core.instance_config import config_id
from relaybox.runtime import Runtime
from relaybox.services.orgs import create_org
from relaybox.store import tables
from relaybox.store.db import transaction
from tests.support.stack import AUTH, USER_SECRET, Stack, running_stack

MISSING = 999_999
CALLBACK_ID = config_id("event.notification.callback.url")
EVIL = "https://evil.example/steal"


@dataclass
class Tenant:
    auth: dict[str, str]
    user_secret: str
    instance: dict[str, Any]
    account: str
    signature_key: str
    events: list[int] = field(default_factory=list)
    deliveries: list[str] = field(default_factory=list)

    @property
    def id(self) -> int:
        return int(self.instance["id"])

    @property
    def element_auth(self) -> dict[str, str]:
        token = self.instance["token"]
        return {"Authorization": f"User {self.user_secret}, Element {token}"}

    @property
    def three_part_auth(self) -> dict[str, str]:
        """`User, Organization, Element`, as churros sends it after creating an instance."""
        return {"Authorization": f"{self.auth['Authorization']}, Element {self.instance['token']}"}

    def secrets(self, stack: Stack) -> list[str]:
        """Strings that must never reach another organization."""
        access = [
            token
            for token, grant in stack.sandbox_app.state.sandbox.tokens.access.items()
            if grant.account_id == self.account
        ]
        return [
            self.instance["name"],
            self.instance["token"],
            self.account,
            self.signature_key,
            self.user_secret,
            *self.deliveries,
            *access,
        ]


async def _tenant(
    stack: Stack, auth: dict[str, str], user_secret: str, label: str, email: str
) -> Tenant:
    account = await stack.new_account(email)
    key = f"sig-{label}-do-not-leak"
    config: dict[str, Any] = {"event.notification.signature.key": key}
    instance = await stack.connect(account, f"{label}-confidential-instance", auth=auth, **config)
    await stack.upload(account, f"/{label}-report.txt", label.encode())
    return Tenant(auth, user_secret, instance, account, key)


async def _fill(stack: Stack, tenant: Tenant) -> None:
    events = await stack.http.get(f"{stack.api}/instances/{tenant.id}/events", headers=tenant.auth)
    deliveries = await stack.http.get(
        f"{stack.api}/instances/{tenant.id}/deliveries", headers=tenant.auth
    )
    assert events.status_code == deliveries.status_code == 200
    tenant.events = [e["id"] for e in events.json()]
    tenant.deliveries = [d["id"] for d in deliveries.json()]
    assert tenant.events and tenant.deliveries


def _calls(x: int, event: int, delivery: str, own: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, options) for every endpoint about instance `x`, `event`, `delivery`."""
    return [
        ("GET", f"/instances/{x}", {}),
        ("PATCH", f"/instances/{x}", {"json": {"name": "stolen"}}),
        ("PUT", f"/instances/{x}", {"json": {"providerData": {"code": "x"}}}),
        ("DELETE", f"/instances/{x}", {}),
        ("GET", f"/instances/{x}/events", {}),
        ("GET", f"/instances/{x}/events", {"params": {"status": "delivered"}}),
        ("GET", f"/instances/events/{event}", {}),
        ("GET", f"/instances/{x}/deliveries", {}),
        ("POST", f"/instances/{x}/deliveries/redeliver", {"params": {"status": "delivered"}}),
        ("POST", f"/instances/{x}/deliveries/{delivery}/redeliver", {}),
        ("POST", f"/instances/{own}/deliveries/{delivery}/redeliver", {}),
        ("PUT", f"/instances/{x}/events/subscription", {"json": {"active": False}}),
        # SPEC 9's instance endpoints (issue 11): covered here as they land.
        ("DELETE", f"/instances/{x}/enabled", {}),
        ("PUT", f"/instances/{x}/enabled", {}),
        ("GET", f"/instances/{x}/configuration", {}),
        ("GET", f"/instances/{x}/configuration/1", {}),
        ("PATCH", f"/instances/{x}/configuration/1", {"json": {"propertyValue": "stolen"}}),
        ("GET", f"/instances/{x}/configuration/{CALLBACK_ID}", {}),
        ("PATCH", f"/instances/{x}/configuration/{CALLBACK_ID}", {"json": {"propertyValue": EVIL}}),
        ("PATCH", f"/instances/{x}", {"json": {"providerData": {"code": "x"}}}),
        ("GET", f"/elements/dropbox/instances/{x}", {}),
        ("GET", f"/elements/14/instances/{x}", {}),
        ("PATCH", f"/elements/dropbox/instances/{x}", {"json": {"name": "stolen"}}),
        ("PUT", f"/elements/dropbox/instances/{x}", {"json": {"providerData": {"code": "x"}}}),
        ("DELETE", f"/elements/dropbox/instances/{x}", {}),
    ]


def _shape(message: str, *ids: object) -> str:
    """The message with the ids it names blanked out, to compare foreign with missing."""
    for value in sorted(map(str, ids), key=len, reverse=True):
        message = message.replace(value, "<id>")
    return message


async def _state(stack: Stack) -> list[tuple[Any, ...]]:
    """What a foreign call must not change: names, configuration, tags, the enabled and
    events flags, subscriptions, secrets, deliveries, attempts."""
    runtime = await Runtime.start(stack.settings, migrate=False)
    try:
        async with transaction(runtime.sessions) as session:
            instances = (
                await session.execute(
                    select(
                        tables.Instance.id,
                        tables.Instance.name,
                        tables.Instance.configuration,
                        tables.Instance.tags,
                        tables.Instance.disabled,
                        tables.Instance.events_enabled,
                        tables.Instance.subscription_active,
                        tables.Instance.secrets_enc,
                    ).order_by(tables.Instance.id)
                )
            ).all()
            notes = (
                await session.execute(
                    select(
                        tables.Notification.id,
                        tables.Notification.status,
                        tables.Notification.attempt_count,
                    ).order_by(tables.Notification.pk)
                )
            ).all()
        return [tuple(row) for row in [*instances, *notes]]
    finally:
        await runtime.close()


async def test_two_organizations_never_see_each_other(tmp_path: Path, database_url: str) -> None:
    async with running_stack(tmp_path, database_url) as stack:
        runtime = await Runtime.start(stack.settings, migrate=False)
        try:
            bravo_org = await create_org(runtime, "bravo-org-secret-name", "b@bravo.example")
        finally:
            await runtime.close()
        bravo_auth = {
            "Authorization": f"User {bravo_org.user_secret}, Organization {bravo_org.org_secret}"
        }
        alpha = await _tenant(stack, AUTH, USER_SECRET, "alpha", "a@alpha.example")
        bravo = await _tenant(stack, bravo_auth, bravo_org.user_secret, "bravo", "b@bravo.example")
        # A second instance of alpha: alpha's instance token must not reach it either.
        sibling = await _tenant(stack, AUTH, USER_SECRET, "sibling", "a2@alpha.example")
        await stack.receiver.wait_for(
            lambda r: (
                {m.json()["message"]["instanceId"] for m in r.received}
                >= {alpha.id, bravo.id, sibling.id}
            )
        )
        await _fill(stack, alpha)
        await _fill(stack, bravo)
        await _fill(stack, sibling)
        before = await _state(stack)

        callers = [
            ("alpha org", alpha.auth, alpha, bravo, {alpha.id, sibling.id}, []),
            ("bravo org", bravo.auth, bravo, alpha, {bravo.id}, sibling.secrets(stack)),
            ("alpha element", alpha.element_auth, alpha, bravo, {alpha.id}, sibling.secrets(stack)),
            ("alpha element, own org", alpha.element_auth, alpha, sibling, {alpha.id}, []),
            ("bravo element", bravo.element_auth, bravo, alpha, {bravo.id}, sibling.secrets(stack)),
            (
                "alpha 3-part",
                alpha.three_part_auth,
                alpha,
                bravo,
                {alpha.id},
                sibling.secrets(stack),
            ),
            ("alpha 3-part, own org", alpha.three_part_auth, alpha, sibling, {alpha.id}, []),
            (
                "bravo 3-part",
                bravo.three_part_auth,
                bravo,
                alpha,
                {bravo.id},
                sibling.secrets(stack),
            ),
        ]
        anonymous_oauth = await stack.http.get(
            f"{stack.api}/elements/dropbox/oauth/url", params={"apiKey": "k"}
        )
        assert anonymous_oauth.status_code == 200, anonymous_oauth.text
        for label, auth, own, other, visible, also_hidden in callers:
            hidden = [*other.secrets(stack), *also_hidden]
            if other is bravo:
                hidden.append("bravo-org-secret-name")
            answers: list[httpx.Response] = []
            foreign = _calls(other.id, other.events[0], other.deliveries[0], own.id)
            missing = _calls(MISSING, MISSING, "no-such-delivery", own.id)
            for (method, path, options), (_, nowhere, _) in zip(foreign, missing, strict=True):
                answer = await stack.http.request(method, stack.api + path, headers=auth, **options)
                absent = await stack.http.request(
                    method, stack.api + nowhere, headers=auth, **options
                )
                where = f"{label}: {method} {path}"
                assert answer.status_code == 404, (where, answer.status_code, answer.text)
                assert absent.status_code == 404, (where, absent.text)
                ids = (other.id, other.events[0], other.deliveries[0], MISSING, "no-such-delivery")
                assert _shape(answer.json()["message"], *ids) == _shape(
                    absent.json()["message"], *ids
                ), where
                answers.append(answer)
            if auth in (alpha.element_auth, alpha.three_part_auth):
                mine = await stack.http.get(f"{stack.api}/instances/{alpha.id}", headers=auth)
                assert mine.status_code == 200
                create = await stack.http.post(
                    f"{stack.api}/instances", headers=auth, json={"name": "x"}
                )
                assert create.status_code == 404, create.text
                by_key_create = await stack.http.post(
                    f"{stack.api}/elements/dropbox/instances", headers=auth, json={"name": "x"}
                )
                assert by_key_create.status_code == 404, by_key_create.text
                answers += [mine, create, by_key_create]

            # The organization-wide lists show only what the caller may see.
            listed = await stack.http.get(f"{stack.api}/instances", headers=auth)
            assert {i["id"] for i in listed.json()} == visible, label
            tagged = await stack.http.get(
                f"{stack.api}/instances", headers=auth, params={"tags[]": ["team-a", "Test"]}
            )
            assert {i["id"] for i in tagged.json()} == visible, label
            answers.append(tagged)
            by_key = await stack.http.get(f"{stack.api}/elements/dropbox/instances", headers=auth)
            if by_key.status_code != 404:  # SPEC 9's list by element key, once it lands
                assert {i["id"] for i in by_key.json()} == visible, label
                answers.append(by_key)
            for params in ({}, {"status": "delivered"}, {"pageSize": 500}):
                events = await stack.http.get(
                    f"{stack.api}/instances/events", headers=auth, params=params
                )
                assert events.status_code == 200
                assert {e["instanceId"] for e in events.json()} <= visible, label
                if not params:
                    assert set(own.events) <= {e["id"] for e in events.json()}
                answers += [listed, events]
            mine = await stack.http.get(f"{stack.api}/instances/{own.id}/deliveries", headers=auth)
            assert {d["id"] for d in mine.json()} == set(own.deliveries), label
            answers.append(mine)
            oauth = await stack.http.get(
                f"{stack.api}/elements/dropbox/oauth/url", headers=auth, params={"apiKey": "k"}
            )
            assert oauth.status_code == 200
            assert oauth.json() == anonymous_oauth.json(), label  # nothing of the caller's
            answers.append(oauth)

            for answer in answers:
                text = answer.text + " ".join(answer.headers.values())
                # Echoing an id the caller sent is no leak (the 404s above match "missing").
                for secret in set(hidden) - set(answer.request.url.path.split("/")):
                    assert secret not in text, (label, answer.request.url, secret)

        # Credentials that do not belong together are refused outright (401), from their
        # own address so the failed-authentication limit of the other calls is not touched.
        # Every part given is checked, the Organization secret beside an Element token too.
        alpha_org = AUTH["Authorization"].split()[-1]
        mixed = [
            f"User {USER_SECRET}, Organization {alpha_org}, Element {bravo.instance['token']}",
            f"Element {bravo.instance['token']}, User {USER_SECRET}, Organization {alpha_org}",
            f"User {USER_SECRET}, Organization {bravo_org.org_secret}, "
            f"Element {alpha.instance['token']}",
            f"User {bravo_org.user_secret}, Organization {bravo_org.org_secret}, "
            f"Element {alpha.instance['token']}",
            f"User {USER_SECRET}, Organization {alpha_org}, Element {alpha_org}",
            f"User {USER_SECRET}, Organization {bravo_org.org_secret}",
            f"User {bravo_org.user_secret}, Organization {alpha_org}",
            f"User {USER_SECRET}, Element {bravo.instance['token']}",
            f"User {bravo_org.user_secret}, Element {alpha.instance['token']}",
            f"User {bravo_org.user_secret}, Element {sibling.instance['token']}",
            f"User {alpha.instance['token']}, Organization {bravo_org.org_secret}",
        ]
        paths = ("/instances", f"/instances/{bravo.id}", f"/instances/{alpha.id}")
        for number, value in enumerate(mixed):
            path = paths[number % len(paths)]
            # A few failures per address: under the limit (FAILURE_LIMIT), never a 429.
            address = f"127.0.0.{3 + number // 5}"
            transport = httpx.AsyncHTTPTransport(local_address=address)
            async with httpx.AsyncClient(transport=transport, timeout=10) as other_address:
                answer = await other_address.get(stack.api + path, headers={"Authorization": value})
            assert answer.status_code == 401, (value, path, answer.text)
            for secret in alpha.secrets(stack) + bravo.secrets(stack):
                assert secret not in answer.text

        assert await _state(stack) == before, "a foreign call changed something"
